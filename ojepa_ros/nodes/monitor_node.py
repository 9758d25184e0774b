"""monitor_node: the runner's window on a run: progress lines, trajectory, actor timing, goal outcome.

Not one of the six agent modules: `ojepa agent` and the end-to-end test use it to watch the graph.
"""

from __future__ import annotations

import math

import numpy as np
from diagnostic_msgs.msg import DiagnosticArray
from geometry_msgs.msg import PoseStamped
from nav_msgs.msg import Odometry
from rclpy.node import Node
from std_msgs.msg import Bool, String

from ojepa_ros.nodes.convert import odometry_to_array, InputError
from ojepa_ros.nodes.qos import LATCHED, SENSOR


class MonitorNode(Node):
    def __init__(self, verbose: bool = True, **kwargs) -> None:
        super().__init__("monitor_node", **kwargs)
        self.verbose = verbose
        self.trajectory: list[tuple[float, float]] = []
        self.status = "unknown"
        self.goal: tuple[float, float] | None = None
        self.actor_stats: dict[str, str] = {}
        self.collisions = 0
        self.start = self._now()
        self.reached_after: float | None = None
        self.create_subscription(Odometry, "odom", self._on_odom, SENSOR)
        self.create_subscription(String, "ojepa/actor_status", self._on_status, 10)
        self.create_subscription(PoseStamped, "ojepa/goal", self._on_goal, LATCHED)
        self.create_subscription(DiagnosticArray, "diagnostics", self._on_diagnostics, 10)
        self.create_subscription(Bool, "collision", self._on_collision, 10)
        self.create_timer(1.0, self._report)

    def _now(self) -> float:
        return self.get_clock().now().nanoseconds * 1e-9

    def _on_odom(self, msg: Odometry) -> None:
        try:
            x, y, *_ = odometry_to_array(msg)
        except InputError:
            return
        self.trajectory.append((x, y))

    def _on_goal(self, msg: PoseStamped) -> None:
        self.goal = (msg.pose.position.x, msg.pose.position.y)
        self.start, self.reached_after = self._now(), None

    def _on_status(self, msg: String) -> None:
        if msg.data == "reached" and self.status != "reached" and self.goal is not None:
            self.reached_after = self._now() - self.start
        self.status = msg.data

    def _on_collision(self, msg: Bool) -> None:
        self.collisions += int(msg.data)

    def _on_diagnostics(self, msg: DiagnosticArray) -> None:
        for status in msg.status:
            if status.name == "actor_node: control":  # not "actor_node: chosen plan"
                self.actor_stats = {kv.key: kv.value for kv in status.values}

    def distance_to_goal(self) -> float:
        if not self.trajectory or self.goal is None:
            return math.nan
        return float(np.hypot(self.trajectory[-1][0] - self.goal[0], self.trajectory[-1][1] - self.goal[1]))

    def _report(self) -> None:
        if not self.verbose:
            return
        pos = "(%.2f, %.2f)" % self.trajectory[-1] if self.trajectory else "(no odometry yet)"
        print(f"[{self._now() - self.start:6.1f} s] status={self.status:<8} pos={pos} "
              f"distance_to_goal={self.distance_to_goal():.2f} m", flush=True)
