"""The final heading of a pose goal: once the position is reached, the robot turns in place to the goal's yaw,
as Nav2's goal checker does with its yaw_goal_tolerance, so a NavigateToPose or RViz goal ends facing the way
its arrow points. A goal without a yaw ends at its position, whatever the heading."""

from __future__ import annotations

import math

TURN_GAIN = 1.5  # rad/s of turn per rad of heading error
MIN_TURN_RATE = 0.25  # rad/s: the slowest turn asked for, so the last degrees do not creep under the limiter's ramp


def turn_rate(heading: float, goal_yaw: float, tolerance: float, max_rate: float) -> float | None:
    """The angular velocity (rad/s, within max_rate) that turns `heading` toward `goal_yaw` the short way round,
    or None once they are within `tolerance` (rad)."""
    error = math.atan2(math.sin(goal_yaw - heading), math.cos(goal_yaw - heading))
    if abs(error) <= tolerance:
        return None
    return math.copysign(min(max_rate, max(MIN_TURN_RATE, TURN_GAIN * abs(error))), error)
