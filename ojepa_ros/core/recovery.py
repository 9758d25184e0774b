"""What the actor does when planning stops getting it anywhere: a progress checker and bounded recovery behaviours
(the ideas of Nav2's progress checker and behavior server: back up, spin, wait; written for this actor).

ProgressChecker: while a goal is active, the robot must move `required_movement_radius` from where it last made
progress, or turn `required_movement_angle` toward the goal, within `movement_time_allowance`; else it is stuck.
Recovery then runs its behaviours in order (`recovery_behaviours`), each bounded in time and distance, and hands
back to the planner:

* BackUp: straight back `backup_distance` at `backup_speed`, only while the footprint swept over the rest of the
  way (plus REAR_CLEARANCE) stays clear of the perceived obstacle points and the scan, with a fresh scan (the
  camera does not see behind), and not after a contact made while reversing (it backs off a front contact).
* Spin: in place, up to `spin_angle`, toward the side with more free range; not while the bumper is pressed.
* Wait: clears the perceived obstacle memory (stale points that closed a gap), then holds still `wait_duration`
  while the camera perceives afresh.

A bumper contact while driving starts the same sequence at once, after holding still up to `wait_duration` for
the bumper to release. `max_recoveries` recoveries with no progress in between abort the goal. While the bumper
is pressed the collision monitor lets out only a straight back-off from the contact, so only BackUp moves then.
Commands here are requests: the policy sends them through its CommandLimiter.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, fields

import numpy as np

from ojepa_ros.core.collision_monitor import MonitorConfig, check

MOVING = 0.02  # m/s: a commanded speed above this is driving (a contact then starts a recovery)
REAR_CLEARANCE = 0.05  # m beyond the footprint the back-up keeps from every point (the monitor's stop margin)
FREE_SECTOR = math.pi / 4  # rad either side of straight left / right: where Spin reads each side's free range
TIME_SLACK = 1.0  # s: a behaviour gives up after twice its nominal time plus this (a base that does not follow)
EPS = 1e-9  # s, m: sums of control steps land a hair off the round numbers they add up to

BEHAVIOURS = ("back_up", "spin", "wait")


@dataclass(frozen=True)
class RecoveryConfig:
    """The recovery's settings (SI units); all but the footprint are actor_node parameters (RECOVERY_DEFAULTS)."""

    required_movement_radius: float = 0.25  # m the robot must move within movement_time_allowance ...
    required_movement_angle: float = 0.5  # rad ... or turn toward the goal
    movement_time_allowance: float = 6.0  # s
    backup_distance: float = 0.15  # m
    backup_speed: float = 0.1  # m/s
    spin_angle: float = 1.57  # rad, at most
    spin_speed: float = 0.8  # rad/s
    wait_duration: float = 1.0  # s
    max_recoveries: int = 4  # recoveries in a row without progress before the goal fails
    behaviours: tuple[str, ...] = BEHAVIOURS  # tried in this order at each recovery (some of BEHAVIOURS, each once)
    footprint_radius: float = 0.18  # m: the round footprint the back-up sweeps

    @classmethod
    def from_params(cls, p: dict, footprint_radius: float) -> RecoveryConfig:
        """From a flat dict named as RECOVERY_DEFAULTS (other keys ignored)."""
        return cls(**{f.name: p[f.name] for f in fields(cls) if f.name in p},
                   behaviours=tuple(p.get("recovery_behaviours", BEHAVIOURS)), footprint_radius=footprint_radius)


