"""memory_node: short-term memory; records each goal-directed episode to an MCAP file.

An episode opens when a goal is accepted (/ojepa/goal) and closes when the actor reports it reached,
idle or faulted, after `max_episode_duration`, or at shutdown. Messages are taken raw (CDR bytes) and
written as they came, so nothing is lost to re-serialisation.
"""

from __future__ import annotations

import os
import threading
import time
from datetime import datetime
from pathlib import Path

from diagnostic_msgs.msg import DiagnosticArray
from geometry_msgs.msg import PoseStamped, Twist
from nav_msgs.msg import Odometry
from rclpy.node import Node
from rclpy.qos import DurabilityPolicy, QoSProfile
from sensor_msgs.msg import Image
from std_msgs.msg import Bool, Float32MultiArray, String

from ojepa_ros.core.episodes import EpisodeWriter
from ojepa_ros.nodes import params as P
from ojepa_ros.nodes.qos import SENSOR
from ojepa_ros.nodes.runtime import run_node

PARAMS = {
    "output_dir": P.Param("", "directory that receives one rosbag2 MCAP folder per episode; empty: "
                              "$ROS_HOME/ojepa/episodes (ROS_HOME defaults to ~/.ros); a relative path is taken "
                              "from the node's working directory"),
    "record_images": P.Param(False, "also record /camera/image_raw"),
    "max_episode_duration": P.positive(300.0, "s; a longer episode is closed and a new one opened"),
}
# Episode channel names: the topics as an un-namespaced agent names them, so datasets read the same channels
# from every robot; each is subscribed relative (without the leading /), so a namespace moves it.
RECORDED = {
    "/ojepa/state": Float32MultiArray,
    "/cmd_vel": Twist,
    "/odom": Odometry,
    "/ojepa/cost_terms": DiagnosticArray,
    "/ojepa/goal": PoseStamped,
    "/collision": Bool,  # the bumper: contacts are the critic's training signal
}
ENDING_STATUS = ("reached", "idle", "fault")


def _ros_type_name(msg_type: type) -> str:
    module = msg_type.__module__.split(".")[0]
    return f"{module}/msg/{msg_type.__name__}"


def episodes_dir(output_dir: str) -> Path:
    """Where episodes go, as an absolute path (logged with every episode)."""
    if output_dir:
        return Path(output_dir).expanduser().resolve()
    ros_home = os.environ.get("ROS_HOME") or os.path.join(os.path.expanduser("~"), ".ros")
    return Path(ros_home).resolve() / "ojepa" / "episodes"


class MemoryNode(Node):
    def __init__(self, **kwargs) -> None:
        super().__init__("memory_node", **kwargs)
        self.p = P.declare(self, PARAMS)
        self.topics = dict(RECORDED)
        if self.p["record_images"]:
            self.topics["/camera/image_raw"] = Image
        self.episode: EpisodeWriter | None = None
        self._lock = threading.Lock()  # callbacks and shutdown may touch the open episode at once
        self._opened = 0.0
        self._actor_active = False  # an episode ends on the actor's first ending status after it went active
        latched = QoSProfile(depth=1, durability=DurabilityPolicy.TRANSIENT_LOCAL)
        for topic, msg_type in self.topics.items():
            qos = latched if topic == "/ojepa/goal" else SENSOR if msg_type in (Odometry, Image) else 10
            self.create_subscription(msg_type, topic[1:], lambda data, t=topic: self._record(t, data), qos, raw=True)
        self.create_subscription(String, "ojepa/actor_status", self._on_status, 10)

    def _record(self, topic: str, data: bytes) -> None:
        with self._lock:
            if topic == "/ojepa/goal":
                self._open()
            if self.episode is None:
                return
            if time.monotonic() - self._opened > self.p["max_episode_duration"]:
                self._open()
            self.episode.write(topic, self.get_clock().now().nanoseconds, data)

    def _open(self) -> None:
        self._close()
        root = episodes_dir(self.p["output_dir"])
        root.mkdir(parents=True, exist_ok=True)
        path = root / datetime.now().strftime("episode_%Y%m%d_%H%M%S_%f")
        self.episode = EpisodeWriter(path, {t: _ros_type_name(m) for t, m in self.topics.items()})
        self._opened = time.monotonic()
        self._actor_active = False
        self.get_logger().info(f"recording episode to {path}")

    def _on_status(self, msg: String) -> None:
        status = msg.data.split(":")[0]
        if status == "active":
            self._actor_active = True
        elif status in ENDING_STATUS and self._actor_active:
            self.close()

    def close(self) -> None:
        with self._lock:
            self._close()

    def _close(self) -> None:
        if self.episode is not None:
            self.episode.close()
            self.get_logger().info(f"episode {self.episode.path} closed ({self.episode.count} messages)")
            self.episode = None

    stop = close


def main(args: list[str] | None = None) -> None:
    run_node(MemoryNode, args)


if __name__ == "__main__":
    main()
