"""The local router around perceived obstacle points: round what the robot does not fit through."""

from __future__ import annotations

import numpy as np
import pytest

from ojepa_ros.core.local_route import LocalRouter, cell_costs, inflated

INFLATION = 0.33  # robot radius 0.18 + obstacle margin 0.15


def wall(x: float, y0: float, y1: float) -> np.ndarray:
    """Obstacle points every 5 cm along x = const from y0 to y1."""
    ys = np.arange(y0, y1 + 1e-9, 0.05)
    return np.stack([np.full_like(ys, x), ys], axis=1)


def test_inflation_marks_cells_within_reach_of_a_point():
    grid = inflated(np.array([[0.25, 0.25]]), np.zeros(2), (5, 5), 0.1, 0.15)
    assert grid[2, 2] and grid[1, 2] and not grid[0, 0] and not grid[4, 4]


def test_the_route_goes_round_a_wall_with_a_gap_too_narrow_for_the_robot():
    points = np.vstack([wall(1.0, -1.5, -0.1), wall(1.0, 0.1, 1.5)])  # a 0.2 m gap at y = 0
    router = LocalRouter(INFLATION, window=4.0)
    router.subgoal(np.zeros(2), np.array([2.0, 0.0]), points)
    crossing = router.route[np.argmin(np.abs(router.route[:, 0] - 1.0))]
    assert abs(crossing[1]) > 1.5 + INFLATION - 0.1  # past the wall's end, not through the gap
    assert np.allclose(router.route[0], 0.0) and np.allclose(router.route[-1], [2.0, 0.0])


def test_a_gap_the_footprint_fits_through_is_routed_and_steered_through():
    points = np.vstack([wall(1.0, -3.0, -0.28), wall(1.0, 0.28, 3.0)])  # a 0.56 m gap at y = 0, walls past the window
    router = LocalRouter(INFLATION, footprint=0.2, lookahead=1.5, window=4.0)
    target = router.subgoal(np.zeros(2), np.array([1.8, 0.0]), points)
    crossing = router.route[np.argmin(np.abs(router.route[:, 0] - 1.0))]
    assert abs(crossing[1]) < 0.1  # through the gap's middle
    assert target[0] > 1.2  # steered along the line through it
    only_inflation = LocalRouter(INFLATION, lookahead=1.5, window=4.0)  # no line through the gap counts as clear
    assert only_inflation.subgoal(np.zeros(2), np.array([1.8, 0.0]), points)[0] < 1.0


def side(route: np.ndarray) -> float:
    """The route's farthest lateral excursion from the x axis (signed, m)."""
    return float(route[np.argmax(np.abs(route[:, 1])), 1])


def test_margin_cells_cost_more_the_deeper_they_lie():
    costs = cell_costs(np.array([0.1, 0.2, 0.25, 0.3, 0.33, 0.5, np.inf]), footprint=0.2, inflation=0.33)
    assert costs[0] == costs[1] > costs[2] > costs[3] > costs[4] == costs[5] == costs[6] == 1.0


def test_the_open_side_beats_a_gap_narrower_than_the_margin():
    points = np.vstack([wall(1.0, 0.26, 3.0), wall(1.0, -0.9, -0.26)])  # a 0.52 m gap; the box's far end open
    router = LocalRouter(INFLATION, footprint=0.2, window=4.0)
    router.subgoal(np.zeros(2), np.array([2.0, 0.0]), points)
    assert side(router.route) < -0.9 - 0.2  # round the box's free end, not through the gap


def test_a_replan_keeps_its_side_unless_the_other_is_clearly_cheaper_or_it_is_blocked():
    router = LocalRouter(INFLATION, footprint=0.2, window=4.0, period=1)
    target = np.array([2.0, 0.0])
    router.subgoal(np.zeros(2), target, wall(1.0, -0.6, 0.5))  # the box reaches less far to the left
    assert side(router.route) > 0
    router.subgoal(np.zeros(2), target, wall(1.0, -0.5, 0.58))  # now the right is a little cheaper
    assert side(router.route) > 0
    fresh = LocalRouter(INFLATION, footprint=0.2, window=4.0)
    fresh.subgoal(np.zeros(2), target, wall(1.0, -0.5, 0.58))
    assert side(fresh.route) < 0  # without the old route, the right
    router.subgoal(np.zeros(2), target, wall(1.0, -0.5, 3.0))  # the left closed past the window
    assert side(router.route) < 0


def test_the_steering_target_is_a_route_point_in_clear_sight():
    router = LocalRouter(INFLATION, lookahead=1.0)
    target = router.subgoal(np.zeros(2), np.array([3.0, 0.0]), np.zeros((0, 2)))
    assert np.hypot(*target) == pytest.approx(1.0, abs=0.15)  # nothing in the way: the lookahead's end
    with pytest.raises(ValueError):
        LocalRouter(0.0)
    with pytest.raises(ValueError):
        LocalRouter(INFLATION, footprint=INFLATION + 0.1)
