"""Diagnostics every node publishes the same way: each DiagnosticStatus names the hardware it is about.

diagnostic_aggregator and rqt_robot_monitor group statuses by `hardware_id`; with several robots on one network it
is what tells their reports apart. `hardware_id` (a read-only parameter) is empty by default, which means the
node's namespace (`robot1`), or the computer's host name in the root namespace: the robot the graph runs on.
"""

from __future__ import annotations

import socket

from diagnostic_msgs.msg import DiagnosticArray, DiagnosticStatus
from rclpy.node import Node

from ojepa_ros.nodes import params as P

HARDWARE_ID_PARAM = P.Param("", "hardware_id of every DiagnosticStatus this node publishes; empty: its namespace "
                                "(robot1), or the host name in the root namespace", read_only=True)


def hardware_id(node: Node, value: str) -> str:
    """The hardware id the parameter value names: itself, else the namespace, else the host name."""
    return value or node.get_namespace().strip("/").replace("/", "_") or socket.gethostname()


def diagnostic_array(node: Node, statuses: list[DiagnosticStatus], hardware: str) -> DiagnosticArray:
    """The statuses, each with `hardware` as its hardware_id, in one array stamped with the node's clock."""
    for status in statuses:
        status.hardware_id = hardware
    msg = DiagnosticArray(status=statuses)
    msg.header.stamp = node.get_clock().now().to_msg()
    return msg
