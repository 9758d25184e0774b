"""Homing on a goal image: look around for it, then drive to where the goal locator says it was taken.

Search: the robot turns in place one full turn; the most confident sighting (core/goal_locator.py) of the
turn, placed in the odometry frame, is the first estimate. Track: later sightings that are confident enough
and land near the estimate (within GATE, or half their distance) join a weighted mean, each weighted by
confidence / (0.2 m + its distance)^2, so the near views, which the locator reads best, decide the end; a
sighting far from the estimate is taken for a look-alike view and ignored. The pose planner steers toward
the estimate. Match: with a GoalMatcher and a scan, each step the goal view's forward ranges are matched
against the scan near the estimate (core/goal_match.py); a trusted match places the goal far better than the
locator, and the median of the recent matches becomes the estimate. Only relative odometry is used: no
position is looked up in anything learned.
"""

from __future__ import annotations

import math

import numpy as np
from torch import Tensor

from ojepa_ros.core.goal_locator import GoalLocator
from ojepa_ros.core.goal_match import GoalMatcher

NEAR_WEIGHT = 0.2  # m added to a sighting's distance in its weight
GATE = 0.5  # m: a tracked sighting farther than this (or half its distance) from the estimate is ignored
MATCHES = 9  # the recent matches whose median is the estimate
MATCH_DISTANCE = 3.0  # m: the goal is matched against the scan once the estimate is this close


class GoalHoming:
    """start(goal features, goal ranges); update(pose, features, scan) -> the goal's odometry xy, or None while
    still searching."""

    def __init__(self, locator: GoalLocator, confidence: float = 0.7, search_turn: float = 2 * math.pi,
                 matcher: GoalMatcher | None = None) -> None:
        if not (0.0 < confidence < 1.0 and search_turn > 0):
            raise ValueError("confidence must be in (0, 1) and search_turn > 0")
        self.locator, self.confidence, self.search_turn, self.matcher = locator, confidence, search_turn, matcher
        self.goal: Tensor | None = None
        self.reset()

    def reset(self) -> None:
        self.turned, self.searching, self._yaw = 0.0, True, None
        self._weight, self._sum, self._heading = 0.0, np.zeros(2), np.zeros(2)  # heading: weighted (cos, sin)
        self._best: tuple[float, np.ndarray, float, float] | None = None  # the search's (confidence, xy, weight, yaw)
        self.matches: list[np.ndarray] = []  # recent matched goal poses (x, y, yaw) in the odometry frame

    def start(self, goal_features: Tensor, goal_ranges: np.ndarray | None = None) -> None:
        """A new goal: its image features, and its forward ranges (the world model's range head) to match."""
        self.goal = goal_features
        self.reset()
        if self.matcher is not None and goal_ranges is not None:
            self.matcher.set_goal(goal_ranges)
        elif self.matcher is not None:
            self.matcher.goal_ranges = None

    @property
    def estimate(self) -> np.ndarray | None:
        if self.matches:
            return np.median(np.stack(self.matches)[:, :2], axis=0)
        return self._sum / self._weight if self._weight > 0 else None

    def _heading_estimate(self) -> float:
        if self.matches:
            yaws = np.stack(self.matches)[:, 2]
            return math.atan2(np.sin(yaws).mean(), np.cos(yaws).mean())
        return math.atan2(self._heading[1], self._heading[0])

    def _match(self, pose: np.ndarray, scan: np.ndarray) -> None:
        estimate = self.estimate
        offset = estimate - np.asarray(pose[:2], dtype=float)
        if float(np.hypot(*offset)) > MATCH_DISTANCE:
            return
        c, s = math.cos(pose[2]), math.sin(pose[2])
        guess = np.array([c * offset[0] + s * offset[1], -s * offset[0] + c * offset[1]])
        found = self.matcher.match(scan, guess, math.remainder(self._heading_estimate() - float(pose[2]), 2 * math.pi))
        if found is None:
            return
        x, y = found.xy
        placed = np.array([pose[0] + c * x - s * y, pose[1] + s * x + c * y, float(pose[2]) + found.yaw])
        self.matches = [*self.matches, placed][-MATCHES:]

    def update(self, pose: np.ndarray, features: Tensor, scan: np.ndarray | None = None) -> np.ndarray | None:
        """pose (x, y, yaw) in the odometry frame, features of the current view, scan [N, 2] points in the
        robot frame (None: none fresh)."""
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
            yaw = float(pose[2]) + sight.relative_yaw
            if self.searching:
                if self._best is None or sight.confidence > self._best[0]:
                    self._best = (sight.confidence, placed, weight, yaw)
            elif np.hypot(*(placed - self.estimate)) <= max(GATE, 0.5 * distance):
                self._weight += weight
                self._sum += weight * placed
                self._heading += weight * np.array([math.cos(yaw), math.sin(yaw)])
        if self.searching and self.turned >= self.search_turn:
            self.turned = 0.0  # nothing seen in a whole turn: look again
            if self._best is not None:
                self.searching = False
                _, placed, self._weight, yaw = self._best
                self._sum = self._weight * placed
                self._heading = self._weight * np.array([math.cos(yaw), math.sin(yaw)])
        if not self.searching and scan is not None and self.matcher is not None and self.matcher.goal_ranges is not None:
            self._match(pose, scan)
        return None if self.searching else self.estimate
