"""A pose goal with a yaw: at its position the policy turns in place to it, then reports reached."""

import math

import numpy as np
import pytest
import torch

from ojepa_ros.core.final_heading import MIN_TURN_RATE, turn_rate
from ojepa_ros.core.mpc import LOW_LEVEL_ONLY, MpcPolicy
from ojepa_ros.core.world_model import WorldModel, WorldModelConfig


def test_turn_rate_turns_the_short_way_within_the_limit_and_stops_within_tolerance():
    assert turn_rate(0.0, 1.0, 0.25, 1.5) == pytest.approx(1.5)  # 1.5 rad/s per rad, at the limit
    assert turn_rate(0.0, -0.5, 0.25, 1.5) == pytest.approx(-0.75)
    assert turn_rate(3.0, -3.0, 0.25, 1.5) > 0  # through +pi, 0.28 rad, not back through 0, 6 rad
    assert turn_rate(0.0, 0.3, 0.25, 1.5) == pytest.approx(max(MIN_TURN_RATE, 0.45))
    assert turn_rate(0.0, 0.26, 0.25, 0.1) == pytest.approx(0.1)  # the limit wins over the minimum rate
    assert turn_rate(0.1, 0.0, 0.25, 1.5) is None
    assert turn_rate(math.pi, -math.pi, 0.02, 1.5) is None  # the same heading


@pytest.fixture
def policy() -> MpcPolicy:
    torch.manual_seed(0)
    model = WorldModel(WorldModelConfig(embed_dim=16, hidden_dim=32, channels=(8, 8, 8, 8))).eval()
    flat = LOW_LEVEL_ONLY | {"num_samples": 16, "horizon": 4, "model_path": "ignored", "yaw_goal_tolerance": 0.1}
    return MpcPolicy.from_config(model, flat, seed=0)


def test_a_goal_with_a_yaw_is_reached_only_once_the_robot_faces_it(policy):
    state = torch.zeros(16)
    policy.set_goal((1.0, 1.0), yaw=1.0)
    step = policy.act(state, (0.0, 0.0), odom_xy=(1.05, 1.0), heading=0.0)
    assert (step.status, step.source) == ("ok", "align")
    assert step.raw_command[0] == 0.0 and step.raw_command[1] > 0  # in place, counter-clockwise
    # drifting out of goal_tolerance while turning does not restart the drive (Nav2's stateful goal checker)
    assert policy.act(state, (0.0, 0.0), odom_xy=(1.5, 1.0), heading=0.5).source == "align"
    for _ in range(20):  # the limiter ramps the turn down before the stop
        step = policy.act(state, (0.0, 0.0), odom_xy=(1.05, 1.0), heading=0.95)
    assert step.status == "reached" and np.allclose(step.command, 0.0)


def test_a_goal_without_a_yaw_or_a_new_goal_does_not_turn(policy):
    state = torch.zeros(16)
    policy.set_goal((1.0, 1.0))
    assert policy.act(state, (0.0, 0.0), odom_xy=(1.05, 1.0), heading=2.0).status == "reached"
    policy.set_goal((1.0, 1.0), yaw=2.0)
    policy.act(state, (0.0, 0.0), odom_xy=(1.05, 1.0), heading=0.0)  # turning at (1, 1)
    policy.set_goal((3.0, 1.0), yaw=2.0)  # elsewhere: drive there first
    assert policy.act(state, (0.0, 0.0), odom_xy=(1.05, 1.0), heading=0.0).source == "mode2"
    with pytest.raises(ValueError):
        policy.set_goal((1.0, 1.0), yaw=float("nan"))
