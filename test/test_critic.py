"""The trainable critic: its targets, its file, `ojepa critic` on real episodes, and its place in the Objective."""

from __future__ import annotations

import pytest
import torch

from ojepa_ros.core.costs import CostContext, CriticCost
from ojepa_ros.core.critic import Critic, CriticConfig, critic_beside, load_critic, step_costs, value_targets
from ojepa_ros.core.model_io import ModelFileError, load_world_model
from ojepa_ros.core.mpc import LOW_LEVEL_ONLY, MpcPolicy
from ojepa_ros.train.fit_critic import main as critic_main


def test_targets_discount_future_contacts_and_ignore_unknown_clearance():
    cfg = CriticConfig(state_dim=4, horizon=3, discount=0.5, margin=0.2)
    clearance = torch.tensor([1.0, 1.0, 0.0, float("nan"), 0.1, 1.0])
    assert torch.allclose(step_costs(clearance, 0.2), torch.tensor([0.0, 0.0, 1.0, 0.0, 0.25, 0.0]))
    # V_t = c_{t+1} + 0.5 c_{t+2} + 0.25 c_{t+3}
    expected = torch.tensor([0.0 + 0.5 * 1.0 + 0.0, 1.0 + 0.0 + 0.25 * 0.25, 0.0 + 0.5 * 0.25 + 0.0])
    assert torch.allclose(value_targets(clearance, cfg), expected)


def test_critic_is_the_terminal_cost_of_a_plan():
    critic = Critic(CriticConfig(state_dim=3)).eval()
    states = torch.randn(5, 4, 3)
    ctx = CostContext(pose_fn=lambda s: s, critic_fn=critic)
    with torch.no_grad():
        assert torch.allclose(CriticCost()(states, torch.zeros(5, 4, 2), ctx), critic(states[:, -1]))
    assert (CriticCost()(states, torch.zeros(5, 4, 2), CostContext(pose_fn=lambda s: s)) == 0).all()
    assert CriticCost().floor == 0.0  # learned, not a guardrail: a task may turn it off


def test_fit_critic_on_real_episodes_writes_a_file_the_policy_loads(tiny_model_path, episodes_dir, tmp_path, capsys):
    out = tmp_path / "tiny.critic.pt"
    args = ["--model", str(tiny_model_path), "--data", str(episodes_dir), "--out", str(out), "--steps", "20"]
    assert critic_main(args) == 0
    assert "held-out R^2" in capsys.readouterr().out
    model = load_world_model(tiny_model_path)
    critic = load_critic(out, model.cfg.embed_dim)
    params = LOW_LEVEL_ONLY | {"weight_critic": 1.0, "critic_path": str(out), "num_samples": 8, "horizon": 3}
    policy = MpcPolicy.from_files(model, tiny_model_path, params, seed=0)
    assert policy.critic is not None and policy.critic.cfg == critic.cfg
    policy.set_goal((1.0, 0.0))
    step = policy.act(torch.zeros(model.cfg.embed_dim), (0.0, 0.0))
    assert step.status == "ok" and step.cost_terms["critic"] > 0
    with pytest.raises(ModelFileError, match="was made for state_dim"):
        load_critic(out, state_dim=99)
    with pytest.raises(ModelFileError, match="does not exist"):
        MpcPolicy.from_files(model, tmp_path / "elsewhere.pt", {**params, "critic_path": ""})
    assert critic_beside("a/world_model.pt").name == "world_model.critic.pt"


def test_weight_critic_without_a_critic_is_refused(tiny_model_path):
    model = load_world_model(tiny_model_path)
    with pytest.raises(ValueError, match="needs a critic"):
        MpcPolicy.from_config(model, LOW_LEVEL_ONLY | {"weight_critic": 1.0})
