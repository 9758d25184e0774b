"""The last line before the effectors: a velocity/acceleration limiter, an input watchdog, world bounds.

All deliberately dumb and model-free so they hold whatever the planner or the network does.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Iterable, Sequence

import numpy as np


@dataclass(frozen=True)
class HardwareLimits:
    """What the base can physically do; no setting may ask for more. SI units."""

    linear_velocity: float  # m/s
    angular_velocity: float  # rad/s
    linear_acceleration: float  # m/s^2, braking included
    angular_acceleration: float  # rad/s^2


# The embedded robot (ojepa_ros/sim): motors saturate at 0.5 m/s and 1.5 rad/s (nav_env.NavEnvConfig), the force
# and torque limits give 2 m/s^2 and 6 rad/s^2 (rooms_world.MAX_FORCE / ROBOT_MASS, MAX_TORQUE / yaw inertia).
# Another robot: change these to its datasheet values; the actor's and the collision monitor's parameter
# ranges follow.
ROBOT_LIMITS = HardwareLimits(linear_velocity=0.5, angular_velocity=1.5, linear_acceleration=2.0,
                              angular_acceleration=6.0)


class CommandLimiter:
    """Clamp (v, w) commands to velocity limits and their change per call to accel * dt.

    Braking is rate-limited too: a stop (zero, or a non-finite command replaced by zero) ramps down
    at the acceleration limit, as a differential-drive base can actually follow (Nav2's velocity
    smoother does the same); an instantaneous jump to zero would only be ignored or skid the wheels.
    So after any input the output is always finite, within the velocity limits, and within
    accel * dt of the previous output. A dt that is not finite and positive allows no change.

    brake(dt) is the safety stop (stale inputs, faults): toward zero at `stop_accel` (default: the comfort
    accelerations), which may be steeper than the comfort limit but never reverses or speeds up.
    """

    def __init__(self, max_linear: float, max_angular: float, max_linear_accel: float,
                 max_angular_accel: float, stop_accel: Sequence[float] | None = None) -> None:
        limits = (max_linear, max_angular, max_linear_accel, max_angular_accel)
        if not all(math.isfinite(x) and x > 0 for x in limits):
            raise ValueError(f"limits must be finite and > 0, got {limits}")
        self.max_velocity = np.array([max_linear, max_angular])
        self.max_accel = np.array([max_linear_accel, max_angular_accel])
        self.stop_accel = self.max_accel.copy() if stop_accel is None else np.asarray(stop_accel, dtype=float)
        if self.stop_accel.shape != (2,) or not (np.isfinite(self.stop_accel).all() and (self.stop_accel > 0).all()):
            raise ValueError(f"stop_accel must be two finite numbers > 0, got {stop_accel}")
        self.reset()

    def reset(self) -> None:
        self.last = np.zeros(2)
        self.fault: str | None = None  # why the last command was replaced, None if it was not
        self.faults = 0

    def limit(self, cmd: np.ndarray, dt: float) -> np.ndarray:
        """The command to publish now, given the one asked for and the time since the last publication."""
        cmd = np.asarray(cmd, dtype=float).reshape(-1)
        self.fault = None
        if cmd.shape != (2,) or not np.isfinite(cmd).all():
            self.fault = f"invalid command {cmd.tolist()} replaced by a stop"
            self.faults += 1
            cmd = np.zeros(2)
        target = np.clip(cmd, -self.max_velocity, self.max_velocity)
        step = self.max_accel * (dt if math.isfinite(dt) and dt > 0 else 0.0)
        moved = self.last + np.clip(target - self.last, -step, step)
        self.last = np.clip(moved, -self.max_velocity, self.max_velocity)  # guards rounding only
        return self.last.copy()

    def brake(self, dt: float) -> np.ndarray:
        """The safety stop's next command: the last one moved toward zero by stop_accel * dt."""
        self.fault = None
        self.last = ramp_to_zero(self.last, self.stop_accel, dt)
        return self.last.copy()


def ramp_to_zero(last: Sequence[float], decel: Sequence[float] | np.ndarray, dt: float) -> np.ndarray:
    """`last` moved toward zero by decel * dt per component, never past zero; a bad dt holds it, a
    non-finite `last` (which nothing should ever have sent) becomes zero."""
    last = np.nan_to_num(np.asarray(last, dtype=float), nan=0.0, posinf=0.0, neginf=0.0)
    step = np.asarray(decel, dtype=float) * (dt if math.isfinite(dt) and dt > 0 else 0.0)
    return np.sign(last) * np.maximum(np.abs(last) - step, 0.0)


def stopping_time(speed: Sequence[float], decel: Sequence[float]) -> float:
    """s until ramp_to_zero at `decel` brings every component of `speed` to zero."""
    return float(np.max(np.abs(np.asarray(speed, dtype=float)) / np.asarray(decel, dtype=float)))


def within_bounds(xy: Sequence[float], bounds: Sequence[float]) -> bool:
    """Whether a finite (x, y) lies inside bounds = (xmin, ymin, xmax, ymax), edges included."""
    x, y = float(xy[0]), float(xy[1])
    xmin, ymin, xmax, ymax = bounds
    return math.isfinite(x) and math.isfinite(y) and xmin <= x <= xmax and ymin <= y <= ymax


class Watchdog:
    """Which inputs went silent: a name is stale if never fed or last fed more than `timeout_s` ago.

    Feed it the capture stamp of the data (the image's or odometry's header), not the time it arrived: then
    the age it judges includes every delay on the way (transport, encoding, a queue behind a planning step).
    """

    def __init__(self, timeout_s: float, names: Iterable[str] = ()) -> None:
        self.timeout_s = timeout_s
        self._stamps: dict[str, float | None] = {name: None for name in names}

    def feed(self, name: str, stamp_s: float) -> None:
        self._stamps[name] = stamp_s

    def stale(self, now_s: float) -> list[str]:
        return [name for name, stamp in self._stamps.items()
                if stamp is None or now_s - stamp > self.timeout_s]

    def invalidate(self, name: str) -> None:
        """Forget `name`'s last feed: it is stale from now on (e.g. its latest message was refused)."""
        self._stamps[name] = None

    def age(self, name: str, now_s: float) -> float:
        """s since `name` was captured (inf if never fed)."""
        stamp = self._stamps.get(name)
        return math.inf if stamp is None else now_s - stamp

    def reset(self) -> None:
        self._stamps = dict.fromkeys(self._stamps)


class CarriedClock:
    """A node's clock that does not stand still between updates: the last reading plus the steady time since it
    changed. A sim-time clock only moves when a /clock message is handled, and under load those can wait behind
    other callbacks or be lost (best effort) for most of a second, while the data they would have dated keeps
    arriving: the node then thinks that data is from its future, or that stale data is fresh. Carried forward at
    the wall's rate, its time stays near the simulator's (a simulator that runs slower makes it run ahead, so the
    watchdog judges inputs older, never younger); with a clock that moves on its own (system time) it adds nothing.
    """

    def __init__(self) -> None:
        self._reading = -math.inf  # the clock's last distinct reading (s)
        self._since = 0.0  # steady time (s) when it took that value

    def now(self, reading_s: float, steady_s: float) -> float:
        """Time now (s) from the clock's current reading and a steady clock (time.monotonic())."""
        if reading_s != self._reading:
            self._reading, self._since = reading_s, steady_s
        return reading_s + max(0.0, steady_s - self._since)
