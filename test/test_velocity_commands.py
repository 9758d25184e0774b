"""Velocity commands as geometry_msgs/Twist or TwistStamped (`enable_stamped_cmd_vel`), over real DDS: the actor's
command through the collision monitor drives sim_node under either choice, a stamped command carries the monitor's
clock and the base frame, and the stop paths (the monitor's and the actor's last word) send the chosen type."""

from __future__ import annotations

import time

import pytest
from geometry_msgs.msg import Twist, TwistStamped
from nav_msgs.msg import Odometry
from rclpy.node import Node
from rclpy.parameter import Parameter

from ojepa_ros.nodes.convert import stamp_to_sec
from ojepa_ros.nodes.qos import SENSOR

CHOICES = [(False, Twist), (True, TwistStamped)]


def _params(stamped: bool, **values) -> list[Parameter]:
    return [Parameter(k, value=v) for k, v in {"enable_stamped_cmd_vel": stamped, **values}.items()]


@pytest.mark.parametrize("stamped, msg_type", CHOICES)
def test_the_monitor_lets_the_command_through_to_the_simulator_in_either_type(graph, stamped, msg_type):
    from ojepa_ros.nodes.collision_monitor_node import CollisionMonitorNode
    from ojepa_ros.nodes.sim_node import SimNode
    from ojepa_ros.nodes.velocity import velocity_message

    graph.add(SimNode(parameter_overrides=_params(stamped, start_pose=[2.0, 2.0, 0.0])))
    monitor = graph.add(CollisionMonitorNode(parameter_overrides=_params(stamped, use_sim_time=True)))
    assert monitor.cmd_pub.msg_type is msg_type
    odoms = graph.collect(Odometry, "/odom", SENSOR)
    heard = graph.collect(msg_type, "/cmd_vel")
    actor = graph.add(Node(f"actor_stand_in_{time.monotonic_ns()}"))
    raw = actor.create_publisher(msg_type, "/cmd_vel_raw", 10)
    deadline = time.monotonic() + 20.0
    while time.monotonic() < deadline and not (odoms and odoms[-1].pose.pose.position.x > 2.2):
        raw.publish(velocity_message(actor, 0.3, 0.0, stamped))
        time.sleep(0.05)
    assert odoms and odoms[-1].pose.pose.position.x > 2.2, "the robot never moved forward"
    moving = [m for m in heard if (m.twist if stamped else m).linear.x > 0.0]
    assert moving, "the monitor let no forward command out"
    if stamped:  # stamped with the monitor's clock, sim time here: within a tick of the simulator's odometry
        last = moving[-1]
        assert last.header.frame_id == "base_link"
        assert 0.0 < stamp_to_sec(last.header.stamp) and \
            abs(stamp_to_sec(last.header.stamp) - stamp_to_sec(odoms[-1].header.stamp)) < 1.0
    count = len(heard)
    monitor.stop()  # the stop path: a zero command of the same type
    graph.wait_for(lambda: len(heard) > count and (heard[-1].twist if stamped else heard[-1]).linear.x == 0.0,
                   3.0, "the monitor's zero command")


@pytest.mark.parametrize("stamped, msg_type", CHOICES)
def test_the_actor_and_the_world_model_use_the_chosen_type(graph, tiny_model_path, stamped, msg_type):
    from ojepa_ros.nodes.actor_node import ActorNode
    from ojepa_ros.nodes.velocity import velocity_message
    from ojepa_ros.nodes.world_model_node import WorldModelNode

    actor = graph.add(ActorNode(cli_args=["--ros-args", "-r", "cmd_vel:=cmd_vel_raw"],
                                parameter_overrides=_params(stamped, model_path=str(tiny_model_path))))
    world_model = graph.add(WorldModelNode(parameter_overrides=_params(stamped, model_path=str(tiny_model_path))))
    assert actor.cmd_pub.msg_type is msg_type
    heard = graph.collect(msg_type, "/cmd_vel_raw")
    graph.wait_for(lambda: actor.cmd_pub.get_subscription_count() >= 1, 5.0, "the probe")
    count = len(heard)
    actor.stop()  # the actor's last word: zero velocity, in the chosen type
    graph.wait_for(lambda: len(heard) > count, 3.0, "the actor's zero command")
    assert (heard[-1].twist if stamped else heard[-1]).linear.x == 0.0
    if stamped:
        assert heard[-1].header.frame_id == "base_link" and heard[-1].header.stamp.sec > 0
    base = graph.add(Node(f"base_stand_in_{time.monotonic_ns()}"))
    cmd = base.create_publisher(msg_type, "/cmd_vel", 10)
    graph.wait_for(lambda: cmd.get_subscription_count() >= 1, 5.0, "the world model's subscription")
    deadline = time.monotonic() + 3.0
    while time.monotonic() < deadline and abs(float(world_model._action[0]) - 0.2) > 1e-6:
        cmd.publish(velocity_message(base, 0.2, -0.1, stamped))
        time.sleep(0.05)
    assert world_model._action.tolist() == pytest.approx([0.2, -0.1]), "the world model never read the command"
