"""The collision monitor's geometry (core, no ROS): zones that grow with speed, stop and slowdown, escape allowed."""

from __future__ import annotations

import math

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from ojepa_ros.core.collision_monitor import MonitorConfig, arc_poses, check, scan_points, zone_outline

CFG = MonitorConfig()  # r 0.18, stop margin 0.05, slowdown margin 0.15, 2 m/s^2, 0.1 s, 1 s


def wall_ahead(distance: float, width: float = 2.0) -> np.ndarray:
    """Points of a wall across the robot's path, `distance` m ahead of its centre."""
    ys = np.linspace(-width / 2, width / 2, 81)
    return np.stack([np.full_like(ys, distance), ys], axis=1)


def test_the_stop_zone_grows_with_speed():
    # At 0.5 m/s the base needs 0.05 + 0.0625 m to stop: the stop zone reaches 0.18 + 0.05 + 0.1125 = 0.3425 m.
    assert check(wall_ahead(0.33), (0.5, 0.0), CFG).zone == "stop"
    assert check(wall_ahead(0.33), (0.5, 0.0), CFG).command == (0.0, 0.0)
    # At 0.1 m/s it needs 0.0125 m: the same wall is only in the slowdown zone.
    slow = check(wall_ahead(0.33), (0.1, 0.0), CFG)
    assert slow.zone == "slowdown" and slow.command == pytest.approx((0.03, 0.0))
    assert check(wall_ahead(0.8), (0.5, 0.0), CFG).zone == "slowdown"
    assert check(wall_ahead(1.2), (0.5, 0.0), CFG).zone == "clear"
    assert check(wall_ahead(0.8), (0.05, 0.0), CFG).zone == "clear"


def test_motion_away_from_an_obstacle_and_rotation_in_place_are_allowed():
    touching = wall_ahead(0.2)
    assert check(touching, (-0.2, 0.0), CFG) .zone == "clear"  # backing away from the wall ahead
    assert check(touching, (0.0, 1.0), CFG).command == (0.0, 1.0)  # turning in place sweeps nothing
    assert check(touching, (0.3, 0.5), CFG).zone == "stop"
    behind = -wall_ahead(0.25)
    assert check(behind, (0.5, 0.0), CFG).zone == "clear" and check(behind, (-0.5, 0.0), CFG).zone == "stop"


def test_the_zone_follows_the_arc():
    # A post 0.6 m ahead and 0.6 m to the left: on a left arc of radius 0.6 m the robot drives at it,
    # on the right arc it drives away.
    post = np.array([[0.6, 0.6]])
    assert check(post, (0.5, 0.5 / 0.6), CFG).zone in ("slowdown", "stop")
    assert check(post, (0.5, -0.5 / 0.6), CFG).zone == "clear"
    poses = arc_poses(0.5, 0.5 / 0.6, math.pi / 2 * 0.6, 0.01)  # a quarter circle to the left
    np.testing.assert_allclose(poses[-1], (0.6, 0.6), atol=1e-6)
    np.testing.assert_allclose(arc_poses(-0.5, 0.0, 1.0, 0.1)[-1], (-1.0, 0.0))


def test_scan_points_follow_rep_117():
    ranges = np.array([1.0, np.nan, np.inf, -np.inf, 0.01, 100.0])
    points = scan_points(ranges, 0.0, math.pi / 2, 0.05, 10.0)
    np.testing.assert_allclose(points, [[1.0, 0.0], [0.0, -0.05]], atol=1e-12)  # -inf: at range_min on its beam
    moved = scan_points(np.array([1.0]), 0.0, 0.1, 0.05, 10.0, pose=(0.1, 0.0, math.pi))
    np.testing.assert_allclose(moved, [[-0.9, 0.0]], atol=1e-12)
    assert check(scan_points(np.array([-np.inf]), 0.0, 0.1, 0.05, 10.0), (0.2, 0.0), CFG).zone == "stop"


