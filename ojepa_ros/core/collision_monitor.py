"""The collision monitor's geometry: does a velocity command drive the robot's footprint into what the range
scanner sees? No learned model: scan points, a round footprint, the command's arc, the base's braking.

Like Nav2's collision_monitor, two zones decide: a **stop zone** and a **slowdown zone**, both the footprint
(radius `footprint_radius`, inflated by a margin) swept along the arc the command (v, w) drives, for a
distance that grows with speed:

* stop zone: footprint + `stop_margin`, swept over the braking distance |v| * latency + v^2 / (2 deceleration):
  what the base covers before it can stand still. A scan point there -> linear velocity 0.
* slowdown zone: footprint + `slowdown_margin`, swept over the braking distance plus |v| * slowdown_time.
  A point there -> linear velocity x `slowdown_ratio` (and checked again against the stop zone).

Only points the motion *approaches* count (the swept footprint comes nearer to them than it is now), so a robot
next to a wall may still back or turn away from it. Rotation in place sweeps nothing for a round footprint and
is left alone, except when the bumper reports contact or the scan is stale: then the command is (0, 0).
Points follow REP 117: NaN ranges are invalid (ignored), +inf is nothing in range, -inf is an object closer
than range_min (taken as at range_min on its beam).

`MonitorGate` adds what the check alone does not know: the bumper, a missing scan, the robot's hardware limits
and the straight back-off from a contact. collision_monitor_node and `ojepa eval` both drive through it, so the
evaluated robot has the same last guard as the deployed one.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Sequence

import numpy as np

from ojepa_ros.core.safety import ROBOT_LIMITS

ARC_STEP_FRACTION = 0.25  # sweep poses at most footprint_radius x this apart along the arc
ARC_STEP_TURN = 0.02  # rad: and at most this turn of heading apart (a chord across a tight arc cuts its start)
STANDSTILL = 1e-6  # m/s: a linear speed below this is rotation in place (and keeps w / v finite)


@dataclass(frozen=True)
class MonitorConfig:
    footprint_radius: float = 0.18  # m: the embedded robot's collision cylinder (sim NavEnvConfig.robot_radius)
    stop_margin: float = 0.05  # m beyond the footprint
    slowdown_margin: float = 0.10  # m beyond the footprint
    slowdown_ratio: float = 0.3  # linear speed kept in the slowdown zone
    deceleration: float = 2.0  # m/s^2 the base can brake with (core/safety.py ROBOT_LIMITS)
    latency: float = 0.1  # s from a command to the base acting on it, scan age included
    slowdown_time: float = 0.5  # s of travel beyond the braking distance the slowdown zone looks ahead

    def __post_init__(self) -> None:
        if not (self.footprint_radius > 0 and 0 <= self.stop_margin <= self.slowdown_margin
                and 0 <= self.slowdown_ratio <= 1 and self.deceleration > 0 and self.latency >= 0
                and self.slowdown_time >= 0):
            raise ValueError(f"inconsistent collision monitor settings: {self}")

    def braking_distance(self, v: float) -> float:
        return abs(v) * self.latency + v * v / (2.0 * self.deceleration)


@dataclass(frozen=True)
class Verdict:
    command: tuple[float, float]  # (v, w) allowed
    zone: str  # clear | slowdown | stop
    nearest: float  # m from the footprint's edge to the nearest point the motion approaches (inf if none)


def scan_points(ranges: np.ndarray, angle_min: float, angle_increment: float, range_min: float,
                range_max: float, pose: Sequence[float] = (0.0, 0.0, 0.0)) -> np.ndarray:
    """[N, 2] points (m) in the base frame from a planar scan taken at `pose` (x, y, yaw of the scanner in the
    base frame), REP 117: NaN and out-of-range returns dropped, +inf (nothing in range) dropped, -inf (too
    close to measure) kept at range_min on its beam."""
    ranges = np.asarray(ranges, dtype=np.float64).reshape(-1)
    angles = angle_min + angle_increment * np.arange(ranges.size)
    too_close = ranges == -np.inf
    valid = (np.isfinite(ranges) & (ranges >= range_min) & (ranges <= range_max)) | too_close
    r = np.where(too_close, range_min, ranges)[valid]
    a = angles[valid] + pose[2]
    return np.stack([pose[0] + r * np.cos(a), pose[1] + r * np.sin(a)], axis=1)


def arc_poses(v: float, w: float, distance: float, step: float) -> np.ndarray:
    """[K, 2] positions of the base along the arc driven by (v, w) for `distance` m of travel, from (0, 0)."""
    if distance <= 0 or abs(v) < STANDSTILL:
        return np.zeros((1, 2))
    curvature = w / v
    step = min(step, ARC_STEP_TURN / abs(curvature)) if curvature else step
    s = np.linspace(0.0, distance, max(2, math.ceil(distance / step) + 1)) * math.copysign(1.0, v)
    if abs(curvature) < 1e-6:
        return np.stack([s, np.zeros_like(s)], axis=1)
    return np.stack([np.sin(curvature * s) / curvature, (1.0 - np.cos(curvature * s)) / curvature], axis=1)


def _closest_and_now(points: np.ndarray, sweep: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Per point [N]: the least distance to the swept centre's path (its segments between the sweep's poses,
    not just the poses: a point beside the robot is passed closest between two of them) and the distance now."""
    now = np.hypot(points[:, 0] - sweep[0, 0], points[:, 1] - sweep[0, 1])
    if len(sweep) < 2:
        return now, now
    a, b = sweep[:-1, None, :], sweep[1:, None, :]  # [K-1, 1, 2]
    ab = b - a
    t = np.clip(((points[None] - a) * ab).sum(-1) / np.maximum((ab * ab).sum(-1), 1e-18), 0.0, 1.0)  # [K-1, N]
    nearest = a + t[..., None] * ab
    return np.hypot(*(points[None] - nearest).transpose(2, 0, 1)).min(axis=0), now


