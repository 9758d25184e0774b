"""The high level: roadmap building from real episodes, its file format, route search and subgoal choice."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from conftest import grid_roadmap
from ojepa_ros.core.hierarchy import SubgoalPlanner
from ojepa_ros.core.model_io import load_world_model
from ojepa_ros.core.mpc import LOW_LEVEL_ONLY, MpcPolicy
from ojepa_ros.core.roadmap import RoadmapFileError, build_roadmap, load_roadmap, roadmap_beside
from ojepa_ros.sim.rooms_world import clearance, default_layout, room_of
from ojepa_ros.train.build_roadmap import main as roadmap_main
from ojepa_ros.train.encoded import encoded_episodes


def test_route_from_r0_to_r3_goes_round_through_r1_and_r2():
    """No R0<->R3 door: the only way is through R1 and R2, which straight-at-the-goal MPC never finds."""
    planner = SubgoalPlanner(grid_roadmap(8), lookahead=1.0, period=8)
    layout = default_layout()
    subgoal = planner.subgoal((2.0, 2.0), (2.0, 6.0))
    rooms = [room_of(layout, x, y) for x, y in planner.route]
    assert rooms[0] == 0 and rooms[-1] == 3
    assert [r for i, r in enumerate(rooms) if i == 0 or r != rooms[i - 1]] == [0, 1, 2, 3]
    assert 0.5 <= np.hypot(*(subgoal - (2.0, 2.0))) <= 1.6  # the target is about `lookahead` along the route
    assert subgoal[1] < 4.0  # ... and not through the wall towards the goal


def test_subgoal_is_the_goal_near_the_end_and_off_the_map():
    planner = SubgoalPlanner(grid_roadmap(8), lookahead=1.0)
    assert np.allclose(planner.subgoal((2.0, 2.0), (2.5, 2.2)), (2.5, 2.2))
    planner.reset()
    assert np.allclose(planner.subgoal((30.0, 30.0), (2.0, 6.0)), (2.0, 6.0))  # far from experience: flat
    assert len(planner.route) == 1


def test_high_level_replans_at_its_own_period():
    planner = SubgoalPlanner(grid_roadmap(8), period=3)
    for _ in range(7):
        planner.subgoal((2.0, 2.0), (6.0, 6.0))
    assert planner.replans == 3  # steps 1, 4, 7
    planner.subgoal((2.0, 2.0), (6.0, 2.0))
    assert planner.replans == 4  # a new goal replans at once


def test_build_roadmap_pools_real_episodes(tiny_model_path, episodes_dir):
    model = load_world_model(tiny_model_path)
    files = sorted(episodes_dir.glob("*.npz"))
    episodes = [(states, ep["actions"]) for states, ep in encoded_episodes(model, files)]
    everything = build_roadmap(model, episodes, cell_size=0.25, max_model_error=1e9)
    assert len(everything.centres) > 1 and len(everything.edges) > 0
    assert everything.states.shape[1] == model.cfg.level2_dim
    edges = {tuple(e) for e in everything.edges.tolist()}
    assert all((b, a) in edges for a, b in edges)  # a diff-drive base can drive an edge back
    assert everything.shortest_path(0, len(everything.centres) - 1)  # one connected component
    # A recorded jump is an edge only if the level-2 model predicts it: an untrained one predicts none within
    # 1 mm, which leaves the short links between neighbouring cells.
    near = build_roadmap(model, episodes, cell_size=0.25, max_model_error=1e-3)
    lengths = np.hypot(*(near.centres[near.edges[:, 0]] - near.centres[near.edges[:, 1]]).T)
    assert len(near.edges) < len(everything.edges) and (lengths <= 0.4).all()


def test_roadmap_command_writes_a_loadable_file(tiny_model_path, episodes_dir, tmp_path, capsys):
    out = tmp_path / "r.npz"
    assert roadmap_main(["--model", str(tiny_model_path), "--data", str(episodes_dir), "--out", str(out),
                         "--max-model-error", "1e9"]) == 0
    assert "cells" in capsys.readouterr().out
    assert len(load_roadmap(out, level2_dim=load_world_model(tiny_model_path).cfg.level2_dim).centres) > 1
    assert roadmap_main(["--model", str(tmp_path / "missing.pt"), "--data", str(episodes_dir),
                         "--out", str(out)]) == 2


def test_bad_roadmap_files_are_named(tmp_path, tiny_model_path):
    with pytest.raises(RoadmapFileError, match="does not exist"):
        load_roadmap(tmp_path / "none.npz")
    corrupt = tmp_path / "corrupt.npz"
    corrupt.write_bytes(b"not a zip")
    with pytest.raises(RoadmapFileError, match="corrupt.npz: not a readable roadmap"):
        load_roadmap(corrupt)
    with pytest.raises(RoadmapFileError, match="level 2 has 99"):
        load_roadmap(roadmap_beside(tiny_model_path), level2_dim=99)


def test_policy_steers_to_the_subgoal_not_the_goal(tiny_model_path):
    model = load_world_model(tiny_model_path)
    with pytest.raises(ValueError, match="needs a roadmap"):
        MpcPolicy.from_config(model, LOW_LEVEL_ONLY | {"hierarchical": True})
    policy = MpcPolicy.from_config(model, LOW_LEVEL_ONLY | {"hierarchical": True, "num_samples": 16, "horizon": 4}, seed=0,
                                   roadmap=grid_roadmap(8))
    policy.set_goal((2.0, 6.0))
    state = torch.zeros(model.cfg.embed_dim)
    step = policy.act(state, (0.0, 0.0), odom_xy=(2.0, 2.0))
    assert step.status == "ok" and step.subgoal is not None and step.subgoal[1] < 4.0
    assert len(step.route) > 5 and np.allclose(step.route[-1], (2.0, 6.0))
    assert policy.act(state, (0.0, 0.0), odom_xy=(2.1, 5.9)).status == "reached"  # the goal ends it, not a subgoal


GRID = grid_roadmap(8)
free_points = st.tuples(st.floats(0.3, 7.7), st.floats(0.3, 7.7)).filter(
    lambda p: float(clearance(default_layout(), np.array(p))) > 0.25)


@settings(max_examples=60, deadline=None)
@given(start=free_points, goal=free_points, steps=st.integers(1, 20))
def test_the_subgoal_is_finite_near_the_robot_and_the_route_ends_at_the_goal(start, goal, steps):
    planner = SubgoalPlanner(GRID, lookahead=1.0, period=4)
    for _ in range(steps):
        subgoal = planner.subgoal(start, goal)
    assert np.isfinite(subgoal).all() and np.allclose(planner.route[-1], goal)
    # The target is the goal, or a route point no farther than the lookahead along the route (plus a cell).
    assert np.allclose(subgoal, goal) or np.hypot(*(subgoal - np.asarray(start))) <= 1.0 + GRID.cell_size * 1.5


@pytest.mark.parametrize("x", [1e3, 1e4, 1e30, -1e300])
def test_a_wild_odometry_position_is_answered_at_once_not_by_a_distance_sized_search(x):
    """Found as a FATAL in actor_node: one odometry at x = 1e30 sized a linspace by the distance ("Maximum allowed
    size exceeded"), and at 1 km one tick took seconds. Now: far from every cell is out of sight, in bounded time."""
    import time

    planner = SubgoalPlanner(GRID, lookahead=1.0, period=8)
    planner.subgoal((2.0, 2.0), (2.0, 6.0))  # a long route is in place, as while driving
    started = time.perf_counter()
    subgoal = planner.subgoal((x, 2.0), (2.0, 6.0))
    assert time.perf_counter() - started < 0.05
    assert np.isfinite(subgoal).all()
    assert not GRID.in_sight(np.array([x, 2.0]), np.array([2.0, 2.5]), 0.1)
    assert not GRID.in_sight(np.array([np.nan, 2.0]), np.array([2.0, 2.5]), 0.1)
