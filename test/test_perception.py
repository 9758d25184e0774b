"""What the robot perceives: scan-derived labels, the obstacle memory, and the cost terms that read them."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from ojepa_ros.core.costs import CostContext, GoalEmbedding, PerceivedObstacles
from ojepa_ros.core.obstacle_memory import ObstacleMemory
from ojepa_ros.core.sensing import RangeLabels, clearance_from_scan, forward_ranges, sector_centres, sector_edges

ANGLES = np.linspace(-np.pi, np.pi, 36, endpoint=False)  # 10-degree beams, beam 18 straight ahead


def test_forward_ranges_take_the_nearest_return_per_sector_and_cap_no_return():
    scan = np.full(36, np.inf, dtype=np.float32)
    scan[18] = 1.2   # straight ahead
    scan[19] = 0.8   # 10 degrees left
    scan[0] = 0.1    # straight behind: outside the camera's view
    ranges = forward_ranges(scan, ANGLES, fov_deg=90.0, sectors=3, cap=3.0)
    assert ranges.tolist() == pytest.approx([3.0, 0.8, 3.0])  # right, middle, left thirds of the view
    assert clearance_from_scan(scan, robot_radius=0.18, range_max=4.0) == 0.0  # the return behind is inside the rim
    assert clearance_from_scan(np.full(36, np.nan), robot_radius=0.18, range_max=4.0) == pytest.approx(4.0 - 0.18)
    assert sector_centres(90.0, 3) == pytest.approx(np.radians([-30.0, 0.0, 30.0]))


def test_range_labels_of_a_batch_of_scans():
    scans = np.stack([np.full(36, 2.0), np.full(36, 0.5)]).astype(np.float32)
    clearance, ranges = RangeLabels(sectors=5).of(scans, ANGLES)
    assert clearance.tolist() == pytest.approx([2.0 - 0.18, 0.5 - 0.18])
    assert ranges.shape == (2, 5) and ranges[1].tolist() == pytest.approx([0.5] * 5)


def memory(keep: int = 30) -> ObstacleMemory:
    return ObstacleMemory(sector_edges(90.0, 9), cap=3.0, keep=keep)


def test_memory_places_returns_in_the_odometry_frame_and_forgets_old_views():
    mem = memory(keep=3)
    ranges = np.full(9, 3.0)
    ranges[4] = 1.0  # something 1 m straight ahead
    mem.add(np.array([2.0, 1.0, math.pi / 2]), ranges)  # facing +y
    points = mem.points()
    assert len(points) >= 1 and np.allclose(points.mean(0), [2.0, 2.0], atol=0.05)
    for _ in range(3):  # turned away (facing -y) and seeing nothing: after `keep` views the point is gone
        mem.add(np.array([2.0, 1.0, -math.pi / 2]), np.full(9, 3.0))
        assert len(mem.points()) == 0 or mem.points()[:, 1].min() > 1.5
    assert len(mem.points()) == 0


def test_memory_keeps_what_left_the_view_and_drops_what_the_view_sees_through():
    mem = memory()
    ranges = np.full(9, 3.0)
    ranges[4] = 1.0
    mem.add(np.array([0.0, 0.0, 0.0]), ranges)  # a box 1 m ahead (+x)
    mem.add(np.array([0.0, 0.0, math.pi / 2]), np.full(9, 3.0))  # turned left 90 degrees: the box is out of view
    assert np.allclose(mem.points().mean(0), [1.0, 0.0], atol=0.05)
    mem.add(np.array([0.0, 0.0, 0.0]), np.full(9, 3.0))  # facing it again and seeing free space to 3 m: it moved away
    assert len(mem.points()) == 0
    mem.add(np.array([0.0, 0.0, 0.0]), np.full(9, np.nan))  # non-finite input changes nothing
    assert len(mem.points()) == 0


def _scan_points(ranges: np.ndarray) -> np.ndarray:
    """Base-frame points of a 180-beam scan (2-degree beams from -pi), +inf beams dropped."""
    angles = np.linspace(-np.pi, np.pi, len(ranges), endpoint=False)
    hit = np.isfinite(ranges)
    return np.stack((ranges[hit] * np.cos(angles[hit]), ranges[hit] * np.sin(angles[hit])), axis=1)


def test_scan_clears_points_it_sees_through_and_keeps_those_it_confirms_or_cannot_see():
    mem = memory()
    pose = np.array([1.0, 2.0, math.pi / 2])  # facing +y
    ranges = np.full(9, 3.0)
    ranges[4], ranges[0] = 1.0, 1.5  # straight ahead 1 m; 40 degrees right 1.5 m
    mem.add(pose, ranges)
    assert len(mem.points()) == 2
    scan = np.full(180, np.inf)
    scan[90] = 2.5  # straight ahead (base +x, beam 90) the scan sees 2.5 m: free beyond the 1 m point
    scan[70:76] = 1.52  # around 40 degrees right (beams 70-75 are -40..-30 degrees): it confirms that point
    mem.add_scan(pose, _scan_points(scan))
    assert np.allclose(mem.points(), [[1.0 + 1.5 * math.sin(math.radians(40)), 2.0 + 1.5 * math.cos(math.radians(40))]],
                       atol=0.05)
    mem.add(pose, ranges)  # seen again; this time the scan has no return near either bearing: nothing is cleared
    mem.add_scan(pose, _scan_points(np.full(180, np.inf)))
    assert len(mem.points()) == 2 and np.isclose(mem.points(), [1.0, 3.0], atol=0.05).all(axis=1).any()
    scan[90] = 0.5  # a return nearer than the point: what stands behind it is not seen through
    mem.add_scan(pose, _scan_points(scan))
    assert len(mem.points()) == 2


def test_scan_returns_near_the_robot_become_points_in_the_odometry_frame():
    mem = ObstacleMemory(sector_edges(90.0, 9), cap=3.0, keep=2, scan_range=0.5)
    scan = np.full(180, np.inf)
    scan[0] = 0.3  # straight behind, where the camera does not look
    scan[135] = 2.0  # straight left: farther than scan_range
    pose = np.array([1.0, 2.0, math.pi / 2])
    mem.add_scan(pose, _scan_points(scan))
    assert np.allclose(mem.points(), [[1.0, 1.7]], atol=1e-6)  # behind a robot facing +y is -y
    mem.add_scan(pose, None)  # no fresh scan: nothing new, the old point ages
    assert len(mem.points()) == 1
    mem.add_scan(np.array([np.nan, 0.0, 0.0]), _scan_points(scan))  # non-finite pose: ignored, ages like no scan
    assert len(mem.points()) == 0
    mem.add_scan(pose, _scan_points(np.full(180, 0.3)))
    only_clears = ObstacleMemory(sector_edges(90.0, 9), cap=3.0)
    only_clears.add_scan(pose, _scan_points(np.full(180, 0.3)))
    assert len(mem.points()) > 10 and len(only_clears.points()) == 0


def _poses(xy: torch.Tensor) -> torch.Tensor:
    return torch.cat((xy, torch.zeros(*xy.shape[:-1], 1)), dim=-1)


def test_perceived_obstacles_charge_paths_that_pass_close_to_the_points():
    term = PerceivedObstacles()
    ctx = CostContext(pose_fn=_poses, obstacles=torch.tensor([[1.0, 0.0]]))
    t = torch.linspace(0, 2, 16)[:, None]
    straight = torch.cat((t, torch.zeros_like(t)), dim=-1)[None]       # through the point
    around = torch.cat((t, torch.full_like(t, 0.6)), dim=-1)[None]      # 0.6 m beside it
    costs = term(torch.cat((straight, around)), torch.zeros(2, 16, 2), ctx)
    assert costs[0] > 10 * max(float(costs[1]), 1e-6) and costs[1] == 0.0
    assert term(straight, torch.zeros(1, 16, 2), CostContext(pose_fn=_poses)).item() == 0.0  # nothing seen
    assert term.guardrail and term.floor > 0


def test_goal_embedding_prefers_paths_whose_features_approach_the_goal_image():
    term = GoalEmbedding()
    goal = torch.ones(4)
    ctx = CostContext(pose_fn=_poses, features_fn=lambda s: s, goal_features=goal)
    toward = torch.linspace(0, 1, 8)[None, :, None].expand(1, 8, 4)
    away = -toward
    costs = term(torch.cat((toward, away)), torch.zeros(2, 8, 2), ctx)
    assert costs[0] < costs[1]
    assert term(toward, torch.zeros(1, 8, 2), CostContext(pose_fn=_poses)).item() == 0.0
