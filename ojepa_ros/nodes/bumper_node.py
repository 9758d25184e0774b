"""bumper_node: a contact sensor that reports touches only, as the bumper level sim_node publishes on `collision`.

Gazebo's contact system sends a message per physics step while the body touches something and nothing when it
does not; with sim:=gazebo each of them arrives here as `true` on `bumper/touch` (config/gz_bridge.yaml).
`collision` (std_msgs/Bool, what the actor, cost_node, memory_node and the collision monitor read) is then true
while the last touch is at most `hold` s old by the node's clock (sim time under use_sim_time), else false,
published at `rate` Hz.
"""

from __future__ import annotations

from rclpy.node import Node
from rclpy.time import Time
from std_msgs.msg import Bool

from ojepa_ros.nodes import params as P
from ojepa_ros.nodes.runtime import run_node

PARAMS = {
    "hold": P.ranged(0.1, 0.01, 1.0, "s a touch keeps `collision` true", read_only=True),
    "rate": P.ranged(50.0, 1.0, 1000.0, "Hz at which `collision` is published", read_only=True),
}


class BumperNode(Node):
    def __init__(self, **kwargs) -> None:
        super().__init__("bumper_node", **kwargs)
        self.p = P.declare(self, PARAMS)
        self._touched: Time | None = None
        self.pub = self.create_publisher(Bool, "collision", 10)
        self.create_subscription(Bool, "bumper/touch", self._on_touch, 10)
        self.create_timer(1.0 / self.p["rate"], self._publish)

    def _on_touch(self, msg: Bool) -> None:
        if msg.data:
            self._touched = self.get_clock().now()

    def _publish(self) -> None:
        age = None if self._touched is None else (self.get_clock().now() - self._touched).nanoseconds * 1e-9
        self.pub.publish(Bool(data=age is not None and age <= self.p["hold"]))


def main(args: list[str] | None = None) -> None:
    run_node(BumperNode, args)


if __name__ == "__main__":
    main()
