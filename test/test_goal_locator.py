"""Image goals by place: the goal locator's labels and file, `ojepa locator` on real episodes, and homing."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from ojepa_ros.core.goal_locator import LOCATOR_FILE, GoalLocator, LocatorConfig, in_sight, relative_pose
from ojepa_ros.core.image_goal import GoalHoming
from ojepa_ros.core.model_io import ModelFileError, load_world_model
from ojepa_ros.core.mpc import LOW_LEVEL_ONLY, MpcPolicy
from ojepa_ros.train.fit_locator import main as locator_main


def fixed_locator(feature_dim: int, xy: tuple[float, float], logit: float) -> GoalLocator:
    """A real locator whose last layer says the same sighting whatever it sees."""
    locator = GoalLocator(LocatorConfig(feature_dim=feature_dim, hidden_dim=8))
    last = locator._net[-1]
    with torch.no_grad():
        last.weight.zero_()
        last.bias.copy_(torch.tensor([xy[0], xy[1], 0.0, 1.0, logit]))
    return locator.eval()


def test_relative_pose_is_the_other_pose_in_the_robots_frame():
    pose = np.array([[1.0, 1.0, math.pi / 2], [0.0, 0.0, 0.0]])
    other = np.array([[1.0, 3.0, math.pi], [-1.0, 0.5, -math.pi / 2]])
    xy, yaw = relative_pose(pose, other)
    np.testing.assert_allclose(xy, [[2.0, 0.0], [-1.0, 0.5]], atol=1e-12)
    np.testing.assert_allclose(yaw, [math.pi / 2, -math.pi / 2], atol=1e-12)


def test_in_sight_needs_the_goal_ahead_near_enough_and_facing_the_same_way():
    xy = np.array([[2.0, 0.5], [2.0, 3.0], [5.0, 0.0], [2.0, 0.0], [0.1, -0.1]])
    yaw = np.array([0.2, 0.0, 0.0, 1.2, 0.3])
    assert in_sight(xy, yaw).tolist() == [True, False, False, False, True]


def test_homing_searches_a_full_turn_then_places_the_goal_in_the_odometry_frame():
    homing = GoalHoming(fixed_locator(4, (2.0, 0.0), logit=5.0), confidence=0.7)
    homing.start(torch.zeros(4))
    yaw, found = 0.0, None
    for step in range(80):
        found = homing.update(np.array([1.0, 1.0, yaw]), torch.zeros(4))
        if found is not None:
            break
        yaw += 0.1
    assert found is not None and step >= int(2 * math.pi / 0.1)  # not before one whole turn
    # every sighting says "2 m straight ahead" from (1, 1): the first of the turn's equally sure ones, at yaw 0
    np.testing.assert_allclose(found, [3.0, 1.0], atol=1e-6)
    # tracking: a sighting near the estimate joins it, one far from it (a look-alike view) does not
    homing.update(np.array([2.0, 1.0, 0.0]), torch.zeros(4))  # says (4, 1): 1 m off, within half of its 2 m
    assert 3.0 < homing.estimate[0] < 4.0
    before = homing.estimate.copy()
    homing.update(np.array([1.0, 1.0, math.pi / 2]), torch.zeros(4))  # says (1, 3): far from the estimate
    np.testing.assert_allclose(homing.estimate, before)


def test_homing_without_a_confident_sighting_keeps_looking():
    homing = GoalHoming(fixed_locator(4, (2.0, 0.0), logit=-5.0), confidence=0.7)
    homing.start(torch.zeros(4))
    assert all(homing.update(np.array([0.0, 0.0, 0.1 * k]), torch.zeros(4)) is None for k in range(200))
    with pytest.raises(ValueError):
        GoalHoming(fixed_locator(4, (1.0, 0.0), 0.0), confidence=1.5)


def test_policy_turns_in_place_to_search_then_plans_to_the_located_goal(tiny_model_path, tmp_path):
    model = load_world_model(tiny_model_path)
    path = tmp_path / "tiny.locator.pt"
    LOCATOR_FILE.save(fixed_locator(model.cfg.feature_dim, (1.5, 0.0), logit=5.0), path, {"note": "fixed"})
    params = LOW_LEVEL_ONLY | {"num_samples": 8, "horizon": 3, "locator_path": str(path), "local_route": False}
    policy = MpcPolicy.from_files(model, tiny_model_path, params, seed=0)
    policy.set_goal_image(torch.zeros(model.cfg.embed_dim))
    first = policy.act(torch.zeros(model.cfg.embed_dim), (0.0, 0.0), odom_xy=(0.0, 0.0))
    assert first.source == "search" and first.command[0] == 0.0 and first.command[1] > 0
    assert abs(first.command[1]) <= float(policy.limiter.max_velocity[1])
    policy.homing.search_turn = 0.0  # as if the search's whole turn were done (a zero state never turns)
    step = policy.act(torch.zeros(model.cfg.embed_dim), (0.0, 0.0), odom_xy=(0.0, 0.0))
    assert step.source in ("mode2", "mode1") and step.status == "ok" and "goal_distance" in step.cost_terms


def test_fit_locator_on_real_episodes_writes_a_file_the_policy_loads(tiny_model_path, episodes_dir, tmp_path, capsys):
    out = LOCATOR_FILE.beside(tmp_path / "tiny.pt")
    assert locator_main(["--model", str(tiny_model_path), "--data", str(episodes_dir), "--out", str(out),
                         "--steps", "20"]) == 0
    assert "in-sight accuracy" in capsys.readouterr().out
    model = load_world_model(tiny_model_path)
    locator = LOCATOR_FILE.load(out, feature_dim=model.cfg.feature_dim)
    policy = MpcPolicy.from_files(model, tiny_model_path, LOW_LEVEL_ONLY | {"locator_path": str(out)})
    assert policy.homing is not None and policy.homing.locator.cfg == locator.cfg
    with pytest.raises(ModelFileError, match="was made for feature_dim"):
        LOCATOR_FILE.load(out, feature_dim=99)
    out.write_bytes(b"not a checkpoint")
    with pytest.raises(ModelFileError):
        LOCATOR_FILE.load(out)
    assert locator_main(["--model", str(tiny_model_path), "--data", str(tmp_path / "none"), "--out",
                         str(out)]) == 2
