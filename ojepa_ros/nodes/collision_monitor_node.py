"""collision_monitor_node: the last, independent check between the actor and the base (as Nav2's
collision_monitor): every command on `cmd_vel_raw` is checked against the range scanner (`scan`, a
sensor_msgs/LaserScan) and the bumper (`collision`) and goes out on `cmd_vel` unchanged, slowed or stopped
(core/collision_monitor.py). Topic names are relative, so a namespace moves them all; in the root namespace
they are `/cmd_vel_raw`, `/scan`, `/collision`, `/cmd_vel`. The graph remaps the actor's `cmd_vel` to
`cmd_vel_raw` (ojepa_ros/graph.py), so the monitor is the only publisher the base hears.

No learned model, and nothing a task can switch off: its parameters are read-only (set in the parameters
file at start-up) with minimum margins, it is not among the configurator's managed nodes, and it has no
enable flag. A scan older than `scan_timeout` (by its stamp), none yet, or an unreadable one, and bumper
contact, mean (0, 0), but for straight back-off from a contact: while pressed, a command that drives straight
the other way from the one the robot drove when the bumper closed goes out, if the scan lets it. A timer re-checks the command in force every CHECK_PERIOD, so an obstacle or a stale
scan between two commands stops the robot without waiting for the next command; a command source silent
for `cmd_timeout` gets one zero command.
"""

from __future__ import annotations

import math
import time

import numpy as np
from geometry_msgs.msg import Point32, PolygonStamped
from rclpy.node import Node
from sensor_msgs.msg import LaserScan
from std_msgs.msg import Bool, String

from ojepa_ros.core.collision_monitor import MonitorConfig, MonitorGate, zone_outline
from ojepa_ros.core.safety import ROBOT_LIMITS, CarriedClock
from ojepa_ros.nodes import params as P
from ojepa_ros.nodes.qos import SENSOR
from ojepa_ros.nodes.convert import InputError, scan_to_points
from ojepa_ros.nodes.runtime import run_node
from ojepa_ros.nodes.velocity import STAMPED_PARAM, velocity_message, velocity_of, velocity_type

CHECK_PERIOD = 0.02  # s
MAX_FUTURE_STAMP = 0.05  # s
_D = MonitorConfig()
PARAMS = {
    "footprint_radius": P.ranged(_D.footprint_radius, 0.05, 2.0, "m; the robot's round footprint", read_only=True),
    "stop_margin": P.ranged(_D.stop_margin, 0.02, 1.0, "m beyond the footprint: the stop zone", read_only=True),
    "slowdown_margin": P.ranged(_D.slowdown_margin, 0.02, 2.0, "m beyond the footprint: the slowdown zone "
                                "(>= stop_margin)", read_only=True),
    "slowdown_ratio": P.ranged(_D.slowdown_ratio, 0.0, 1.0, "share of the linear speed kept in the slowdown zone",
                               read_only=True),
    "deceleration": P.ranged(_D.deceleration, 0.1, ROBOT_LIMITS.linear_acceleration, "m/s^2 the base brakes "
                             "with: sizes the stop zone", read_only=True),
    "latency": P.ranged(_D.latency, 0.0, 1.0, "s from a command to the base acting on it (scan age included)",
                        read_only=True),
    "slowdown_time": P.ranged(_D.slowdown_time, 0.0, 5.0, "s of travel beyond the braking distance the slowdown "
                              "zone looks ahead", read_only=True),
    "scan_timeout": P.ranged(0.3, 0.05, 1.0, "s; a scan captured longer ago (its stamp) stops the robot",
                             read_only=True),
    "cmd_timeout": P.ranged(0.5, 0.05, 2.0, "s; after this long without a command, one zero command",
                            read_only=True),
    "base_frame": P.Param("base_link", "frame of the published zone outline", read_only=True),
    "scan_pose": P.Param([0.0, 0.0, 0.0], "x, y (m), yaw (rad) of the scanner in the base frame",
                         lambda v: len(v) == 3 and all(map(math.isfinite, v)), "must be 3 finite numbers",
                         read_only=True),
    "enable_stamped_cmd_vel": STAMPED_PARAM,
}


def _config_problem(p: dict) -> str | None:
    return None if p["slowdown_margin"] >= p["stop_margin"] else "slowdown_margin must be >= stop_margin"


