"""Short-term memory on disk: episodes as rosbag2 MCAP files that `rosbags` and the `mcap` tools read.

Messages arrive already CDR-serialised (raw subscriptions), so writing needs no ROS: the message
definitions come from rosbags' typestore for ROS 2 Kilted.
"""

from __future__ import annotations

from pathlib import Path
from typing import Iterator

from rosbags.rosbag2 import Reader, StoragePlugin, Writer
from rosbags.typesys import Stores, get_typestore

TYPESTORE = get_typestore(Stores.ROS2_KILTED)


class EpisodeWriter:
    """One episode = one rosbag2 directory holding a single .mcap file."""

    def __init__(self, path: Path, topics: dict[str, str]) -> None:
        self.path = path
        self._writer = Writer(path, version=9, storage_plugin=StoragePlugin.MCAP)
        self._writer.open()
        self._connections = {topic: self._writer.add_connection(topic, msgtype, typestore=TYPESTORE)
                             for topic, msgtype in topics.items()}
        self.count = 0

    def write(self, topic: str, stamp_ns: int, cdr: bytes) -> None:
        self._writer.write(self._connections[topic], stamp_ns, cdr)
        self.count += 1

    def close(self) -> None:
        self._writer.close()


def read_episode(path: Path) -> Iterator[tuple[str, int, object]]:
    """(topic, log time ns, deserialised message) for every message of an episode, in time order."""
    with Reader(path) as reader:
        for connection, stamp, data in reader.messages():
            yield connection.topic, stamp, TYPESTORE.deserialize_cdr(data, connection.msgtype)
