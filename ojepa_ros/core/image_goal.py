"""Homing on a goal image: look around for it, then drive to where the goal locator says it was taken.

Search: the robot turns in place one full turn; the most confident sighting (core/goal_locator.py) of the
turn, placed in the odometry frame, is the first estimate. Track: later sightings that are confident enough
and land near the estimate (within GATE, or half their distance) join a weighted mean, each weighted by
confidence / (0.2 m + its distance)^2, so the near views, which the locator reads best, decide the end; a
sighting far from the estimate is taken for a look-alike view and ignored. The pose planner steers toward
the estimate; it is reached within the goal tolerance, like a pose goal. Only relative odometry is used: no
position is looked up in anything learned.
"""

from __future__ import annotations

import math

import numpy as np
from torch import Tensor

from ojepa_ros.core.goal_locator import GoalLocator

NEAR_WEIGHT = 0.2  # m added to a sighting's distance in its weight
GATE = 0.5  # m: a tracked sighting farther than this (or half its distance) from the estimate is ignored


class GoalHoming:
    """start(goal features); update(pose, features) -> the goal's odometry xy, or None while still searching."""

    def __init__(self, locator: GoalLocator, confidence: float = 0.7, search_turn: float = 2 * math.pi) -> None:
        if not (0.0 < confidence < 1.0 and search_turn > 0):
            raise ValueError("confidence must be in (0, 1) and search_turn > 0")
        self.locator, self.confidence, self.search_turn = locator, confidence, search_turn
        self.goal: Tensor | None = None
        self.reset()

    def reset(self) -> None:
        self.turned, self.searching, self._yaw = 0.0, True, None
        self._weight, self._sum = 0.0, np.zeros(2)
        self._best: tuple[float, np.ndarray, float] | None = None  # the search's (confidence, placement, weight)

    def start(self, goal_features: Tensor) -> None:
        self.goal = goal_features
        self.reset()

    @property
    def estimate(self) -> np.ndarray | None:
        return self._sum / self._weight if self._weight > 0 else None

    def update(self, pose: np.ndarray, features: Tensor) -> np.ndarray | None:
        """pose (x, y, yaw) in the odometry frame, features of the current view."""
        if self.goal is None:
            raise RuntimeError("GoalHoming.update before start")
        if self._yaw is not None:
            self.turned += abs(math.remainder(float(pose[2]) - self._yaw, 2 * math.pi))
        self._yaw = float(pose[2])
        sight = self.locator.locate(features, self.goal)
        if sight.confidence >= self.confidence:
            c, s = math.cos(pose[2]), math.sin(pose[2])
            rx, ry = sight.relative_xy
            distance = math.hypot(rx, ry)
            placed = np.asarray(pose[:2], dtype=float) + (c * rx - s * ry, s * rx + c * ry)
            weight = sight.confidence / (NEAR_WEIGHT + distance) ** 2
            if self.searching:
                if self._best is None or sight.confidence > self._best[0]:
                    self._best = (sight.confidence, placed, weight)
            elif np.hypot(*(placed - self.estimate)) <= max(GATE, 0.5 * distance):
                self._weight += weight
                self._sum += weight * placed
        if self.searching and self.turned >= self.search_turn:
            self.turned = 0.0  # nothing seen in a whole turn: look again
            if self._best is not None:
                self.searching = False
                _, placed, self._weight = self._best
                self._sum = self._weight * placed
        return None if self.searching else self.estimate
