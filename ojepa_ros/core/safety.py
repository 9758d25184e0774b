"""The last line before the effectors: a velocity/acceleration limiter and an input watchdog.

Both are deliberately dumb and model-free so they hold whatever the planner or the network does.
"""

from __future__ import annotations

import math
from typing import Iterable

import numpy as np


class CommandLimiter:
    """Clamp (v, w) commands to velocity limits and their change per call to accel * dt.

    Braking is rate-limited too: a stop (zero, or a non-finite command replaced by zero) ramps down
    at the acceleration limit, as a differential-drive base can actually follow (Nav2's velocity
    smoother does the same); an instantaneous jump to zero would only be ignored or skid the wheels.
    So after any input the output is always finite, within the velocity limits, and within
    accel * dt of the previous output. A dt that is not finite and positive allows no change.
    """

    def __init__(self, max_linear: float, max_angular: float, max_linear_accel: float,
                 max_angular_accel: float) -> None:
        limits = (max_linear, max_angular, max_linear_accel, max_angular_accel)
        if not all(math.isfinite(x) and x > 0 for x in limits):
            raise ValueError(f"limits must be finite and > 0, got {limits}")
        self.max_velocity = np.array([max_linear, max_angular])
        self.max_accel = np.array([max_linear_accel, max_angular_accel])
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


class Watchdog:
    """Which inputs went silent: a name is stale if never fed or last fed more than `timeout_s` ago."""

    def __init__(self, timeout_s: float, names: Iterable[str] = ()) -> None:
        self.timeout_s = timeout_s
        self._stamps: dict[str, float | None] = {name: None for name in names}

    def feed(self, name: str, stamp_s: float) -> None:
        self._stamps[name] = stamp_s

    def stale(self, now_s: float) -> list[str]:
        return [name for name, stamp in self._stamps.items()
                if stamp is None or now_s - stamp > self.timeout_s]

    def reset(self) -> None:
        self._stamps = dict.fromkeys(self._stamps)
