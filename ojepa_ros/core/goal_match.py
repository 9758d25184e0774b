"""Where a goal image was taken, by geometry: the goal view's forward ranges matched against the range scan.

The goal locator (core/goal_locator.py) places a goal image roughly (about 0.4 m off at 1-2 m). The world
model's range head reads from the goal image how far the nearest surface is in each sector of the camera's
view; the robot's scan, taken here, says where the surfaces are. A candidate goal pose near the locator's
guess is scored by the ranges a camera there would see among the scan's points against the goal view's
ranges; the best candidate is searched coarse to fine. A flat wall leaves a pose free along it, so a
candidate also pays for its distance from the guess. Only the scan and the image are read: nothing recalls
a position.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True)
class MatchConfig:
    radius: float = 0.8  # m around the guess the goal is searched for
    yaw_window: float = math.radians(30.0)  # either way around the guessed heading
    prior: float = 0.05  # m of range error a candidate pays per m it lies from the guess
    accept: float = 0.12  # trimmed mean range error (m) at or under which a match is trusted
    trim: int = 2  # the worst sectors left out of the error (occluded from here, or misread)

    def __post_init__(self) -> None:
        if not (self.radius > 0 and self.yaw_window >= 0 and self.prior >= 0 and self.accept > 0 and self.trim >= 0):
            raise ValueError(f"invalid MatchConfig {self}")


@dataclass(frozen=True)
class Match:
    """The goal pose in the robot frame (x forward, y left, yaw) and its trimmed mean range error (m)."""

    xy: np.ndarray
    yaw: float
    error: float


def view_ranges(points: np.ndarray, poses: np.ndarray, edges: np.ndarray, cap: float) -> np.ndarray:
    """[C, S] nearest point (m, capped) in each sector (angle `edges` [S + 1]) seen from poses [C, 3] among
    points [N, 2], all in one frame."""
    d = points[None, :, :] - poses[:, None, :2]  # [C, N, 2]
    c, s = np.cos(poses[:, 2])[:, None], np.sin(poses[:, 2])[:, None]
    fx, fy = c * d[..., 0] + s * d[..., 1], -s * d[..., 0] + c * d[..., 1]
    distance, bearing = np.hypot(fx, fy), np.arctan2(fy, fx)
    sector = np.searchsorted(edges, bearing, side="right") - 1  # -1 or S: outside the view
    out = np.full((poses.shape[0], edges.size - 1), cap)
    for k in range(edges.size - 1):
        out[:, k] = np.minimum(np.where(sector == k, distance, np.inf).min(axis=1, initial=np.inf), cap)
    return out


class GoalMatcher:
    """match(scan points, guess) -> Match or None: the goal view's `goal_ranges` [S] (sector angle `edges`,
    capped at `cap`) found among a scan's points near a guessed goal pose, all in the robot frame."""

    def __init__(self, edges: np.ndarray, cap: float, config: MatchConfig = MatchConfig()) -> None:
        self.edges, self.cap, self.config = np.asarray(edges, dtype=float), float(cap), config
        self.goal_ranges: np.ndarray | None = None

    def set_goal(self, goal_ranges: np.ndarray) -> None:
        goal_ranges = np.asarray(goal_ranges, dtype=float).reshape(-1)
        if goal_ranges.size != self.edges.size - 1 or not np.isfinite(goal_ranges).all():
            raise ValueError(f"goal ranges must be {self.edges.size - 1} finite numbers")
        self.goal_ranges = np.clip(goal_ranges, 0.0, self.cap)

    def _errors(self, points: np.ndarray, poses: np.ndarray, guess: np.ndarray) -> np.ndarray:
        seen = view_ranges(points, poses, self.edges, self.cap)
        miss = np.sort(np.abs(seen - self.goal_ranges), axis=1)
        kept = miss[:, :max(1, miss.shape[1] - self.config.trim)]
        return kept.mean(axis=1) + self.config.prior * np.hypot(*(poses[:, :2] - guess[:2]).T)

    def match(self, points: np.ndarray, guess_xy: np.ndarray, guess_yaw: float) -> Match | None:
        """The best goal pose within radius / yaw_window of the guess, or None when even it disagrees with the
        goal view by more than `accept` (or there is no scan to match)."""
        if self.goal_ranges is None:
            raise RuntimeError("GoalMatcher.match before set_goal")
        points = np.asarray(points, dtype=float).reshape(-1, 2)
        if points.shape[0] == 0:
            return None
        cfg = self.config
        guess = np.array([*np.asarray(guess_xy, dtype=float), guess_yaw])
        best, span, yaw_span = guess, cfg.radius, cfg.yaw_window
        for _ in range(3):  # a 9 x 9 x 5 grid, then again at a third of the spacing around the best so far
            offsets = np.linspace(-1.0, 1.0, 9)
            gx, gy, gw = np.meshgrid(offsets * span, offsets * span, np.linspace(-1.0, 1.0, 5) * yaw_span,
                                     indexing="ij")
            poses = best + np.stack([gx.ravel(), gy.ravel(), gw.ravel()], axis=1)
            poses = poses[np.hypot(*(poses[:, :2] - guess[:2]).T) <= cfg.radius + 1e-9]
            errors = self._errors(points, poses, guess)
            best = poses[int(np.argmin(errors))]
            span, yaw_span = span / 3.0, yaw_span / 3.0
        error = float(self._errors(points, best[None], guess)[0] - cfg.prior * np.hypot(*(best[:2] - guess[:2])))
        if error > cfg.accept:
            return None
        return Match(best[:2].copy(), float(math.remainder(best[2], 2 * math.pi)), error)
