"""The generated world family, the robot's range scanner, moving obstacles and obstacles dropped at run time."""

from __future__ import annotations

import math

import numpy as np
import pytest

from ojepa_ros.sim.nav_env import NavEnvConfig, RoomsNavEnv
from ojepa_ros.sim.rooms_world import Box, clearance, doorways, room_of
from ojepa_ros.sim.world_family import (HELDOUT_SEEDS, TRAINING_SEEDS, generate_layout, mover_across,
                                        obstacles_on_path, route_points, world)


def test_splits_are_disjoint_and_layouts_reproducible_and_varied():
    assert not set(TRAINING_SEEDS) & set(HELDOUT_SEEDS)
    assert generate_layout(1003) == generate_layout(1003)
    layouts = [generate_layout(s) for s in range(12)]
    assert len({(len(lay.rooms), lay.bounds) for lay in layouts}) > 6
    assert any(b.shape == "cylinder" for lay in layouts for b in lay.obstacles)
    assert world("four_rooms").name == "four_rooms" and world("seed_7") == generate_layout(7) == world(7)
    with pytest.raises(ValueError, match="unknown world"):
        world("mars")


@pytest.mark.parametrize("seed", [0, 1, 2, 3, 1000, 1001, 1002, 1003])
def test_every_room_is_reachable_through_doorways_wide_enough(seed):
    layout = generate_layout(seed)
    doors = doorways(layout)
    rooms = {0}
    changed = True
    while changed:
        changed = False
        for centre, normal in doors:
            sides = {room_of(layout, *(centre + s * 0.3 * normal)) for s in (-1, 1)}
            if sides & rooms and not sides <= rooms:
                rooms |= sides
                changed = True
    assert rooms == set(range(len(layout.rooms)))
    for centre, _ in doors:  # a 0.36 m robot passes with room to spare, and no furniture blocks the way in
        assert clearance(layout, centre[None])[0] > 0.4


def test_scanner_measures_the_geometry_around_the_robot():
    env = RoomsNavEnv(NavEnvConfig(image_width=16, image_height=16), world("four_rooms"))
    env.set_pose(2.0, 2.0, 0.3)
    scan = env.scan()
    assert scan.shape == (180,) and scan.dtype == np.float32
    assert float(scan[np.isfinite(scan)].min()) == pytest.approx(float(clearance(env.layout, np.array([2.0, 2.0]))),
                                                                  abs=0.03)
    ahead = int(np.argmin(np.abs(env.scan_angles)))  # the beam straight ahead, 0.3 rad left of +x
    hit = np.array([2.0, 2.0]) + scan[ahead] * np.array([math.cos(0.3), math.sin(0.3)])
    assert clearance(env.layout, hit[None])[0] < 0.02  # it ends on an obstacle surface
    env.set_layout(env.layout.with_obstacles((Box("dropped", (2.6, 2.0 + 0.6 * math.tan(0.3)), (0.1, 0.1), 0.5,
                                                 (1, 0, 0, 1)),)))
    assert env.odometry()[:2] == pytest.approx([2.0, 2.0]) and env.scan()[ahead] < 0.6  # it sees the new box
    env.set_layout(env.layout.without("dropped"))
    assert env.scan()[ahead] == pytest.approx(scan[ahead], abs=1e-4)
    env.close()


def test_path_obstacles_and_movers_are_placed_where_asked():
    layout = world("four_rooms")
    rng = np.random.default_rng(0)
    start, goal = (1.2, 0.6), (1.2, 3.4)
    placed = obstacles_on_path(layout, start, goal, 2, rng)
    assert len(placed) == 2
    for box in placed:
        assert abs(box.center[0] - 1.2) <= 0.26 and 0.6 < box.center[1] < 3.4
    route = route_points(layout, (1.0, 1.0), (6.0, 1.0))  # R0 -> R1 passes the doorway at (4, 2)
    assert route[1] == pytest.approx([4.0, 2.0], abs=0.05)
    mover = mover_across(layout, start, goal, rng)
    assert mover.position(0.0)[1] == pytest.approx(2.0, abs=0.05)
    positions = np.array([mover.position(t) for t in np.linspace(0, 30, 61)])
    assert np.ptp(positions[:, 0]) > 2.0  # it crosses the room, wall to wall
    env = RoomsNavEnv(NavEnvConfig(image_width=16, image_height=16), layout.with_obstacles(movers=(mover,)))
    env.reset(options={"start": (1.2, 0.6, 0.0), "goal": goal})
    before = env.data.mocap_pos[0, :2].copy()
    env.step([0.0, 0.0])
    assert np.allclose(env.data.mocap_pos[0, :2], mover.position(env.sim_time), atol=0.01)
    assert not np.allclose(env.data.mocap_pos[0, :2], before)
    env.close()
