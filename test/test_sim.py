"""Real-MuJoCo tests of the four-room world, the nav env and the Gymnasium adapter."""
import math

import gymnasium as gym
import numpy as np
import pytest
from gymnasium.utils.env_checker import check_env

from ojepa_ros.sim.gym_adapter import GymImageSim
from ojepa_ros.sim.nav_env import NavEnvConfig, RoomsNavEnv
from ojepa_ros.sim.rooms_world import clearance, default_layout, room_of, sample_free_pose

LAYOUT = default_layout()


@pytest.fixture(scope="module")
def env():
    e = RoomsNavEnv()
    yield e
    e.close()


def _free_intervals(points: np.ndarray, along: np.ndarray) -> list[tuple[float, float]]:
    """Stretches of `along` where the wall line is open (clearance > 0)."""
    free = clearance(LAYOUT, points) > 0
    edges = np.flatnonzero(np.diff(np.r_[False, free, False].astype(int)))
    return [(along[a], along[b - 1]) for a, b in zip(edges[::2], edges[1::2])]


def test_doors_are_where_specified():
    s = np.linspace(0.2, 7.8, 761)  # 1 cm steps, away from the outer walls
    on_x4 = _free_intervals(np.stack([np.full_like(s, 4.0), s], 1), s)
    on_y4 = _free_intervals(np.stack([s, np.full_like(s, 4.0)], 1), s)
    assert [(round(a, 2), round(b, 2)) for a, b in on_x4] == [(1.51, 2.49), (5.51, 6.49)]
    assert [(round(a, 2), round(b, 2)) for a, b in on_y4] == [(5.51, 6.49)]  # no R3<->R0 door at x in [0, 4]


def test_rooms_connect_only_through_doors():
    """Flood-free grid cells where the robot fits: R0-R1, R1-R2, R2-R3 touch; R3-R0 do not."""
    g = np.arange(0.025, 8.0, 0.05)
    xx, yy = np.meshgrid(g, g, indexing="ij")
    free = clearance(LAYOUT, np.stack([xx, yy], -1)) >= 0.18
    rooms = np.vectorize(lambda x, y: room_of(LAYOUT, x, y))(xx, yy)
    pairs = set()
    for a, b, fa, fb in ((rooms[:-1], rooms[1:], free[:-1], free[1:]), (rooms[:, :-1], rooms[:, 1:], free[:, :-1], free[:, 1:])):
        both = fa & fb & (a != b)
        pairs |= {tuple(sorted(p)) for p in zip(a[both], b[both])}
    assert pairs == {(0, 1), (1, 2), (2, 3)}


def test_clearance_values():
    assert clearance(LAYOUT, np.array([2.0, 2.0])) == pytest.approx(math.hypot(1.15, 1.15))  # to R0's landmark corners
    assert clearance(LAYOUT, np.array([0.5, 2.0])) == pytest.approx(0.45)  # west wall's inner face is x = 0.05
    assert clearance(LAYOUT, np.array([4.0, 3.0])) == 0.0  # inside the x = 4 wall
    assert clearance(LAYOUT, np.array([4.0, 2.0])) == pytest.approx(0.5)  # middle of the R0-R1 door
    assert clearance(LAYOUT, np.zeros((2, 3, 2))).shape == (2, 3)


def test_sample_free_pose_respects_room_and_margin():
    rng = np.random.default_rng(1)
    for room in range(4):
        for _ in range(20):
            x, y, yaw = sample_free_pose(LAYOUT, rng, room=room, margin=0.45)
            assert room_of(LAYOUT, x, y) == room
            assert clearance(LAYOUT, np.array([x, y])) >= 0.45
            assert -math.pi <= yaw <= math.pi


def test_driving_into_wall_collides_and_stops(env):
    env.reset(options={"start": (1.0, 2.0, math.pi), "goal": (3.0, 3.0)})
    collided = []
    for _ in range(30):
        obs, _, _, _, info = env.step([0.5, 0.0])
        collided.append(info["collision"])
    assert any(collided) and not collided[0]
    x, _, _, v, _ = env.odometry()
    assert x == pytest.approx(0.05 + 0.18, abs=0.01)  # pressed against the wall's face, not through it
    assert abs(v) < 0.02
    assert env.in_collision() and info["clearance"] == pytest.approx(0.0, abs=0.01)
    red, green, blue = obs["image"].reshape(-1, 3).astype(int).T  # R0's brick-red wall fills the view:
    assert np.all((red > green) & (green > blue) & (red > 60))   # the camera does not clip through it


