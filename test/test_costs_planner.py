"""Cost terms, the Objective's guardrails, MPPI on an analytic unicycle, and MpcPolicy (core, no ROS)."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
import yaml

from ojepa_ros.core.costs import (Acceleration, Backward, Collision, CostContext, Energy, GoalDistance, Heading,
                                  Objective, Speed, default_terms)
from ojepa_ros.core.mpc import DEFAULTS, LOW_LEVEL_ONLY, MpcPolicy
from ojepa_ros.core.planners import MPPI
from ojepa_ros.core.world_model import WorldModel, WorldModelConfig
from ojepa_ros.paths import config_file

DT = 0.1
LOW, HIGH = (-0.5, -1.5), (0.5, 1.5)
OBSTACLE, RADIUS = torch.tensor([1.0, 0.0]), 0.3


def unicycle(state: torch.Tensor, action: torch.Tensor) -> torch.Tensor:
    """Exact kinematics of a differential-drive base, state (x, y, yaw), action (v, w)."""
    x, y, yaw = state.unbind(-1)
    v, w = action.unbind(-1)
    return torch.stack((x + v * torch.cos(yaw) * DT, y + v * torch.sin(yaw) * DT, yaw + w * DT), dim=-1)


def disk_clearance(states: torch.Tensor) -> torch.Tensor:
    return torch.linalg.vector_norm(states[..., :2] - OBSTACLE, dim=-1) - RADIUS


def context(goal=(2.0, 0.0), prev=(0.0, 0.0)) -> CostContext:
    return CostContext(pose_fn=lambda s: s, clearance_fn=disk_clearance,
                       goal_xy=None if goal is None else torch.tensor(goal), prev_action=torch.tensor(prev))


def make_mppi(objective: Objective, ctx: CostContext, **kw) -> MPPI:
    settings = dict(noise_sigma=(0.25, 0.8), num_samples=256, horizon=15, temperature=0.05, seed=0) | kw
    return MPPI(unicycle, lambda s, a: objective.total(s, a, ctx), LOW, HIGH, **settings)


def drive(planner: MPPI, state: torch.Tensor, steps: int) -> tuple[torch.Tensor, list[torch.Tensor], float]:
    actions, min_clearance = [], math.inf
    for _ in range(steps):
        a = planner.command(state)
        actions.append(a)
        state = unicycle(state, a)
        min_clearance = min(min_clearance, float(disk_clearance(state)))
    return state, actions, min_clearance


def test_terms_measure_what_they_say():
    s = torch.tensor([[[0.0, 0.0, 0.0], [3.0, 4.0, 0.0]]])  # one sample, two steps
    a = torch.tensor([[[0.5, 0.0], [0.5, 2.0]]])
    ctx = context(goal=(0.0, 0.0), prev=(0.0, 0.0))
    assert GoalDistance(terminal_weight=2.0)(s, a, ctx).item() == pytest.approx(2.5 + 2 * 5.0)
    assert GoalDistance()(s, a, context(goal=None)).item() == 0.0
    # Clearance: step 0 is 0.7 m from the disk edge (beyond the margin), step 1 far away -> no cost; touching -> 1.
    assert Collision(margin=0.3)(s, a, ctx).item() == 0.0
    touching = torch.tensor([[[0.7, 0.0, 0.0]]])
    assert Collision(margin=0.3)(touching, a[:, :1], ctx).item() == pytest.approx(1.0)
    assert Speed(soft_limits=(0.4, 1.2))(s, a, ctx).item() == pytest.approx((0.1 ** 2 + 0.1 ** 2 + 0.8 ** 2) / 2)
    # Acceleration starts from the command running now: (0.5 - 0)^2 then (2 - 0)^2, mean over 2 steps.
    assert Acceleration()(s, a, ctx).item() == pytest.approx((0.25 + 4.0) / 2)
    assert Acceleration()(s, a, context(prev=(0.5, 0.0))).item() == pytest.approx(4.0 / 2)
    assert Energy()(s, a, ctx).item() == pytest.approx((0.25 + 0.25 + 4.0) / 2)
    assert Backward()(s, a, ctx).item() == 0.0
    assert Backward()(s, -a, ctx).item() == pytest.approx(0.25)


def test_heading_charges_facing_away_from_the_goal_but_not_at_it():
    goal = context(goal=(2.0, 0.0))
    facing = torch.tensor([[[0.0, 0.0, 0.0]]])
    away = torch.tensor([[[0.0, 0.0, math.pi]]])
    sideways = torch.tensor([[[0.0, 0.0, math.pi / 2]]])
    at_goal = torch.tensor([[[1.8, 0.0, math.pi]]])
    a = torch.zeros(1, 1, 2)
    running = Heading(terminal_weight=0.0)
    assert running(facing, a, goal).item() == pytest.approx(0.0, abs=1e-6)
    assert running(away, a, goal).item() == pytest.approx(1.0)
    assert running(sideways, a, goal).item() == pytest.approx(0.5)
    assert Heading()(at_goal, a, goal).item() == 0.0  # within `near` the final turn is free


def test_heading_weighs_where_the_plan_ends_facing():
    """A turn that ends facing the goal must beat standing still facing away by more than the running mean
    says: over a short horizon the turn's first steps still face away."""
    goal = context(goal=(3.0, 0.0))
    yaw_turning = torch.linspace(math.pi, 0.0, 8)
    turn = torch.stack([torch.zeros(8), torch.zeros(8), yaw_turning], -1)[None]
    stay = torch.tensor([0.0, 0.0, math.pi]).expand(1, 8, 3)
    a = torch.zeros(1, 8, 2)
    advantage = {w: (Heading(terminal_weight=w)(stay, a, goal) - Heading(terminal_weight=w)(turn, a, goal)).item()
                 for w in (0.0, 2.0)}
    assert advantage[0.0] == pytest.approx(0.5, abs=0.01) and advantage[2.0] == pytest.approx(2.5, abs=0.01)
    sideways = torch.tensor([0.0, 0.0, math.pi / 2]).expand(1, 8, 3)  # a detour's end: no terminal charge
    assert Heading()(sideways, a, goal).item() == pytest.approx(0.5)