# The actor's recovery settings (config/agent.yaml, actor_node), merged into mpc.DEFAULTS; inclusive ranges.
RECOVERY_DEFAULTS: dict[str, float | int | bool | list[str]] = {
    "recovery_enabled": True,  # false: the planner alone, however long it sits still
    "recovery_behaviours": list(BEHAVIOURS),
    **{f.name: f.default for f in fields(RecoveryConfig) if f.name not in ("behaviours", "footprint_radius")},
}
RECOVERY_RANGES: dict[str, tuple[float, float]] = {
    "required_movement_radius": (0.01, 2.0),
    "required_movement_angle": (0.05, math.pi),
    "movement_time_allowance": (0.5, 120.0),
    "backup_distance": (0.01, 0.5),
    "backup_speed": (0.01, 0.25),
    "spin_angle": (0.1, math.pi),
    "spin_speed": (0.05, 1.5),
    "wait_duration": (0.0, 10.0),
    "max_recoveries": (1, 20),
}
RECOVERY_CHECKS = {
    "recovery_enabled": (lambda v: isinstance(v, bool), "must be true or false"),
    "recovery_behaviours": (lambda v: 0 < len(v) == len(set(v)) and set(v) <= set(BEHAVIOURS),
                            f"must name some of {BEHAVIOURS}, each once"),
}


@dataclass(frozen=True)
class Surroundings:
    """What a behaviour judges by, this control step."""

    pose: np.ndarray  # (x, y, yaw), odometry frame
    obstacles: np.ndarray  # [P, 2] perceived obstacle points, odometry frame (core/obstacle_memory.py)
    scan: np.ndarray | None  # [N, 2] range-scan points, base frame; None: no fresh scan
    contact: bool  # the bumper reports contact now

    def points_in_base(self) -> np.ndarray:
        """[P + N, 2] the perceived points moved into the base frame, with the scan's."""
        x, y, yaw = (float(v) for v in self.pose)
        offset = np.asarray(self.obstacles, dtype=float).reshape(-1, 2) - (x, y)
        c, s = math.cos(yaw), math.sin(yaw)
        local = offset @ np.array([[c, -s], [s, c]])
        return local if self.scan is None else np.concatenate([local, np.asarray(self.scan, float).reshape(-1, 2)])


def heading_error(pose: np.ndarray, goal: np.ndarray) -> float:
    """|rad| between the robot's heading and the bearing of the goal."""
    bearing = math.atan2(goal[1] - pose[1], goal[0] - pose[0]) - pose[2]
    return abs(math.atan2(math.sin(bearing), math.cos(bearing)))


class ProgressChecker:
    """update(pose, goal, dt) -> "progress", "stuck" or "" (neither yet), judged from the last progress."""

    def __init__(self, radius: float, angle: float, allowance: float) -> None:
        self.radius, self.angle, self.allowance = radius, angle, allowance
        self.reset()

    def reset(self) -> None:
        self._base: tuple[np.ndarray, float] | None = None
        self.stalled_s = 0.0  # s since the last progress

    def rebase(self, pose: np.ndarray, goal: np.ndarray) -> None:
        """Judge afresh from `pose` (after a recovery), keeping the best heading so far: turning back toward the
        goal after a spin away from it is no progress."""
        error = heading_error(pose, goal)
        best = error if self._base is None else min(error, self._base[1])
        self._base, self.stalled_s = (np.array(pose[:2], dtype=float), best), 0.0

    def update(self, pose: np.ndarray, goal: np.ndarray, dt: float) -> str:
        error = heading_error(pose, goal)
        if self._base is None:
            self._base, self.stalled_s = (np.array(pose[:2], dtype=float), error), 0.0
            return ""
        base_xy, base_error = self._base
        if math.hypot(*(pose[:2] - base_xy)) >= self.radius or base_error - error >= self.angle:
            self._base, self.stalled_s = (np.array(pose[:2], dtype=float), error), 0.0
            return "progress"
        self.stalled_s += dt
        return "stuck" if self.stalled_s >= self.allowance - EPS else ""


class Behaviour:
    """One bounded recovery motion: begin() says whether it may run now, command() drives it until None."""

    name = ""

    def begin(self, s: Surroundings, goal: np.ndarray, pressed_behind: bool) -> str | None:
        """None if it may run now (and it starts), else why not."""
        self._start, self._elapsed = np.array(s.pose, dtype=float), 0.0
        return None

    def command(self, s: Surroundings, dt: float) -> np.ndarray | None:
        """(v, w) to request this step, or None when done (or no longer safe)."""
        raise NotImplementedError