def test_drive_through_doorway_from_r0_to_r1(env):
    """A scripted waypoint follower drives R0 -> door -> R1 without touching anything."""
    obs, info = env.reset(options={"start": (2.0, 1.0, math.pi / 2), "goal": (5.0, 2.0)})
    assert info["room"] == 0
    waypoints = [(3.2, 2.0), (5.0, 2.0)]
    for _ in range(120):
        x, y, yaw, _, _ = env.odometry()
        if math.hypot(waypoints[0][0] - x, waypoints[0][1] - y) < 0.2 and len(waypoints) > 1:
            waypoints.pop(0)
        heading = math.atan2(waypoints[0][1] - y, waypoints[0][0] - x) - yaw
        heading = math.atan2(math.sin(heading), math.cos(heading))
        obs, _, terminated, _, info = env.step([0.5 if abs(heading) < 0.3 else 0.05, 3.0 * heading])
        assert not info["collision"]
        if terminated:
            break
    assert terminated and info["room"] == 1 and info["distance_to_goal"] <= 0.3


def test_odometry_tracks_command_with_limited_acceleration(env):
    env.reset(options={"start": (2.0, 2.0, 0.0), "goal": (3.0, 3.0)})
    env.step([0.5, 1.5])
    _, _, _, v, w = env.odometry()
    assert 0.1 < v <= 0.21 and 0.3 < w <= 0.61  # 2 m/s^2 and 6 rad/s^2 limits: not instantaneous
    env.reset(options={"start": (2.0, 2.0, 0.0), "goal": (3.0, 3.0)})
    for _ in range(10):
        env.step([0.3, 0.5])
    x, y, yaw, v, w = env.odometry()
    assert v == pytest.approx(0.3, abs=0.01) and w == pytest.approx(0.5, abs=0.01)
    vx, vy = env.data.qvel[:2]
    assert abs(-vx * math.sin(yaw) + vy * math.cos(yaw)) < 0.01  # no side slip
    assert yaw == pytest.approx(0.5 * 1.0, abs=0.05)


def test_images_differ_between_rooms_and_repeat_exactly(env):
    images = []
    for cx, cy in ((2, 2), (6, 2), (6, 6), (2, 6)):
        env.set_pose(cx, cy, -3 * math.pi / 4)
        images.append(env.camera_image().astype(np.float64))
    assert images[0].shape == (64, 64, 3)
    for i in range(4):
        for j in range(i + 1, 4):
            assert np.abs(images[i] - images[j]).mean() > 15, (i, j)
    env.set_pose(2, 2, -3 * math.pi / 4)
    assert np.array_equal(env.camera_image(), images[0])
    assert np.ptp(images[0][-4:].reshape(-1, 3), axis=0).max() < 10  # bottom rows: plain floor, no robot body


def test_nan_and_out_of_range_actions_are_safe(env):
    env.reset(options={"start": (2.0, 2.0, 0.0), "goal": (3.0, 3.0)})
    obs, reward, _, _, info = env.step([np.nan, np.nan])
    assert np.all(np.isfinite(obs["odom"])) and obs["odom"].dtype == np.float32
    assert info["pose"] == pytest.approx((2.0, 2.0, 0.0)) and reward == 0.0
    for _ in range(5):
        obs, *_ = env.step([np.nan, 10.0])
    assert obs["odom"][3] == pytest.approx(0.0, abs=1e-6) and obs["odom"][4] == pytest.approx(1.5, abs=0.01)


def test_reward_termination_truncation_and_info():
    e = RoomsNavEnv(NavEnvConfig(image_width=16, image_height=16, max_steps=25))
    try:
        obs, info = e.reset(seed=3, options={"start": (2.0, 2.0, 0.0), "goal": (3.0, 2.0)})
        assert obs["image"].shape == (16, 16, 3) and e.observation_space.contains(obs)
        total, terminated = 0.0, False
        while not terminated:
            obs, reward, terminated, truncated, info = e.step([0.5, 0.0])
            total += reward
        assert total == pytest.approx(1.0 - info["distance_to_goal"])
        assert info["distance_to_goal"] <= 0.3 and info["room"] == 0 and not truncated
        e.reset(seed=3)
        truncated = [e.step([0.0, 0.5])[3] for _ in range(25)]
        assert truncated[-1] and not any(truncated[:-1])
        first = e.reset(seed=11)[1]
        assert e.reset(seed=11)[1]["pose"] == first["pose"]  # seeded resets repeat
        assert first["distance_to_goal"] > 0.6
    finally:
        e.close()


