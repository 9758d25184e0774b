"""One NavigateToPose goal's bookkeeping, ROS-free: what the navigator node reports and when the goal ends.

The goal is handed to the actor through the configurator; the actor's status strings (`active`, `reached`,
`stale: …`, `fault: …`, `recovery: …` when the actor starts a recovery behaviour and `failed: …` when it gives
the goal up) say how it goes. A goal succeeds on `reached` once the configurator has taken it (so an earlier
goal's `reached` does not count) and then either follows another status or still stands REACHED_SETTLE later
(the actor repeats its status every second: a `reached` about the earlier goal can arrive just after the
configurator took the new one), and is aborted on `failed: …` (likewise), on a fault the actor still reports
FAULT_GRACE later, on the configurator not taking it within
ACK_TIMEOUT, or on running past its timeout.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

# nav2_msgs/action/NavigateToPose result codes (ojepa_interfaces carries the same).
NONE, UNKNOWN, TIMEOUT = 0, 9000, 9003
FAULT_GRACE = 1.0  # s an actor fault must last before the goal is aborted (a one-tick planning error passes)
ACK_TIMEOUT = 3.0  # s for the configurator to publish the goal as accepted on ojepa/goal
MIN_SPEED = 0.02  # m/s; slower, no time remaining is estimated (0 is sent, as Nav2 does)
REACHED_SETTLE = 2.0  # s after the goal was taken from which a `reached` with no other status before it counts


@dataclass(frozen=True)
class Outcome:
    """How a goal ended: `succeeded` or `aborted`, with the result's error code and message."""

    state: str
    code: int = NONE
    message: str = ""


class NavigationGoal:
    """A goal (x, y, yaw in the odometry frame) from the moment `started` (s, the node's clock)."""

    def __init__(self, x: float, y: float, yaw: float, started: float, timeout: float) -> None:
        self.x, self.y, self.yaw = x, y, yaw
        self.started, self.timeout = started, timeout
        self.acknowledged = False
        self.acknowledged_at = math.inf
        self._moved_on = False  # the actor reported something other than `reached` since the goal was taken
        self.reached = False
        self.failed = ""  # the actor's `failed: …` line, once it gave this goal up
        self.recoveries = 0
        self._last_status = ""
        self._fault: tuple[float, str] | None = None  # (since, status) of a fault the actor reports now

    def acknowledge(self, x: float, y: float, now: float) -> None:
        """The configurator published (x, y) as its goal at `now`: the actor drives to this goal from now on."""
        if math.isclose(x, self.x, abs_tol=1e-6) and math.isclose(y, self.y, abs_tol=1e-6) and not self.acknowledged:
            self.acknowledged, self.acknowledged_at = True, now

    def on_status(self, status: str, now: float) -> None:
        """An actor status line: counts each recovery once (the actor repeats its status every second)."""
        if status.startswith("recovery") and status != self._last_status:
            self.recoveries += 1
        if self.acknowledged and status != "reached":
            self._moved_on = True
        if status == "reached" and self.acknowledged and (self._moved_on or now - self.acknowledged_at >= REACHED_SETTLE):
            self.reached = True
        if status.startswith("failed") and self.acknowledged:
            self.failed = status
        if not status.startswith("fault"):
            self._fault = None
        elif self._fault is None:
            self._fault = (now, status)
        self._last_status = status

    def distance(self, x: float, y: float) -> float:
        """Straight-line distance (m) from (x, y) to the goal."""
        return math.hypot(self.x - x, self.y - y)

    def time_remaining(self, x: float, y: float, speed: float) -> float:
        """Seconds to the goal at `speed` (m/s) in a straight line; 0 when (nearly) standing."""
        return self.distance(x, y) / abs(speed) if abs(speed) >= MIN_SPEED else 0.0

    def outcome(self, now: float) -> Outcome | None:
        """How the goal ends at `now`, or None while it goes on."""
        if self.reached:
            return Outcome("succeeded")
        if self.failed:
            return Outcome("aborted", UNKNOWN, f"the actor gave the goal up: '{self.failed}'")
        if self._fault is not None and now - self._fault[0] >= FAULT_GRACE:
            return Outcome("aborted", UNKNOWN, f"the actor reports '{self._fault[1]}'")
        if not self.acknowledged and now - self.started > ACK_TIMEOUT:
            return Outcome("aborted", UNKNOWN, f"the configurator did not take the goal within {ACK_TIMEOUT:g} s "
                                               "(outside its world_bounds, or not running?)")
        if self.timeout > 0 and now - self.started > self.timeout:
            return Outcome("aborted", TIMEOUT, f"not reached within navigation_timeout ({self.timeout:g} s)")
        return None