def test_breakdown_sums_to_total_with_weights_and_powers():
    objective = Objective([GoalDistance(weight=1.5, power=2.0), Collision(), Speed(), Acceleration(), Energy()])
    gen = torch.Generator().manual_seed(1)
    states = torch.randn(64, 10, 3, generator=gen)
    actions = torch.randn(64, 10, 2, generator=gen)
    ctx = context()
    parts = objective.breakdown(states, actions, ctx)
    assert set(parts) == {"goal_distance", "collision", "speed", "acceleration", "energy"}
    assert torch.allclose(sum(parts.values()), objective.total(states, actions, ctx))
    assert torch.allclose(parts["goal_distance"], 1.5 * GoalDistance()(states, actions, ctx) ** 2)
    assert all(bool((p >= 0).all()) for p in parts.values())


def test_guardrails_cannot_be_switched_off_by_a_task():
    objective = Objective()
    with pytest.raises(ValueError, match="guardrail.*collision|collision.*guardrail"):
        objective.set_weights({"goal_distance": 3.0, "collision": 0.0})
    assert objective.weights == {t.name: t.default_weight for t in default_terms()}  # nothing half-applied
    with pytest.raises(ValueError, match="unknown cost term"):
        objective.set_weights({"colision": 100.0})
    with pytest.raises(ValueError, match=">= 0"):
        objective.set_weights({"goal_distance": -1.0})
    with pytest.raises(ValueError, match=">= 0"):
        objective.set_weights({"energy": float("nan")})
    objective.set_weights({"goal_distance": 0.0, "collision": 5.0, "energy": 10.0})  # floor is 0.1 x default
    assert objective.weights["collision"] == 5.0 and objective.weights["goal_distance"] == 0.0


def test_mppi_drives_unicycle_to_goal_around_obstacle_within_bounds():
    ctx = context(goal=(2.0, 0.0))
    planner = make_mppi(Objective(), ctx)
    state, actions, min_clearance = drive(planner, torch.tensor([0.0, 0.0, 0.0]), steps=100)
    assert torch.linalg.vector_norm(state[:2] - ctx.goal_xy) < 0.3
    assert min_clearance > 0.0  # went around the disk that lies on the straight line
    stacked = torch.stack(actions)
    assert bool((stacked >= torch.tensor(LOW)).all() and (stacked <= torch.tensor(HIGH)).all())


def test_samples_are_clamped_before_rollout_and_include_the_nominal_plan():
    seen: list[torch.Tensor] = []

    def cost(states: torch.Tensor, actions: torch.Tensor) -> torch.Tensor:
        seen.append(actions.clone())
        return states[:, -1, 0].abs()

    planner = MPPI(unicycle, cost, LOW, HIGH, noise_sigma=(5.0, 5.0), num_samples=128, horizon=8, seed=3)
    state = torch.zeros(3)
    for _ in range(5):
        expected_nominal = torch.cat([planner.plan[1:], planner.plan[-1:]]) if seen else planner.plan.clone()
        planner.command(state)
        assert torch.allclose(seen[-1][0], expected_nominal)
    samples = torch.cat(seen)
    assert bool((samples >= torch.tensor(LOW)).all() and (samples <= torch.tensor(HIGH)).all())
    assert bool((samples == torch.tensor(HIGH)).any())  # sigma 5 really hit the bounds, so clamping was exercised


def test_warm_start_shifts_the_previous_plan():
    planner = make_mppi(Objective(), context())
    planner.command(torch.zeros(3))
    first = planner.plan.clone()
    assert first.abs().sum() > 0
    planner.sigma = torch.zeros(2)  # noise-free: the optimiser can only return its warm start
    planner.command(torch.zeros(3))
    assert torch.allclose(planner.plan, torch.cat([first[1:], first[-1:]]))
    assert planner.last_states.shape == (15, 3) and planner.last_samples.shape == (256, 15, 3)
    planner.reset()
    assert planner.plan.abs().sum() == 0 and planner.last_states is None


