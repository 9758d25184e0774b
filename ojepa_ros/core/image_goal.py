"""Homing on a goal image: look around for it, then drive to where the goal locator says it was taken.

Search: the robot turns in place one full turn, and every view's sighting (core/goal_locator.py) that is
confident enough is placed in the odometry frame. Track: the goal is the weighted mean of those placements,
each weighted by confidence / (0.2 m + its distance)^2, so the near views, which the locator reads best,
decide the end. The pose planner steers toward that point; it is reached within the goal tolerance, like a
pose goal. Only relative odometry is used: no position is looked up in anything learned.
"""

from __future__ import annotations

import math

import numpy as np
from torch import Tensor

from ojepa_ros.core.goal_locator import GoalLocator

NEAR_WEIGHT = 0.2  # m added to a sighting's distance in its weight


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
            weight = sight.confidence / (NEAR_WEIGHT + math.hypot(rx, ry)) ** 2
            self._weight += weight
            self._sum += weight * (np.asarray(pose[:2], dtype=float) + (c * rx - s * ry, s * rx + c * ry))
        if self.searching and self.turned >= self.search_turn:
            self.searching = self._weight == 0
            self.turned = 0.0  # nothing seen in a whole turn: look again
        return None if self.searching else self.estimate
