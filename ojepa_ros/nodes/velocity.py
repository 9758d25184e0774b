"""The velocity command's message type, chosen once for the whole graph: geometry_msgs/Twist (Gazebo's and most
drivers' default) or geometry_msgs/TwistStamped (what ROS 2 Jazzy's controllers and Nav2 send by default).

Every node that sends or reads `cmd_vel` (or the actor's `cmd_vel_raw`) declares `enable_stamped_cmd_vel`, Nav2's
name for the same switch, and builds its publisher or subscription from it, so one setting (the launch argument of
that name, `ojepa agent --stamped-cmd-vel`) keeps both ends of every velocity topic on the same type. A stamped
command carries the sender's clock and the base frame, so a base can judge how old it is.
"""

from __future__ import annotations

from geometry_msgs.msg import Twist, TwistStamped
from rclpy.node import Node

from ojepa_ros.nodes import params as P

STAMPED_PARAM = P.Param(False, "velocity commands (cmd_vel, cmd_vel_raw) as geometry_msgs/TwistStamped (stamp: this "
                               "node's clock, frame: the base frame) instead of geometry_msgs/Twist", read_only=True)
BASE_FRAME = "base_link"  # REP-105: the frame a velocity command is given in


def velocity_type(stamped: bool) -> type:
    """The message class of a velocity topic under this setting."""
    return TwistStamped if stamped else Twist


def velocity_message(node: Node, v: float, w: float, stamped: bool,
                     frame_id: str = BASE_FRAME) -> Twist | TwistStamped:
    """A command of linear speed v (m/s) and yaw rate w (rad/s), stamped with the node's clock when asked."""
    twist = Twist()
    twist.linear.x, twist.angular.z = float(v), float(w)
    if not stamped:
        return twist
    msg = TwistStamped(twist=twist)
    msg.header.stamp = node.get_clock().now().to_msg()
    msg.header.frame_id = frame_id
    return msg


def velocity_of(msg: Twist | TwistStamped) -> tuple[float, float]:
    """(linear.x, angular.z) of either type; not checked for NaN/inf (each reader decides what that means)."""
    twist = msg.twist if isinstance(msg, TwistStamped) else msg
    return float(twist.linear.x), float(twist.angular.z)