def _approached_within(points: np.ndarray, sweep: np.ndarray, radius: float) -> np.ndarray:
    """Mask of points the swept centre comes within `radius` of, nearer than it is now."""
    closest, now = _closest_and_now(points, sweep)
    return (closest < radius) & (closest < now - 1e-9)


def check(points: np.ndarray, command: Sequence[float], cfg: MonitorConfig) -> Verdict:
    """The command allowed for (v, w) given scan points [N, 2] in the base frame (see the module docstring)."""
    v, w = float(command[0]), float(command[1])
    if not (math.isfinite(v) and math.isfinite(w)):
        return Verdict((0.0, 0.0), "stop", 0.0)
    step = cfg.footprint_radius * ARC_STEP_FRACTION
    reach_slow = cfg.braking_distance(v) + abs(v) * cfg.slowdown_time
    reach = cfg.footprint_radius + cfg.slowdown_margin + reach_slow
    points = np.asarray(points, dtype=np.float64).reshape(-1, 2)
    points = points[np.hypot(points[:, 0], points[:, 1]) <= reach + 1e-9]  # nothing farther can matter
    if abs(v) < STANDSTILL or points.size == 0:
        nearest = float(np.hypot(points[:, 0], points[:, 1]).min()) - cfg.footprint_radius if points.size else math.inf
        return Verdict((v, w), "clear", nearest)
    slow_sweep = arc_poses(v, w, reach_slow, step)
    stop_sweep = arc_poses(v, w, cfg.braking_distance(v), step)
    if _approached_within(points, stop_sweep, cfg.footprint_radius + cfg.stop_margin).any():
        return Verdict((0.0, w), "stop", _nearest(points, slow_sweep, cfg))
    if _approached_within(points, slow_sweep, cfg.footprint_radius + cfg.slowdown_margin).any():
        slow = v * cfg.slowdown_ratio
        slowed_stop = arc_poses(slow, w, cfg.braking_distance(slow), step)
        if _approached_within(points, slowed_stop, cfg.footprint_radius + cfg.stop_margin).any():
            return Verdict((0.0, w), "stop", _nearest(points, slow_sweep, cfg))
        return Verdict((slow, w), "slowdown", _nearest(points, slow_sweep, cfg))
    return Verdict((v, w), "clear", _nearest(points, slow_sweep, cfg))


def _nearest(points: np.ndarray, sweep: np.ndarray, cfg: MonitorConfig) -> float:
    closest, now = _closest_and_now(points, sweep)
    approached = closest < now - 1e-9
    return float(closest[approached].min()) - cfg.footprint_radius if approached.any() else math.inf


