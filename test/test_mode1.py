"""Mode-1: the distilled policy, its file, `ojepa distill`, Mode-2 warm-started by it, and the deadline fallback."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from ojepa_ros.core.mode1 import FORMAT as MODE1_FORMAT, VERSION as MODE1_VERSION
from ojepa_ros.core.mode1 import Mode1Config, Mode1Policy, load_mode1, mode1_beside, relative_target, save_mode1
from ojepa_ros.core.model_io import ModelFileError, load_world_model, read_checkpoint
from ojepa_ros.core.mpc import LOW_LEVEL_ONLY, MpcPolicy
from ojepa_ros.core.planners import MPPI, DeadlineMissed
from ojepa_ros.train.distill import main as distill_main

HIGH = (0.5, 1.5)


def test_relative_target_is_ahead_and_left_in_the_robot_frame():
    pose = torch.tensor([[1.0, 1.0, math.pi / 2]])  # facing +y
    assert torch.allclose(relative_target(pose, torch.tensor([[1.0, 3.0]])), torch.tensor([[2.0, 0.0]]), atol=1e-6)
    assert torch.allclose(relative_target(pose, torch.tensor([[0.0, 1.0]])), torch.tensor([[0.0, 1.0]]), atol=1e-6)


def test_plans_stay_in_bounds_whatever_the_input():
    policy = Mode1Policy(Mode1Config(state_dim=8, horizon=5, action_high=HIGH))
    plans = policy(torch.randn(64, 8) * 1e6, torch.randn(64, 2) * 1e4)
    assert plans.shape == (64, 5, 2)
    assert (plans.abs() <= torch.tensor(HIGH) + 1e-6).all()


def test_file_round_trip_and_clear_errors(tmp_path):
    policy = Mode1Policy(Mode1Config(state_dim=8, horizon=5, action_high=HIGH))
    path = tmp_path / "m.mode1.pt"
    save_mode1(policy, path, {"note": "test"})
    loaded = load_mode1(path, state_dim=8, action_high=HIGH)
    x, t = torch.randn(3, 8), torch.randn(3, 2)
    assert torch.equal(loaded(x, t), policy.eval()(x, t))
    with pytest.raises(ModelFileError, match="does not exist"):
        load_mode1(tmp_path / "none.pt")
    with pytest.raises(ModelFileError, match="expects states of 8 dims, the world model gives 16"):
        load_mode1(path, state_dim=16)
    with pytest.raises(ModelFileError, match="velocity bounds"):
        load_mode1(path, action_high=(1.0, 1.5))
    corrupt = tmp_path / "corrupt.pt"
    corrupt.write_bytes(path.read_bytes()[:100])
    with pytest.raises(ModelFileError, match="corrupt.pt is not a readable"):
        load_mode1(corrupt)
    assert mode1_beside("models/world_model.pt").name == "world_model.mode1.pt"


def test_distill_trains_a_loadable_policy_from_real_episodes(tiny_model_path, episodes_dir, tmp_path, capsys):
    out = tmp_path / "tiny.mode1.pt"
    args = ["--model", str(tiny_model_path), "--data", str(episodes_dir), "--out", str(out), "--samples", "20",
            "--steps", "30", "--teacher-iterations", "1", "--dagger-rounds", "0"]
    assert distill_main(args) == 0
    assert "20 Mode-2 plans" in capsys.readouterr().out
    model = load_world_model(tiny_model_path)
    policy = load_mode1(out, model.cfg.embed_dim, HIGH)
    assert policy.cfg.horizon == 16
    assert distill_main(args[:1] + [str(tmp_path / "missing.pt")] + args[2:]) == 2


def test_dagger_labels_the_states_the_student_drives_into(tiny_model_path, episodes_dir, tmp_path, capsys):
    """One round: the student drives two pairs in the simulator and its visited states join the teacher data."""
    out = tmp_path / "dagger.mode1.pt"
    args = ["--model", str(tiny_model_path), "--data", str(episodes_dir), "--out", str(out), "--samples", "20",
            "--steps", "30", "--teacher-iterations", "1", "--dagger-rounds", "1", "--dagger-pairs", "2"]
    assert distill_main(args) == 0
    printed = capsys.readouterr().out
    assert "DAgger round 1: the student reached" in printed
    meta = read_checkpoint(out, "cpu", MODE1_FORMAT, MODE1_VERSION)["metadata"]
    assert len(meta["dagger_reached"]) == 1 and meta["memory_samples"] == 20
    assert meta["samples"] > 20  # its own states were labelled and fitted


def test_dagger_without_a_roadmap_fails_before_the_teacher_runs(tiny_model_path, episodes_dir, tmp_path, capsys):
    lonely = tmp_path / "lonely.pt"
    lonely.write_bytes(tiny_model_path.read_bytes())  # the same model, no roadmap beside it
    args = ["--model", str(lonely), "--data", str(episodes_dir), "--out", str(tmp_path / "x.pt"), "--samples", "20"]
    assert distill_main(args) == 2
    err = capsys.readouterr()
    assert "roadmap" in err.err and "Mode-2 teacher" not in err.err + err.out


def test_the_cheaper_of_warm_start_and_proposal_is_where_mppi_starts():
    """One sample (the start itself) and no noise: MPPI returns whichever start won."""
    goal = torch.tensor([1.0, 0.0])
    planner = MPPI(lambda s, a: s + 0.1 * a, lambda states, actions: (states[:, -1] - goal).norm(dim=-1),
                   (-1.0, -1.0), (1.0, 1.0), (1e-9, 1e-9), num_samples=1, horizon=4, seed=0)
    toward, away = torch.tensor([[1.0, 0.0]] * 4), torch.tensor([[-1.0, 0.0]] * 4)
    planner.command(torch.zeros(2), proposal=toward)
    assert torch.allclose(planner.plan, toward)
    planner.reset()
    planner.command(torch.zeros(2), proposal=away)
    assert torch.allclose(planner.plan, torch.zeros(4, 2))  # the (zero) warm start was cheaper


def test_mode2_past_its_deadline_hands_over_to_mode1(tiny_model_path):
    model = load_world_model(tiny_model_path)
    mode1 = Mode1Policy(Mode1Config(state_dim=model.cfg.embed_dim, horizon=16, action_high=HIGH)).eval()
    slow = LOW_LEVEL_ONLY | {"mode1": "warm_start", "plan_deadline": 1e-9}  # past before the first step
    policy = MpcPolicy.from_config(model, slow, seed=0, mode1=mode1)
    policy.set_goal((1.0, 0.0))
    state = torch.zeros(model.cfg.embed_dim)
    steps = [policy.act(state, (0.0, 0.0), dt=0.1) for _ in range(3)]
    assert [s.source for s in steps] == ["mode1"] * 3 and policy.fallbacks == 3
    for s in steps:
        assert s.status == "ok" and np.all(np.abs(s.command) <= np.array(HIGH) + 1e-9)
        assert s.plan_poses.shape == (16, 3)
    assert policy.planner.last_samples is None  # nothing half-planned is left to draw
    policy.plan_deadline = 60.0  # time enough: Mode-2 answers, from the warm start the missed steps kept
    assert policy.act(state, (0.0, 0.0), dt=0.1).source == "mode2" and policy.fallbacks == 3
    alone = MpcPolicy.from_config(model, LOW_LEVEL_ONLY | {"mode1": "alone"}, seed=0, mode1=mode1)
    alone.set_goal((1.0, 0.0))
    assert alone.act(state, (0.0, 0.0)).source == "mode1"
    with pytest.raises(ValueError, match="needs a Mode-1 policy"):
        MpcPolicy.from_config(model, LOW_LEVEL_ONLY | {"mode1": "warm_start"})


def test_a_missed_deadline_stops_the_planner_and_keeps_its_warm_start():
    goal = torch.tensor([1.0, 0.0])
    planner = MPPI(lambda s, a: s + 0.1 * a, lambda states, actions: (states[:, -1] - goal).norm(dim=-1),
                   (-1.0, -1.0), (1.0, 1.0), (0.3, 0.3), num_samples=64, horizon=4, seed=0)
    planner.command(torch.zeros(2))
    shifted = torch.cat([planner.plan[1:], planner.plan[-1:]])
    with pytest.raises(DeadlineMissed):
        planner.command(torch.zeros(2), deadline=0.0)  # perf_counter() is past 0 already
    assert torch.equal(planner.plan, shifted) and planner.last_costs is None
    assert torch.isfinite(planner.command(torch.zeros(2))).all()  # no deadline: plans as before