class BackUp(Behaviour):
    name = "back_up"

    def __init__(self, distance: float, speed: float, footprint_radius: float) -> None:
        self.distance, self.speed, self.radius = distance, speed, footprint_radius

    def rear_blocked(self, s: Surroundings, remaining: float) -> str | None:
        """Why backing up `remaining` m is not safe now, or None (a bumper pressed from the front is no reason:
        backing off is how the robot leaves that contact, and the collision monitor lets it)."""
        if s.scan is None:
            return "no fresh scan of the rear"
        sweep = MonitorConfig(footprint_radius=self.radius, stop_margin=REAR_CLEARANCE, slowdown_margin=REAR_CLEARANCE,
                              latency=remaining / self.speed, slowdown_time=0.0)
        verdict = check(s.points_in_base(), (-self.speed, 0.0), sweep)
        return None if verdict.zone == "clear" else f"an obstacle {max(verdict.nearest, 0.0):.2f} m behind"

    def begin(self, s: Surroundings, goal: np.ndarray, pressed_behind: bool) -> str | None:
        if pressed_behind:
            return "the contact was made reversing"
        return self.rear_blocked(s, self.distance) or super().begin(s, goal, pressed_behind)

    def command(self, s: Surroundings, dt: float) -> np.ndarray | None:
        remaining = self.distance - math.hypot(*(s.pose[:2] - self._start[:2]))
        if remaining <= EPS or self._elapsed >= 2 * self.distance / self.speed + TIME_SLACK - EPS:
            return None
        self._elapsed += dt
        if s.scan is None:  # a late scan: stand and wait for the next (within the time limit), not give up
            return np.zeros(2)
        return None if self.rear_blocked(s, remaining) else np.array([-self.speed, 0.0])


def free_range(points: np.ndarray, bearing: float, cap: float = 4.0) -> float:
    """m to the nearest base-frame point within FREE_SECTOR of `bearing` (cap if none)."""
    angle = np.arctan2(points[:, 1], points[:, 0]) - bearing
    inside = np.abs(np.arctan2(np.sin(angle), np.cos(angle))) <= FREE_SECTOR
    return float(min(cap, np.hypot(*points[inside].T).min())) if inside.any() else cap


class Spin(Behaviour):
    name = "spin"

    def __init__(self, angle: float, speed: float) -> None:
        self.angle, self.speed = angle, speed
        self.direction = 1.0  # +1 counter-clockwise (left), -1 clockwise

    def begin(self, s: Surroundings, goal: np.ndarray, pressed_behind: bool) -> str | None:
        if s.contact:
            return "bumper pressed"
        points = s.points_in_base()
        left, right = free_range(points, math.pi / 2), free_range(points, -math.pi / 2)
        if left == right:  # nothing tells the sides apart: toward the goal
            bearing = math.atan2(goal[1] - s.pose[1], goal[0] - s.pose[0]) - s.pose[2]
            left = math.sin(bearing)
            right = -left
        self.direction = 1.0 if left >= right else -1.0
        self._turned, self._yaw = 0.0, float(s.pose[2])
        return super().begin(s, goal, pressed_behind)

    def command(self, s: Surroundings, dt: float) -> np.ndarray | None:
        step = float(s.pose[2]) - self._yaw
        self._turned += abs(math.atan2(math.sin(step), math.cos(step)))
        self._yaw = float(s.pose[2])
        if self._turned >= self.angle - EPS or self._elapsed >= 2 * self.angle / self.speed + TIME_SLACK - EPS \
                or s.contact:
            return None
        self._elapsed += dt
        return np.array([0.0, self.direction * self.speed])


class Wait(Behaviour):
    name = "wait"

    def __init__(self, duration: float) -> None:
        self.duration = duration

    def command(self, s: Surroundings, dt: float) -> np.ndarray | None:
        if self._elapsed >= self.duration - EPS:
            return None
        self._elapsed += dt
        return np.zeros(2)


@dataclass
class RecoveryStep:
    """The recovery's word this control step."""

    command: np.ndarray  # (v, w) requested (before the limiter)
    behaviour: str  # back_up | spin | wait | hold (for the bumper to release after a contact) | failed
    started: str = ""  # "<behaviour> #n (why ...)" on the step a behaviour starts, else ""
    clear_obstacles: bool = False  # forget the perceived obstacle points now (Wait's start)
    failed: str = ""  # "stuck: ..." when the goal is given up