def test_all_infinite_costs_give_a_non_finite_command_not_a_silent_pick():
    planner = MPPI(unicycle, lambda s, a: torch.full((s.shape[0],), float("nan")), LOW, HIGH,
                   noise_sigma=(0.1, 0.1), num_samples=8, horizon=4)
    assert not torch.isfinite(planner.command(torch.zeros(3))).all()


def test_invalid_settings_are_refused():
    with pytest.raises(ValueError):
        MPPI(unicycle, lambda s, a: s[:, 0, 0], LOW, HIGH, noise_sigma=(0.1,))
    with pytest.raises(ValueError):
        MPPI(unicycle, lambda s, a: s[:, 0, 0], LOW, HIGH, noise_sigma=(0.1, 0.1), temperature=0.0)


# ---- MpcPolicy: the planner tied to a real (untrained) world model and the limiter ----

TINY = dict(embed_dim=16, hidden_dim=32, channels=(8, 8, 8, 8))


@pytest.fixture
def model() -> WorldModel:
    torch.manual_seed(0)
    return WorldModel(WorldModelConfig(**TINY)).eval()


def tiny_policy(model: WorldModel, **params) -> MpcPolicy:
    flat = LOW_LEVEL_ONLY | {"num_samples": 64, "horizon": 5, "model_path": "ignored"}
    return MpcPolicy.from_config(model, flat | params, seed=0)


def test_policy_commands_are_finite_and_limited(model):
    policy = tiny_policy(model)
    policy.set_goal((3.0, 3.0))
    gen = torch.Generator().manual_seed(0)
    previous = np.zeros(2)
    for _ in range(10):
        step = policy.act(torch.randn(16, generator=gen), current_velocity=previous)
        assert step.status == "ok" and np.isfinite(step.command).all()
        assert abs(step.command[0]) <= 0.5 and abs(step.command[1]) <= 1.5
        assert (np.abs(step.command - previous) <= np.array([1.0, 3.0]) * 0.1 + 1e-9).all()
        assert step.plan_poses.shape == (5, 3) and np.isfinite(step.plan_poses).all() and step.plan_ms > 0
        previous = step.command
    plan, states = policy.planner.plan, policy.planner.last_states
    assert set(step.cost_terms) == {"goal_distance", "goal_embedding", "heading", "collision", "obstacles", "speed",
                                    "backward", "acceleration", "energy", "critic"}
    total = policy.objective.total(states[None], plan[None], policy._ctx).item()
    assert sum(step.cost_terms.values()) == pytest.approx(total, rel=1e-5)


def test_policy_stops_without_goal_on_nan_state_and_at_goal(model):
    policy = tiny_policy(model)
    state = torch.zeros(16)
    step = policy.act(state, (0.0, 0.0))
    assert step.status == "no_goal" and step.command.tolist() == [0.0, 0.0]
    policy.set_goal((1.0, 1.0))
    assert policy.act(state, (0.0, 0.0)).status == "ok"
    moving = policy.limiter.last.copy()
    step = policy.act(torch.full((16,), float("nan")), (0.0, 0.0))
    assert step.status == "invalid_state" and np.isfinite(step.command).all()
    assert (np.abs(step.command) <= np.abs(moving)).all()  # ramping to a stop, never away from it
    for _ in range(20):
        step = policy.act(state, (0.0, 0.0), odom_xy=(1.1, 0.9))
    assert step.status == "reached" and step.command.tolist() == [0.0, 0.0]
    policy.clear_goal()
    assert policy.act(state, (0.0, 0.0)).status == "no_goal"
    policy.set_goal((1.0, 1.0))
    policy.act(state, (0.0, 0.0))
    step = policy.stop("stale", 0.1)  # what a node does when its watchdog fires
    assert step.status == "stale" and step.raw_command.tolist() == [0.0, 0.0]
    assert policy.planner.last_states is None  # no warm start survives a stop


def test_policy_never_executes_a_non_finite_plan(model):
    with torch.no_grad():
        model._dynamics[-1].bias.fill_(float("nan"))  # a corrupted predictor: every rollout is NaN
    policy = tiny_policy(model)
    policy.set_goal((1.0, 1.0))
    step = policy.act(torch.zeros(16), (0.0, 0.0))
    assert step.status == "invalid_plan" and step.command.tolist() == [0.0, 0.0]
    assert torch.isfinite(policy.planner.plan).all()  # the poisoned warm start was dropped


def test_from_config_applies_settings_and_refuses_a_disabled_guardrail(model):
    policy = tiny_policy(model, max_linear_velocity=0.3, weight_goal_distance=2.0, temperature=0.1)
    assert policy.limiter.max_velocity.tolist() == [0.3, 1.5]
    assert policy.planner.high.tolist() == pytest.approx([0.3, 1.5]) and policy.planner.temperature == 0.1
    assert policy.objective.weights["goal_distance"] == 2.0
    with pytest.raises(ValueError, match="guardrail"):
        tiny_policy(model, weight_collision=0.0)


def test_defaults_are_mirrored_in_agent_yaml():
    params = yaml.safe_load(config_file("agent.yaml").read_text())["actor_node"]["ros__parameters"]
    assert {k: params.get(k) for k in DEFAULTS} == DEFAULTS