def test_non_finite_commands_stop_and_settings_are_checked():
    assert check(wall_ahead(5.0), (math.nan, 0.0), CFG).command == (0.0, 0.0)
    with pytest.raises(ValueError):
        MonitorConfig(stop_margin=0.3, slowdown_margin=0.1)
    with pytest.raises(ValueError):
        MonitorConfig(footprint_radius=0.0)


def test_zone_outline_encloses_the_sweep():
    outline = zone_outline((0.5, 0.0), CFG, "stop")
    assert outline[:, 0].max() == pytest.approx(0.18 + 0.05 + CFG.braking_distance(0.5), abs=1e-6)
    assert zone_outline((0.0, 0.0), CFG, "stop")[:, 0].max() == pytest.approx(0.23)


@settings(max_examples=200, deadline=None)
@given(v=st.floats(-0.5, 0.5), w=st.floats(-1.5, 1.5), gap=st.floats(0.0, 0.05), angle=st.floats(-math.pi, math.pi))
def test_a_command_never_moves_the_footprint_into_an_obstacle_within_its_braking_distance(v, w, gap, angle):
    """Whatever (v, w): after the monitor, braking from the allowed speed never brings the footprint
    within the stop margin of a point that lies on the way."""
    ahead = CFG.footprint_radius + gap
    point = np.array([[ahead * math.cos(angle), ahead * math.sin(angle)]])
    allowed = check(point, (v, w), CFG).command
    sweep = arc_poses(allowed[0], allowed[1], CFG.braking_distance(allowed[0]), 0.005)
    gaps = np.hypot(*(point[0] - sweep).T)
    assert gaps.min() >= min(gaps[0], CFG.footprint_radius + CFG.stop_margin) - 1e-6


# ---- closed loop in the embedded world: a planner with a wrong idea of the world, the monitor in between ----

def mujoco_scan(env, beams: int = 180, range_max: float = 5.0) -> np.ndarray:
    """A planar scan from the robot's centre, 0.1 m above the floor, by MuJoCo ray casts against the world's
    obstacles only (the robot's own geoms excluded): what a LaserScan on the robot would report."""
    import mujoco

    from ojepa_ros.sim.rooms_world import ROBOT_GEOM_GROUP

    x, y, yaw = env.odometry()[:3]
    groups = np.ones(6, dtype=np.uint8)
    groups[ROBOT_GEOM_GROUP] = 0
    robot_body = env.model.geom_bodyid[env._robot_geom]
    geom = np.zeros(1, dtype=np.int32)
    ranges = np.full(beams, np.inf)
    for i, angle in enumerate(np.linspace(-math.pi, math.pi, beams, endpoint=False)):
        direction = np.array([math.cos(yaw + angle), math.sin(yaw + angle), 0.0])
        hit = mujoco.mj_ray(env.model, env.data, np.array([x, y, 0.1]), direction, groups, 1, robot_body, geom)
        if 0 <= hit <= range_max:
            ranges[i] = hit
    return scan_points(ranges, -math.pi, 2 * math.pi / beams, 0.05, range_max)


@pytest.mark.parametrize("command", [(0.5, 0.0), (0.5, 0.4), (-0.5, 0.0)])
def test_a_planner_driving_at_a_wall_is_stopped_before_contact(command):
    """The planner's world model is wrong (it 'sees' free floor): it commands full speed at the wall. The
    monitor, from the scan alone, stops the robot short of it; without the monitor the same commands hit it."""
    from ojepa_ros.sim.nav_env import RoomsNavEnv

    def run(monitored: bool) -> tuple[bool, float]:
        env = RoomsNavEnv()
        env.reset(seed=0)
        env.set_pose(1.0, 1.0, math.pi if command[0] > 0 else 0.0)  # 0.95 m from the x = 0 wall, facing it
        touched = False
        for _ in range(40):  # 4 s at 10 Hz
            allowed = check(mujoco_scan(env), command, CFG).command if monitored else command
            env.set_command(*allowed)
            touched |= env.advance(0.1) or env.in_collision()
        clearance = env.clearance()
        env.close()
        return touched, clearance

    touched, clearance = run(monitored=True)
    assert not touched and clearance > 0.0
    assert run(monitored=False)[0], "the unmonitored planner should have hit the wall (else this test proves nothing)"