class CollisionMonitorNode(Node):
    def __init__(self, **kwargs) -> None:
        super().__init__("collision_monitor_node", **kwargs)
        self.p = P.declare(self, PARAMS, joint_check=_config_problem)
        self._carried = CarriedClock()
        if _config_problem(self.p):
            self.get_logger().error(f"{_config_problem(self.p)}; using the default margins")
            self.p["stop_margin"], self.p["slowdown_margin"] = _D.stop_margin, _D.slowdown_margin
        self.cfg = MonitorConfig(**{k: self.p[k] for k in ("footprint_radius", "stop_margin", "slowdown_margin",
                                                            "slowdown_ratio", "deceleration", "latency",
                                                            "slowdown_time")})
        self.gate = MonitorGate(self.cfg)
        self._points: np.ndarray | None = None
        self._scan_stamp = -math.inf  # capture time (s, node clock) of the scan in _points
        self._raw = (0.0, 0.0)  # the command in force and when it came (monotonic)
        self._raw_at = -math.inf
        self._out = (0.0, 0.0)  # what was last published
        self._state = ""
        velocity = velocity_type(self.p["enable_stamped_cmd_vel"])
        self.cmd_pub = self.create_publisher(velocity, "cmd_vel", 10)
        self.state_pub = self.create_publisher(String, "~/state", 10)
        self.zone_pub = self.create_publisher(PolygonStamped, "~/stop_zone", 1)
        self.create_subscription(velocity, "cmd_vel_raw", self._on_cmd, 10)
        self.create_subscription(LaserScan, "scan", self._on_scan, SENSOR)
        self.create_subscription(Bool, "collision", self._on_bumper, 10)
        self.create_timer(CHECK_PERIOD, self._recheck)

    def _now(self) -> float:
        """This node's clock carried forward while it stands still (late /clock messages: core.safety.CarriedClock),
        so a scan is neither refused as from the future nor kept as fresh when it is not."""
        return self._carried.now(self.get_clock().now().nanoseconds * 1e-9, time.monotonic())

    # -- inputs -------------------------------------------------------------------------------
    def _on_scan(self, msg: LaserScan) -> None:
        try:
            self._points, self._scan_stamp = scan_to_points(msg, self._now(), MAX_FUTURE_STAMP, self.p["scan_pose"])
        except InputError as err:
            self.get_logger().error(f"scan refused: {err}", throttle_duration_sec=1.0)
            self._points = None
        self._recheck()

    def _on_bumper(self, msg: Bool) -> None:
        self.gate.bumper(bool(msg.data))
        self._recheck()

    def _on_cmd(self, msg) -> None:
        self._raw = velocity_of(msg)
        self._raw_at = time.monotonic()
        self._publish(self._allowed())

    # -- the check ------------------------------------------------------------------------------
    def _allowed(self) -> tuple[float, float]:
        fresh = self._points is not None and self._now() - self._scan_stamp <= self.p["scan_timeout"]
        result = self.gate.gate(self._raw, self._points if fresh else None)
        if result.zone != "clear" and result.checked is not None:
            self._publish_zone(result.checked)
        return self._set_state(result.state, result.command)

    def _recheck(self) -> None:
        """Between commands: the command in force against the latest scan and bumper; a silent source: zero."""
        if time.monotonic() - self._raw_at > self.p["cmd_timeout"]:
            if self._out != (0.0, 0.0):
                self._set_state("stop: no command", (0.0, 0.0))
                self._publish((0.0, 0.0))
            return
        allowed = self._allowed()
        if allowed != self._out:
            self._publish(allowed)

    def _set_state(self, state: str, command: tuple[float, float]) -> tuple[float, float]:
        if state != self._state:
            self._state = state
            self.state_pub.publish(String(data=state))
            if state.startswith("stop") and not state.startswith("stop: no command"):
                self.get_logger().warning(f"stopping the robot: {state}", throttle_duration_sec=1.0)
        return command

    def _publish(self, command: tuple[float, float]) -> None:
        self._out = command
        self.cmd_pub.publish(velocity_message(self, *command, self.p["enable_stamped_cmd_vel"], self.p["base_frame"]))

    def _publish_zone(self, command: tuple[float, float]) -> None:
        """The stop zone of the command refused or slowed, while someone watches (RViz)."""
        if self.zone_pub.get_subscription_count() == 0:
            return
        zone = PolygonStamped()
        zone.header.stamp = self.get_clock().now().to_msg()
        zone.header.frame_id = self.p["base_frame"]
        zone.polygon.points = [Point32(x=float(x), y=float(y)) for x, y in zone_outline(command, self.cfg, "stop")]
        self.zone_pub.publish(zone)

    def stop(self) -> None:
        """Shutdown: the last word to the base is zero velocity."""
        self._publish((0.0, 0.0))


def main(args: list[str] | None = None) -> None:
    run_node(CollisionMonitorNode, args)


if __name__ == "__main__":
    main()
