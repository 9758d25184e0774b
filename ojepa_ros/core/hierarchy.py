"""The high level of the hierarchical actor: a route of subgoals over the roadmap, replanned at its own rate.

Flat MPC sees 1.6 s ahead and minimises distance to the goal, so a goal behind a wall leaves it pressed
against the wall (flat: 36 % of 50 cross-room pairs, nearly all of them neighbouring rooms). The high level
searches the roadmap (level-2 states from experience, see core/roadmap.py) every `period` control steps
(8 = one level-2 step); a subgoal is a cell's level-2 state, whose odometry part the low level steers to;
every control step it hands the low level the farthest route point within `lookahead` metres (along the
route) that is in sight (Roadmap.in_sight: a straight drive there stays over visited cells with clearance), so
the low level's straight-line goal cost never pulls it round a door jamb; the goal itself ends the route.
"""

from __future__ import annotations

from typing import Sequence

import numpy as np

from ojepa_ros.core.roadmap import Roadmap


class SubgoalPlanner:
    """subgoal(xy, goal) -> the low level's target; `route` [S, 2] is the remaining route (for RViz)."""

    def __init__(self, roadmap: Roadmap, lookahead: float = 1.0, period: int = 8, max_snap: float = 1.0,
                 sight_clearance: float = 0.1) -> None:
        """max_snap: m; a robot or goal farther than this from every roadmap cell is outside what experience
        covers, and the low level is sent to the goal directly (flat MPC) rather than along a made-up route.
        sight_clearance: m; the least predicted clearance of the cells a straight drive to a subgoal crosses."""
        if not (lookahead > 0 and period >= 1 and max_snap > 0):
            raise ValueError("lookahead and max_snap must be > 0, period >= 1")
        self.roadmap, self.lookahead, self.period, self.max_snap = roadmap, lookahead, period, max_snap
        self.sight_clearance = sight_clearance
        self.reset()

    def reset(self) -> None:
        self.route = np.zeros((0, 2))
        self._goal: np.ndarray | None = None
        self._since_replan = 0
        self.replans = 0

    def _replan(self, xy: np.ndarray, goal: np.ndarray) -> None:
        start, start_gap = self.roadmap.nearest(xy)
        end, end_gap = self.roadmap.nearest(goal)
        cells = self.roadmap.shortest_path(start, end) if max(start_gap, end_gap) <= self.max_snap else []
        self.route = np.vstack([self.roadmap.centres[cells], goal[None]]) if cells else goal[None].copy()
        self._goal, self._since_replan = goal, 0
        self.replans += 1

    def subgoal(self, xy: Sequence[float], goal: Sequence[float]) -> np.ndarray:
        """The low level's target [2] for a robot at xy heading for goal (both odometry-frame metres)."""
        xy, goal = np.asarray(xy, dtype=float), np.asarray(goal, dtype=float)
        if self._goal is None or not np.array_equal(goal, self._goal) or self._since_replan >= self.period:
            self._replan(xy, goal)
        self._since_replan += 1
        here = int(np.argmin(np.hypot(*(self.route - xy[None]).T)))
        self.route = self.route[here:]  # behind the robot is done: the route only shrinks between replans
        along = np.concatenate([[0.0], np.cumsum(np.hypot(*np.diff(self.route, axis=0).T))])
        reach = max(1, int(np.searchsorted(along, self.lookahead, side="right")) - 1)  # the next point at least
        for i in range(min(reach, len(self.route) - 1), 0, -1):
            if self.roadmap.in_sight(xy, self.route[i], self.sight_clearance):
                return self.route[i]
        return self.route[min(1, len(self.route) - 1)]