def zone_outline(command: Sequence[float], cfg: MonitorConfig, zone: str, segments: int = 16) -> np.ndarray:
    """[P, 2] a closed outline of the stop or slowdown zone for `command` in the base frame (for RViz):
    the inflated footprint at both ends of the sweep joined along the arc's sides."""
    v, w = float(command[0]), float(command[1])
    margin = cfg.stop_margin if zone == "stop" else cfg.slowdown_margin
    radius = cfg.footprint_radius + margin
    distance = cfg.braking_distance(v) + (abs(v) * cfg.slowdown_time if zone == "slowdown" else 0.0)
    sweep = arc_poses(v, w, distance, cfg.footprint_radius * ARC_STEP_FRACTION)
    if len(sweep) == 1:
        angles = np.linspace(0, 2 * np.pi, 2 * segments, endpoint=False)
        return np.stack([radius * np.cos(angles), radius * np.sin(angles)], axis=1)
    heading = np.arctan2(np.gradient(sweep[:, 1]), np.gradient(sweep[:, 0]))
    normal = np.stack([-np.sin(heading), np.cos(heading)], axis=1)
    left, right = sweep + radius * normal, sweep - radius * normal
    cap = np.linspace(-np.pi / 2, np.pi / 2, segments + 1)  # both sides and straight ahead
    end = sweep[-1] + radius * np.stack([np.cos(heading[-1] + cap), np.sin(heading[-1] + cap)], axis=1)
    start = sweep[0] + radius * np.stack([np.cos(heading[0] + np.pi + cap), np.sin(heading[0] + np.pi + cap)], axis=1)
    return np.vstack([right, end, left[::-1], start])


@dataclass(frozen=True)
class GateResult:
    command: tuple[float, float]  # (v, w) let out to the base
    state: str  # clear | slowdown: ... | stop: ... | back off: bumper contact
    zone: str  # the scan check's zone (clear where it did not run)
    checked: tuple[float, float] | None = None  # the (clipped) command the scan check judged, where it ran


class MonitorGate:
    """bumper(pressed) as the contact switch reports; gate(command, points) -> what goes to the base: the scan
    check, the bumper and its back-off.

    While the bumper is pressed only a straight command the other way from the one the robot drove when it
    closed goes out (scan-checked); anything else, a non-finite command or no fresh scan (points None) is (0, 0).
    Commands are first clipped to `limits` (v, w), by default the robot's hardware limits (ROBOT_LIMITS)."""

    def __init__(self, cfg: MonitorConfig, limits: tuple[float, float] | None = None) -> None:
        limits = limits or (ROBOT_LIMITS.linear_velocity, ROBOT_LIMITS.angular_velocity)
        self.cfg, self.limits = cfg, (float(limits[0]), float(limits[1]))
        self.reset()

    def reset(self) -> None:
        self._bumper = False
        self._driven = 0.0  # sign of the last linear speed let out while the bumper was free
        self._contact_sign = 0.0  # which way the robot was driving when the bumper closed (0: unknown)

    def bumper(self, pressed: bool) -> None:
        if pressed and not self._bumper:
            self._contact_sign = self._driven
        self._bumper = bool(pressed)

    def gate(self, command: Sequence[float], points: np.ndarray | None) -> GateResult:
        """points: [N, 2] fresh scan points in the base frame, or None when there is no fresh scan."""
        result = self._decide(float(command[0]), float(command[1]), points)
        if not self._bumper and abs(result.command[0]) > 0:
            self._driven = math.copysign(1.0, result.command[0])
        return result

    def _decide(self, v: float, w: float, points: np.ndarray | None) -> GateResult:
        if not (math.isfinite(v) and math.isfinite(w)):
            return GateResult((0.0, 0.0), "stop: command not finite", "stop")
        v = float(np.clip(v, -self.limits[0], self.limits[0]))
        w = float(np.clip(w, -self.limits[1], self.limits[1]))
        backing_off = self._bumper and v * self._contact_sign < 0 and w == 0.0
        if self._bumper and not backing_off:
            return GateResult((0.0, 0.0), "stop: bumper contact", "stop")
        if points is None:
            return GateResult((0.0, 0.0), "stop: no fresh scan", "stop")
        verdict = check(points, (v, w), self.cfg)
        if backing_off:
            return GateResult(verdict.command, "back off: bumper contact", verdict.zone, (v, w))
        state = verdict.zone if verdict.zone == "clear" else f"{verdict.zone}: obstacle {verdict.nearest:.2f} m " \
                                                            "from the footprint"
        return GateResult(verdict.command, state, verdict.zone, (v, w))
