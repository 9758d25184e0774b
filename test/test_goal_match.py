"""The goal image's forward ranges matched against a scan (core/goal_match.py), and homing with the match."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from ojepa_ros.core.goal_match import GoalMatcher, MatchConfig, view_ranges
from ojepa_ros.core.image_goal import GoalHoming
from ojepa_ros.core.sensing import sector_edges
from test_goal_locator import fixed_locator

EDGES = sector_edges(90.0, 9)
CAP = 3.0


def room_points(step: float = 0.02) -> np.ndarray:
    """[N, 2] a scan's worth of points: a 4 x 3 m room's walls around the origin and a 0.4 m box in it."""
    t = np.arange(0.0, 1.0, step / 4.0)
    walls = [np.stack([-1.0 + 4.0 * t, np.full_like(t, y)], 1) for y in (-1.5, 1.5)]
    walls += [np.stack([np.full_like(t, x), -1.5 + 3.0 * t], 1) for x in (-1.0, 3.0)]
    s = np.arange(0.0, 0.4, step)
    box = [np.stack([1.8 + s, np.full_like(s, 0.6)], 1), np.stack([np.full_like(s, 1.8), 0.6 + s], 1)]
    return np.concatenate(walls + box)


def test_view_ranges_are_the_nearest_point_per_sector_capped():
    points = np.array([[1.0, 0.0], [2.0, 0.05], [0.5, 0.45], [-1.0, 0.0], [5.0, -0.1]])
    ranges = view_ranges(points, np.zeros((1, 3)), EDGES, CAP)[0]
    assert ranges[4] == pytest.approx(1.0)  # straight ahead: the nearer of the two
    assert ranges[8] == pytest.approx(math.hypot(0.5, 0.45))  # 42 degrees left: the last sector
    assert ranges[0] == CAP  # nothing to the right; the point behind and the far one read as the cap
    turned = view_ranges(points, np.array([[0.0, 0.0, math.pi]]), EDGES, CAP)[0]
    assert turned[4] == pytest.approx(1.0)  # facing back: the point behind is ahead


def test_a_goal_view_is_found_near_a_wrong_guess_in_the_scan():
    points = room_points()
    goal = np.array([[0.6, 0.3, 0.2]])
    matcher = GoalMatcher(EDGES, CAP)
    matcher.set_goal(view_ranges(points, goal, EDGES, CAP)[0])
    found = matcher.match(points, goal[0, :2] + (0.35, -0.3), goal[0, 2] - 0.25)
    assert found is not None and found.error < 0.05
    assert np.hypot(*(found.xy - goal[0, :2])) < 0.08 and abs(found.yaw - goal[0, 2]) < 0.1
    # a view this room does not have near the guess is refused, not placed
    matcher.set_goal(np.array([0.5, 2.5] * 4 + [0.5]))  # near and far in turn: no place in this room
    assert matcher.match(points, goal[0, :2], goal[0, 2]) is None
    assert matcher.match(np.zeros((0, 2)), goal[0, :2], 0.0) is None


def test_matcher_refuses_bad_settings_and_goal_ranges():
    with pytest.raises(ValueError):
        MatchConfig(radius=0.0)
    matcher = GoalMatcher(EDGES, CAP)
    with pytest.raises(RuntimeError):
        matcher.match(room_points(), np.zeros(2), 0.0)
    with pytest.raises(ValueError):
        matcher.set_goal(np.full(8, 1.0))
    with pytest.raises(ValueError):
        matcher.set_goal(np.array([np.nan] + [1.0] * 8))


def test_homing_with_a_matcher_moves_the_estimate_to_where_the_scan_fits():
    points = room_points()  # the room seen from the robot at the origin facing +x (scan in the robot frame)
    goal = np.array([1.0, 0.3, 0.0])  # the box in view, 20-40 degrees left: the wall alone leaves y free
    matcher = GoalMatcher(EDGES, CAP)
    homing = GoalHoming(fixed_locator(4, (1.5, 0.0), logit=5.0), confidence=0.7, search_turn=0.05, matcher=matcher)
    homing.start(torch.zeros(4), view_ranges(points, goal[None], EDGES, CAP)[0])
    pose = np.zeros(3)
    assert homing.update(pose, torch.zeros(4)) is None  # no turn yet
    pose[2] = 0.1
    unmatched = homing.update(pose, torch.zeros(4))  # the turn is done: the locator's placement, not matched
    assert unmatched is not None and not homing.matches
    pose[2] = 0.0
    found = homing.update(pose, torch.zeros(4), points)
    assert len(homing.matches) == 1 and np.hypot(*(found - goal[:2])) < 0.1
