"""memory_node's episodes keep the QoS their publishers offered (`offered_qos_profiles`), read back with rosbags:
the latched goal stays transient local, so a replay re-offers it latched; best-effort odometry stays best effort;
a killed episode's recovery keeps them; a stamped cmd_vel is recorded as TwistStamped and read by training."""

from __future__ import annotations

import shutil
import time
from pathlib import Path

import pytest
import yaml
from geometry_msgs.msg import PoseStamped, TwistStamped
from nav_msgs.msg import Odometry
from rclpy.node import Node
from rclpy.parameter import Parameter
from rclpy.qos import DurabilityPolicy, QoSProfile, ReliabilityPolicy
from rosbags.interfaces import QosDurability, QosReliability
from rosbags.rosbag2 import Reader
from std_msgs.msg import String

from ojepa_ros.core.episodes import needs_recovery, read_episode, recover_episode


def _record(graph, tmp_path: Path) -> Path:
    """One episode: a latched goal, best-effort odometry, stamped commands (no publisher of /scan: its default)."""
    from ojepa_ros.nodes.memory_node import MemoryNode

    memory = graph.add(MemoryNode(parameter_overrides=[Parameter("output_dir", value=str(tmp_path / "episodes")),
                                                       Parameter("enable_stamped_cmd_vel", value=True)]))
    talker = graph.add(Node(f"qos_talker_{time.monotonic_ns()}"))
    goal_pub = talker.create_publisher(PoseStamped, "/ojepa/goal",
                                       QoSProfile(depth=1, durability=DurabilityPolicy.TRANSIENT_LOCAL))
    odom_pub = talker.create_publisher(Odometry, "/odom", QoSProfile(depth=5, reliability=ReliabilityPolicy.BEST_EFFORT))
    cmd_pub = talker.create_publisher(TwistStamped, "/cmd_vel", 10)
    status_pub = talker.create_publisher(String, "/ojepa/actor_status", 10)
    graph.wait_for(lambda: all(p.get_subscription_count() for p in (goal_pub, odom_pub, cmd_pub, status_pub)), 5.0,
                   "memory_node's subscriptions")
    goal = PoseStamped()
    goal.header.frame_id = "odom"
    goal.pose.position.x = 3.0
    goal_pub.publish(goal)
    graph.wait_for(lambda: memory.episode is not None, 3.0, "an episode to open")
    status_pub.publish(String(data="active"))
    for i in range(5):
        cmd = TwistStamped()
        cmd.header.stamp = talker.get_clock().now().to_msg()
        cmd.twist.linear.x = 0.1 * i
        cmd_pub.publish(cmd)
        odom_pub.publish(Odometry())
        time.sleep(0.05)
    time.sleep(0.2)
    status_pub.publish(String(data="reached"))
    graph.wait_for(lambda: memory.episode is None, 3.0, "the episode to close")
    (episode,) = list((tmp_path / "episodes").iterdir())
    return episode


def _offered(episode: Path) -> dict[str, tuple]:
    with Reader(episode) as reader:
        return {c.topic: (c.msgtype, c.ext.offered_qos_profiles) for c in reader.connections}


def test_latched_and_best_effort_topics_keep_their_qos_through_recording_and_recovery(graph, tmp_path):
    episode = _record(graph, tmp_path)
    offered = _offered(episode)
    goal_type, (goal_qos,) = offered["/ojepa/goal"]
    assert goal_type == "geometry_msgs/msg/PoseStamped"
    assert goal_qos.durability == QosDurability.TRANSIENT_LOCAL and goal_qos.reliability == QosReliability.RELIABLE
    # (history and depth are not announced over DDS: a discovered publisher's read as unknown and 0, as in ros2 bag)
    (odom_qos,) = offered["/odom"][1]
    assert odom_qos.reliability == QosReliability.BEST_EFFORT and odom_qos.durability == QosDurability.VOLATILE
    scan_type, (scan_qos,) = offered["/scan"]  # nobody published: memory's own sensor-data subscription profile
    assert scan_type == "sensor_msgs/msg/LaserScan" and scan_qos.reliability == QosReliability.BEST_EFFORT
    assert offered["/cmd_vel"][0] == "geometry_msgs/msg/TwistStamped"
    # What `ros2 bag play` reads: metadata.yaml lists each topic's profiles too.
    metadata = yaml.safe_load((episode / "metadata.yaml").read_text())["rosbag2_bagfile_information"]
    goal_meta = next(t["topic_metadata"] for t in metadata["topics_with_message_count"]
                     if t["topic_metadata"]["name"] == "/ojepa/goal")
    assert "transient_local" in str(goal_meta["offered_qos_profiles"]).lower()
    # The training reader takes the stamped commands as it takes plain ones.
    from ojepa_ros.train.episode_files import CMD_TOPIC

    speeds = [msg.twist.linear.x for topic, _, msg in read_episode(episode) if topic == CMD_TOPIC]
    assert speeds == pytest.approx([0.0, 0.1, 0.2, 0.3, 0.4])
    # A writer killed mid-episode: recovery rebuilds the file with the same profiles.
    broken = tmp_path / "broken"
    shutil.copytree(episode, broken)
    (broken / "metadata.yaml").unlink()
    mcap = next(broken.glob("*.mcap"))
    mcap.write_bytes(mcap.read_bytes()[:-200])
    assert needs_recovery(broken)
    recover_episode(broken)
    assert _offered(broken)["/ojepa/goal"] == offered["/ojepa/goal"]
    assert _offered(broken)["/odom"] == offered["/odom"]