@pytest.mark.filterwarnings("ignore::UserWarning")  # its advice on unnormalised/unbounded Box spaces
def test_env_passes_gymnasium_checker():
    e = RoomsNavEnv(NavEnvConfig(image_width=16, image_height=16))
    try:
        check_env(e)
    finally:
        e.close()


def test_realtime_api(env):
    env.set_pose(2.0, 2.0, 0.5)
    t0 = env.sim_time
    for _ in range(8):
        env.advance(0.0025)  # half a physics step each time: carried over, not lost
    assert env.sim_time - t0 == pytest.approx(0.02)
    env.set_command(0.4, 0.0)
    env.advance(1.0)
    assert env.odometry()[3] == pytest.approx(0.4, abs=0.01)
    env.set_pose(6.0, 6.0, 0.0)
    assert np.allclose(env.odometry(), [6.0, 6.0, 0.0, 0.0, 0.0])
    env.goal = (1.0, 1.0)
    assert env.goal == (1.0, 1.0)
    assert env.clearance() == pytest.approx(math.hypot(1.15, 1.15) - 0.18)


def test_render_topdown_draws_trajectory_and_goal(env):
    env.goal = None
    plain = env.render_topdown(size=128)
    drawn = env.render_topdown(size=128, trajectory=np.array([[1.0, 1.0], [3.0, 1.0]]), goal=(6.0, 6.0))
    assert plain.shape == drawn.shape == (128, 128, 3) and plain.dtype == np.uint8
    changed = np.argwhere(np.abs(plain.astype(int) - drawn).sum(-1) > 60)
    # Window is x, y in [-0.2, 8.2]: the trajectory lies near row 113, the goal ring near (row 36, col 94).
    assert np.any((abs(changed[:, 0] - 113) <= 2) & (changed[:, 1] > 20) & (changed[:, 1] < 50))
    assert np.any((abs(changed[:, 0] - 36) <= 6) & (abs(changed[:, 1] - 94) <= 6))
    assert not np.any(changed[:, 0] < 20)


class _NoRenderEnv(gym.Env):
    """A Box-action env whose only render mode is "human": the adapter must refuse it."""

    metadata = {"render_modes": ["human"]}
    action_space = gym.spaces.Box(-1.0, 1.0, (1,))
    observation_space = gym.spaces.Box(-1.0, 1.0, (1,))

    def __init__(self, render_mode=None):
        self.render_mode = render_mode


gym.register("OjepaTestNoRender-v0", entry_point=_NoRenderEnv)


def test_gym_adapter_wraps_a_mujoco_env():
    sim = GymImageSim("InvertedPendulum-v5", image_width=24, image_height=20, seed=0)
    try:
        assert sim.action_dim == 1 and np.allclose(sim.action_low, [-3.0]) and np.allclose(sim.action_high, [3.0])
        image, obs = sim.reset()
        assert image.shape == (20, 24, 3) and image.dtype == np.uint8 and image.max() > 50
        assert obs.shape == (4,) and obs.dtype == np.float64
        other = RoomsNavEnv(NavEnvConfig(image_width=8, image_height=8))
        other.camera_image()
        other.close()  # freeing another GL context must not blank the adapter's frames
        after = sim.step(np.zeros(1))[0]
        assert np.abs(after.astype(int) - image).mean() < 2 and after.max() > 50
        done, steps = False, 0
        while not done:
            image, obs, reward, done = sim.step(np.array([100.0]))  # clipped to 3: the pole falls
            steps += 1
            assert isinstance(reward, float) and steps < 100
        assert image.shape == (20, 24, 3) and abs(obs[1]) > 0.2
        assert np.array_equal(sim.reset(seed=5)[1], sim.reset(seed=5)[1])
    finally:
        sim.close()


@pytest.mark.filterwarnings("ignore:.*render_mode")
@pytest.mark.parametrize("env_id, words", [("CartPole-v1", "Box action space"),
                                          ("OjepaTestNoRender-v0", "rgb_array"),
                                          ("NoSuchEnv-v0", "cannot make")])
def test_gym_adapter_rejects_unusable_envs(env_id, words):
    with pytest.raises(ValueError, match=words) as err:
        GymImageSim(env_id)
    assert env_id in str(err.value)
