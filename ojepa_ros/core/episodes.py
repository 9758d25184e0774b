"""Short-term memory on disk: episodes as rosbag2 MCAP files that `rosbags` and the `mcap` tools read.

Messages arrive already CDR-serialised (raw subscriptions), so writing needs no ROS: the message
definitions come from rosbags' typestore for ROS 2 Kilted, plus the project's own (ojepa_interfaces, read from
the .msg files its install put in the ament index).

Crash safety: the writer closes its MCAP chunk and flushes (and fsyncs) the file on every `flush()`, which
memory_node calls twice a second, so a kill -9 or a power cut loses at most that long. Such an episode lacks
the MCAP summary and metadata.yaml that rosbags and the mcap readers need; `recover_episode` rebuilds both
from the complete records on disk (what `ros2 bag reindex` / `mcap recover` do), and `read_episode` runs it
on open. A `recording.pid` file marks an episode a live writer holds: it is never "recovered" under it.

Each channel carries the QoS its publishers offered (`offered_qos_profiles`, as `ros2 bag record` writes them), so a
replay (`ros2 bag play`) offers a latched topic such as /ojepa/goal latched again; recovery keeps them.
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path
from typing import Iterator, Sequence

from rosbags.interfaces import Qos, QosDurability, QosHistory, QosLiveliness, QosReliability, QosTime
from rosbags.rosbag2 import Reader, StoragePlugin, Writer
from rosbags.typesys import Stores, get_types_from_msg, get_typestore

PROJECT_INTERFACES = "ojepa_interfaces"
RECORDING_MARK = "recording.pid"
MCAP_MAGIC = b"\x89MCAP0\r\n"


def _project_types() -> dict:
    """The message definitions of the project's interface package, from its installed share/<pkg>/msg/*.msg;
    none when it is not installed (episodes without its types still record and read)."""
    try:
        from ament_index_python.packages import get_package_share_directory

        share = Path(get_package_share_directory(PROJECT_INTERFACES))
    except (ImportError, LookupError, ValueError):
        return {}
    types: dict = {}
    for path in sorted((share / "msg").glob("*.msg")):
        types.update(get_types_from_msg(path.read_text(), f"{PROJECT_INTERFACES}/msg/{path.stem}"))
    return types


TYPESTORE = get_typestore(Stores.ROS2_KILTED)
TYPESTORE.register(_project_types())


def offered_qos(reliability: str, durability: str, depth: int, history: str = "keep_last",
                liveliness: str = "automatic", durations_ns: Sequence[int] = (0, 0, 0)) -> Qos:
    """One offered QoS profile as rosbag2 records it, from the policies' names (reliable / best_effort,
    transient_local / volatile, keep_last / keep_all, automatic / manual_by_topic) and deadline, lifespan and
    liveliness lease duration in ns (0: the middleware's default)."""
    times = [QosTime(*divmod(int(ns), 1_000_000_000)) for ns in durations_ns]

    def policy(enum, name: str):
        return enum.__members__.get(name.upper(), enum.UNKNOWN)

    return Qos(policy(QosHistory, history), int(depth), policy(QosReliability, reliability),
               policy(QosDurability, durability), times[0], times[1], policy(QosLiveliness, liveliness), times[2],
               False)


class EpisodeWriter:
    """One episode = one rosbag2 directory holding a single .mcap file; `qos` gives a topic's offered profiles."""

    def __init__(self, path: Path, topics: dict[str, str], qos: dict[str, list[Qos]] | None = None) -> None:
        self.path = path
        self._writer = Writer(path, version=9, storage_plugin=StoragePlugin.MCAP)
        self._writer.open()
        (path / RECORDING_MARK).write_text(str(os.getpid()))
        self._connections = {topic: self._writer.add_connection(topic, msgtype, typestore=TYPESTORE,
                                                                offered_qos_profiles=(qos or {}).get(topic, ()))
                             for topic, msgtype in topics.items()}
        self.count = 0
        self.flush()  # the schemas and channels are on disk before the first message

    def write(self, topic: str, stamp_ns: int, cdr: bytes) -> None:
        self._writer.write(self._connections[topic], stamp_ns, cdr)
        self.count += 1

    def flush(self) -> None:
        """Put everything written so far on disk as complete MCAP records (a closed chunk), fsynced."""
        storage = self._writer.storage  # rosbags' McapWriter: it keeps up to 1 MiB in its open chunk
        if storage.chunk.bio.tell():
            storage.close_chunk()
        storage.bio.flush()
        os.fsync(storage.bio.fileno())

    def close(self) -> None:
        self._writer.close()
        (self.path / RECORDING_MARK).unlink(missing_ok=True)


def _held_by_live_writer(path: Path) -> bool:
    try:
        pid = int((path / RECORDING_MARK).read_text())
    except (OSError, ValueError):
        return False
    if pid == os.getpid():
        return True
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def needs_recovery(path: Path) -> bool:
    """Whether a rosbag2 MCAP episode folder was left unfinished (its writer died) and no live writer holds it."""
    path = Path(path)
    if not path.is_dir() or _held_by_live_writer(path):
        return False
    mcaps = sorted(path.glob("*.mcap"))
    if not (path / "metadata.yaml").is_file() or not mcaps:
        return bool(mcaps) or (path / RECORDING_MARK).exists()
    with mcaps[0].open("rb") as f:
        f.seek(0, os.SEEK_END)
        if f.tell() < 2 * len(MCAP_MAGIC):
            return True
        f.seek(-len(MCAP_MAGIC), os.SEEK_END)
        return f.read() != MCAP_MAGIC


def recover_episode(path: Path) -> int:
    """Rebuild an unfinished episode in place from the complete records in its .mcap; returns how many
    messages it kept. A record cut off by the crash, and anything after it, is dropped."""
    from mcap.records import Channel, Message, Schema
    from mcap.stream_reader import StreamReader
    from rosbags.rosbag2.storage_mcap import parse_qos

    path = Path(path)
    schemas: dict[int, str] = {}
    channels: dict[int, tuple[str, str, list[Qos]]] = {}
    messages: list[tuple[int, int, bytes]] = []
    for source in sorted(path.glob("*.mcap")):
        with source.open("rb") as f:
            try:
                for record in StreamReader(f).records:
                    if isinstance(record, Schema):
                        schemas[record.id] = record.name
                    elif isinstance(record, Channel):
                        channels[record.id] = (record.topic, schemas.get(record.schema_id, ""),
                                               parse_qos(record.metadata.get("offered_qos_profiles", "")))
                    elif isinstance(record, Message) and record.channel_id in channels:
                        messages.append((record.channel_id, record.log_time, bytes(record.data)))
            except Exception:  # noqa: BLE001 - the crash cut the file here: keep what came before
                pass
    work = path.with_name(f".{path.name}.recovering")  # no episode reader looks into it
    shutil.rmtree(work, ignore_errors=True)
    rebuilt = work / "new" / path.name
    rebuilt.parent.mkdir(parents=True)
    writer = Writer(rebuilt, version=9, storage_plugin=StoragePlugin.MCAP)
    writer.open()
    connections = {cid: writer.add_connection(topic, msgtype, typestore=TYPESTORE, offered_qos_profiles=qos)
                   for cid, (topic, msgtype, qos) in channels.items() if msgtype in TYPESTORE.fielddefs}
    kept = 0
    for cid, stamp, data in sorted(messages, key=lambda m: m[1]):
        if cid in connections:
            writer.write(connections[cid], stamp, data)
            kept += 1
    writer.close()
    path.rename(work / "old")
    rebuilt.rename(path)
    shutil.rmtree(work)
    return kept


def read_episode(path: Path) -> Iterator[tuple[str, int, object]]:
    """(topic, log time ns, deserialised message) for every message of an episode, in time order; an episode
    whose writer died is recovered first (recover_episode)."""
    if needs_recovery(path):
        recover_episode(path)
    with Reader(path) as reader:
        for connection, stamp, data in reader.messages():
            yield connection.topic, stamp, TYPESTORE.deserialize_cdr(data, connection.msgtype)