class Recovery:
    """step(surroundings, goal, commanded, dt) -> None (the planner drives) or the recovery's RecoveryStep."""

    def __init__(self, cfg: RecoveryConfig) -> None:
        self.cfg = cfg
        self.checker = ProgressChecker(cfg.required_movement_radius, cfg.required_movement_angle,
                                       cfg.movement_time_allowance)
        made = {"back_up": lambda: BackUp(cfg.backup_distance, cfg.backup_speed, cfg.footprint_radius),
                "spin": lambda: Spin(cfg.spin_angle, cfg.spin_speed), "wait": lambda: Wait(cfg.wait_duration)}
        self.behaviours: tuple[Behaviour, ...] = tuple(made[name]() for name in cfg.behaviours)
        self.reset()

    def reset(self) -> None:
        """A new goal: no recovery under way, none counted."""
        self.checker.reset()
        self._queue: list[Behaviour] = []
        self._active: Behaviour | None = None
        self._why, self._pressed_behind = "", False
        self._hold = 0.0  # s left to wait for the bumper to release before the behaviours are tried
        self.in_a_row = 0  # recoveries since the planner last made progress
        self.total = 0  # behaviours started for this goal (numbered so in `started`)
        self.failed = ""

    def step(self, s: Surroundings, goal: np.ndarray, commanded: np.ndarray, dt: float) -> RecoveryStep | None:
        """`commanded`: the (v, w) last sent (its sign says which way a contact was made)."""
        if self.failed:
            return RecoveryStep(np.zeros(2), "failed", failed=self.failed)
        if self._active is None and not self._queue:
            driving = abs(float(commanded[0])) > MOVING
            verdict = self.checker.update(s.pose, goal, dt)
            if verdict == "progress":
                self.in_a_row = 0
            if s.contact and driving:
                self._trigger(f"bumper contact driving {'forward' if commanded[0] > 0 else 'backward'}",
                              pressed_behind=float(commanded[0]) < 0)
                self._hold = self.cfg.wait_duration
            elif verdict == "stuck":
                self._trigger(f"no progress for {self.checker.stalled_s:.1f} s", pressed_behind=False)
            else:
                return None
            if self.failed:
                return RecoveryStep(np.zeros(2), "failed", failed=self.failed)
        return self._run(s, goal, dt)

    def _trigger(self, why: str, pressed_behind: bool) -> None:
        if self.in_a_row >= self.cfg.max_recoveries:
            self.failed = f"stuck: {why} after {self.in_a_row} recoveries in a row"
            return
        self.in_a_row += 1
        self._why, self._pressed_behind = why, pressed_behind
        self._queue = list(self.behaviours)

    def _run(self, s: Surroundings, goal: np.ndarray, dt: float) -> RecoveryStep | None:
        """The active behaviour's command; the next one that may run when it is done; None after the last."""
        if self._hold > EPS and s.contact:  # the monitor stops all motion while pressed: give it time to release
            self._hold -= dt
            return RecoveryStep(np.zeros(2), "hold")
        self._hold = 0.0
        skipped, started, clear = [], "", False
        while True:
            if self._active is not None:
                command = self._active.command(s, dt)
                if command is not None:
                    return RecoveryStep(command, self._active.name, started, clear)
                self._active = None
            if not self._queue:
                self.checker.rebase(s.pose, goal)  # the planner's progress is judged from here
                return None
            behaviour = self._queue.pop(0)
            why_not = behaviour.begin(s, goal, self._pressed_behind)
            if why_not:
                skipped.append(f"{behaviour.name}: {why_not}")
                continue
            self.total += 1
            self._active = behaviour
            clear = clear or isinstance(behaviour, Wait)
            started = (f"{behaviour.name} #{self.total} ({self._why}; recovery {self.in_a_row} of "
                       f"{self.cfg.max_recoveries})" + (f"; skipped {', '.join(skipped)}" if skipped else ""))
