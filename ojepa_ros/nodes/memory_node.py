"""memory_node: short-term memory; records each goal-directed episode to an MCAP file.

An episode opens when a goal is accepted (/ojepa/goal) and closes when the actor reports it reached,
idle or faulted, after `max_episode_duration`, or at shutdown. The same goal again while its episode is
open does not open another. Messages are taken raw (CDR bytes) and written as they came, so nothing is lost
to re-serialisation. `output_dir` must be a directory it can create and write; otherwise it records nothing
and says why (once a second), and a bad value set at run time is refused.

Crash-safe: the open episode is flushed to disk every FLUSH_PERIOD as complete MCAP records (core/episodes.py),
so a kill -9 loses at most that much; on configure it recovers episodes a dead writer left unfinished in
`output_dir` (the training readers do the same on open).

Each episode's channels carry the QoS the topic's publishers offer (what `ros2 bag record` writes; the node's own
subscription profile where no publisher is known yet), so a replay re-offers /ojepa/goal latched.

A managed node (nodes/lifecycle.py): configure checks that `output_dir` can be written (and fails, saying why,
if not); it records only while active, and deactivate closes the open episode.
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
from ojepa_interfaces.msg import State
from rclpy.qos import QoSProfile
from rclpy.serialization import deserialize_message
from sensor_msgs.msg import Image, LaserScan
from std_msgs.msg import Bool, String

from ojepa_ros.core.episodes import EpisodeWriter, needs_recovery, offered_qos, recover_episode
from ojepa_ros.nodes import params as P
from ojepa_ros.nodes.lifecycle import ManagedNode
from ojepa_ros.nodes.qos import LATCHED, SENSOR
from ojepa_ros.nodes.runtime import run_node
from ojepa_ros.nodes.velocity import STAMPED_PARAM, velocity_type
from ojepa_ros.paths import ros_home

def writable_dir_problem(path: str) -> str | None:
    """Why episodes cannot be written under `path` (created if missing), or None if they can."""
    if not path:
        return "is empty"
    root = Path(path)
    try:
        root.mkdir(parents=True, exist_ok=True)
    except OSError as err:
        return f"cannot be created ({err.strerror or err})"
    if not root.is_dir():
        return "is not a directory"
    if not os.access(root, os.W_OK | os.X_OK):
        return "is not writable"
    return None


PARAMS = {
    "output_dir": P.Param("", "directory that receives one rosbag2 MCAP folder per episode (created if missing; "
                              "must be writable); empty: $ROS_HOME/ojepa/episodes (ROS_HOME defaults to ~/.ros); a "
                              "relative path is taken from the node's working directory",
                          lambda v: writable_dir_problem(str(episodes_dir(v))) is None,
                          "must be a directory this node can create and write"),
    "record_images": P.Param(False, "also record /camera/image_raw"),
    "max_episode_duration": P.ranged(300.0, 1.0, 86_400.0, "s; a longer episode is closed and a new one opened"),
    "enable_stamped_cmd_vel": STAMPED_PARAM,
}
# Episode channel names: the topics as an un-namespaced agent names them, so datasets read the same channels
# from every robot; each is subscribed relative (without the leading /), so a namespace moves it.
RECORDED = {
    "/ojepa/state": State,
    "/cmd_vel": Twist,  # TwistStamped with enable_stamped_cmd_vel
    "/odom": Odometry,
    "/ojepa/cost_terms": DiagnosticArray,
    "/ojepa/goal": PoseStamped,
    "/collision": Bool,  # the bumper: contacts are the critic's training signal
    "/scan": LaserScan,  # the range scanner: clearance and forward-range labels (core/sensing.py)
}
ENDING_STATUS = ("reached", "idle", "fault")
FLUSH_PERIOD = 0.5  # s: at most this much of an episode is lost when the process dies
# Queue of each reliable recorded topic: 2 s at 50 Hz, so a flush's fsync on a loaded disk (0.3 s seen) drops none.
RELIABLE_DEPTH = 100


def _ros_type_name(msg_type: type) -> str:
    module = msg_type.__module__.split(".")[0]
    return f"{module}/msg/{msg_type.__name__}"


def _as_recorded(profile: QoSProfile):
    """An rclpy QoS profile as the offered profile an episode records."""
    durations = [getattr(profile, name).nanoseconds for name in ("deadline", "lifespan", "liveliness_lease_duration")]
    return offered_qos(profile.reliability.name, profile.durability.name, profile.depth, profile.history.name,
                       profile.liveliness.name, durations)


def episodes_dir(output_dir: str) -> Path:
    """Where episodes go, as an absolute path (logged with every episode)."""
    if output_dir:
        return Path(output_dir).expanduser().resolve()
    return ros_home() / "ojepa" / "episodes"


class MemoryNode(ManagedNode):
    def __init__(self, **kwargs) -> None:
        super().__init__("memory_node", **kwargs)
        self.p = P.declare(self, PARAMS)
        self.topics = {**RECORDED, "/cmd_vel": velocity_type(self.p["enable_stamped_cmd_vel"])}
        if self.p["record_images"]:
            self.topics["/camera/image_raw"] = Image
        self.episode: EpisodeWriter | None = None
        self._lock = threading.Lock()  # callbacks and shutdown may touch the open episode at once
        self._opened = 0.0
        self._goal_xy: tuple[float, float] | None = None  # the open episode's goal
        self._actor_active = False  # an episode ends on the actor's first ending status after it went active
        self._subscribed: dict[str, tuple[str, QoSProfile]] = {}  # channel -> (resolved topic, profile subscribed)
        for topic, msg_type in self.topics.items():
            qos = LATCHED if topic == "/ojepa/goal" else SENSOR if msg_type in (Odometry, Image, LaserScan) \
                else QoSProfile(depth=RELIABLE_DEPTH)
            sub = self.create_subscription(msg_type, topic[1:], lambda data, t=topic: self._record(t, data), qos,
                                           raw=True)
            self._subscribed[topic] = (sub.topic_name, qos)
        self.create_subscription(String, "ojepa/actor_status", self._on_status, 10)
        self.create_timer(FLUSH_PERIOD, self._flush)

    def configure(self) -> str | None:
        problem = writable_dir_problem(str(episodes_dir(self.p["output_dir"])))
        if problem:
            return f"output_dir {self.p['output_dir']!r} {problem}"
        self._recover_leftovers()
        return None

    def _recover_leftovers(self) -> None:
        """Episodes a killed memory_node left unfinished: rebuilt so rosbags and mcap can read them."""
        root = episodes_dir(self.p["output_dir"])
        for path in sorted(root.iterdir()) if root.is_dir() else []:
            try:
                if needs_recovery(path):
                    kept = recover_episode(path)
                    self.get_logger().warning(f"recovered unfinished episode {path} ({kept} messages)")
            except Exception as err:  # noqa: BLE001 - a folder it cannot repair must not stop the recording
                self.get_logger().error(f"could not recover {path}: {err.__class__.__name__}: {err}")

    def _flush(self) -> None:
        with self._lock:
            if self.episode is None:
                return
            try:
                self.episode.flush()
            except OSError as err:
                self.get_logger().error(f"episode {self.episode.path}: flush failed ({err})",
                                        throttle_duration_sec=1.0)

    def _record(self, topic: str, data: bytes) -> None:
        with self._lock:
            if topic == "/ojepa/goal":
                goal = deserialize_message(data, PoseStamped).pose.position
                if self.episode is not None and self._goal_xy == (goal.x, goal.y):
                    return  # the same goal again: still the same episode
                if not self._open():
                    return
                self._goal_xy = (goal.x, goal.y)
            if self.episode is None:
                return
            if time.monotonic() - self._opened > self.p["max_episode_duration"]:
                goal = self._goal_xy
                if not self._open():
                    return
                self._goal_xy = goal  # the same goal goes on in the next part
            try:
                self.episode.write(topic, self.get_clock().now().nanoseconds, data)
            except OSError as err:  # a full disk: lose messages, not the node
                self.get_logger().error(f"episode {self.episode.path}: write failed ({err})", throttle_duration_sec=1.0)

    def _open(self) -> bool:
        """Close the open episode and open a new one; False (logged) when it cannot be written."""
        self._close()
        root = episodes_dir(self.p["output_dir"])
        problem = writable_dir_problem(str(root))
        path = root / datetime.now().strftime("episode_%Y%m%d_%H%M%S_%f")
        if problem is None:
            try:
                self.episode = EpisodeWriter(path, {t: _ros_type_name(m) for t, m in self.topics.items()},
                                             self._offered_qos())
            except Exception as err:  # noqa: BLE001 - a full disk, a race on the folder: record nothing, live on
                problem = f"{path} cannot be written ({err.__class__.__name__}: {err})"
        if problem is not None:
            self.get_logger().error(f"not recording: output_dir {self.p['output_dir']!r} {problem}",
                                    throttle_duration_sec=1.0)
            return False
        self._opened = time.monotonic()
        self._actor_active = False
        self.get_logger().info(f"recording episode to {path}")
        return True

    def _offered_qos(self) -> dict:
        """Per recorded topic, the distinct QoS profiles its publishers offer now (the subscription's own where
        none is known)."""
        out = {}
        for topic, (resolved, subscribed) in self._subscribed.items():
            offered = [info.qos_profile for info in self.get_publishers_info_by_topic(resolved)]
            profiles = []
            for profile in offered or [subscribed]:
                if (recorded := _as_recorded(profile)) not in profiles:
                    profiles.append(recorded)
            out[topic] = profiles
        return out

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
            self._goal_xy = None

    stop = deactivate = cleanup = close  # the open episode is closed, whichever way recording ends


def main(args: list[str] | None = None) -> None:
    run_node(MemoryNode, args)


if __name__ == "__main__":
    main()
