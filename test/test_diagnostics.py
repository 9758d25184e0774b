"""Every DiagnosticStatus the nodes publish names its hardware (`hardware_id`), over real DDS: the parameter's
value, else the node's namespace, else the host name."""

from __future__ import annotations

import socket
import time

from diagnostic_msgs.msg import DiagnosticArray
from nav_msgs.msg import Odometry
from ojepa_interfaces.msg import State
from rclpy.node import Node
from rclpy.parameter import Parameter

from ojepa_ros.nodes.diagnostics import hardware_id


def test_the_actor_names_its_namespace_and_the_cost_node_the_given_id(graph, tiny_model_path):
    from ojepa_ros.nodes.actor_node import ActorNode
    from ojepa_ros.nodes.cost_node import CostNode

    model = Parameter("model_path", value=str(tiny_model_path))
    graph.add(ActorNode(namespace="robot7", parameter_overrides=[model]))
    graph.add(CostNode(parameter_overrides=[model, Parameter("hardware_id", value="base_42")]))
    diagnostics = graph.collect(DiagnosticArray, "/robot7/diagnostics")
    terms = graph.collect(DiagnosticArray, "/ojepa/cost_terms")
    feeder = graph.add(Node(f"diag_feeder_{time.monotonic_ns()}"))
    state = feeder.create_publisher(State, "/ojepa/state", 10)
    odom = feeder.create_publisher(Odometry, "/odom", 10)
    deadline = time.monotonic() + 10.0
    while time.monotonic() < deadline and not (diagnostics and terms):
        state.publish(State(data=[0.1] * 16))
        odom.publish(Odometry())
        time.sleep(0.1)
    assert diagnostics and terms, "no diagnostics from the actor or no cost terms from the cost node"
    assert [s.hardware_id for s in diagnostics[-1].status] == ["robot7", "robot7"]
    assert [s.hardware_id for s in terms[-1].status] == ["base_42"]


def test_without_a_namespace_the_default_is_the_host_name(ros):
    node = Node(f"diag_plain_{time.monotonic_ns()}")
    nested = Node(f"diag_nested_{time.monotonic_ns()}", namespace="/fleet/robot3")
    try:
        assert hardware_id(node, "") == socket.gethostname() != ""
        assert hardware_id(nested, "") == "fleet_robot3"
        assert hardware_id(nested, "lidar_base") == "lidar_base"
    finally:
        node.destroy_node()
        nested.destroy_node()
