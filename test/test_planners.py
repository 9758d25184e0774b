"""Every planner (MPPI, CEM, Gradient and the sampling-then-gradient hybrids) on toy systems with exact torch
dynamics: reaching a goal, bounds, warm start, determinism, latent-draw risk; and MpcPolicy's choice of planner."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from ojepa_ros.core.costs import Acceleration, Collision, CostContext, Energy, GoalDistance, Objective
from ojepa_ros.core.mpc import DEFAULTS, LOW_LEVEL_ONLY, PLANNERS, MpcPolicy, make_planner
from ojepa_ros.core.planners import CEM, MPPI, Cost, Gradient, Planner
from ojepa_ros.core.planners.descent import squash, unsquash
from ojepa_ros.core.world_model import WorldModel, WorldModelConfig

DT = 0.1
LOW, HIGH = (-1.0, -1.0), (1.0, 1.0)
GOAL, OBSTACLE, RADIUS = torch.tensor([2.0, 0.0]), torch.tensor([1.0, 0.1]), 0.3


def point_mass(state: torch.Tensor, action: torch.Tensor) -> torch.Tensor:
    """A velocity-commanded point: state (x, y), action (vx, vy) m/s."""
    return state + action * DT


def obstacle_cost(goal: torch.Tensor = GOAL) -> Cost:
    clearance = lambda s: torch.linalg.vector_norm(s[..., :2] - OBSTACLE, dim=-1) - RADIUS  # noqa: E731
    ctx = CostContext(pose_fn=lambda s: s, clearance_fn=clearance, goal_xy=goal)
    objective = Objective([GoalDistance(), Collision(margin=0.2), Acceleration(), Energy()])
    return lambda states, actions: objective.total(states, actions, ctx)


def build(name: str, dynamics=point_mass, cost=None, low=LOW, high=HIGH, **kw) -> Planner:
    """The planner `name` (one of mpc.PLANNERS) with small toy settings; kw overrides any of them."""
    kind = MPPI if name.startswith("mppi") else CEM if name.startswith("cem") else Gradient
    own = dict(temperature=0.05) if kind is MPPI else dict(iterations=2) if kind is CEM else dict(steps=5, lr=0.1)
    refine = dict(refine_steps=5, refine_lr=0.1) if name.endswith("_gradient") else {}
    settings = dict(noise_sigma=(0.5, 0.5), num_samples=16 if kind is Gradient else 256, horizon=15, seed=0)
    return kind(dynamics, cost or obstacle_cost(), low, high, **(settings | own | refine | kw))


def clearance_of(state: torch.Tensor) -> float:
    return float(torch.linalg.vector_norm(state - OBSTACLE)) - RADIUS


@pytest.mark.parametrize("name", PLANNERS)
def test_each_planner_reaches_the_goal_around_an_obstacle_and_beats_random_plans(name):
    planner, cost = build(name), obstacle_cost()
    state, closest, distances, first = torch.zeros(2), float("inf"), [], None
    for _ in range(40):
        state = point_mass(state, planner.command(state))
        first = planner.plan.clone() if first is None else first
        closest = min(closest, clearance_of(state))
        distances.append(float(torch.linalg.vector_norm(state - GOAL)))
    assert sum(distances[-10:]) / 10 < 0.15  # arrived and stays (gradient steps jitter a few cm around the goal)
    assert closest > 0.0  # went around the disk on the straight line, never into it
    # The first plan (from a cold start) against 256 uniformly random plans within the same bounds.
    random_plans = torch.rand(256, 15, 2, generator=torch.Generator().manual_seed(1)) * 2 - 1
    start = torch.zeros(1, 2)
    random_costs = cost(start + random_plans.cumsum(1) * DT, random_plans)  # the point mass, integrated exactly
    planned = cost(start + first[None].cumsum(1) * DT, first[None])
    assert planned.item() < random_costs.quantile(0.05).item()


@pytest.mark.parametrize("name", PLANNERS)
def test_every_evaluated_candidate_and_returned_action_is_within_bounds(name):
    low, high = torch.tensor([-0.2, -1.0]), torch.tensor([1.0, 0.5])  # asymmetric, so no +-high shortcut hides
    seen: list[torch.Tensor] = []
    far_goal = obstacle_cost(goal=torch.tensor([50.0, 50.0]))  # pulls every action onto its upper bound

    def cost(states, actions):
        seen.append(actions.detach().clone())
        return far_goal(states, actions)

    planner = build(name, cost=cost, low=low, high=high, noise_sigma=(3.0, 3.0), **(
        dict(lr=5.0) if name == "gradient" else dict(refine_lr=5.0) if name.endswith("_gradient") else {}))
    state = torch.zeros(2)
    for _ in range(5):
        action = planner.command(state)
        state = point_mass(state, action)
        for x in (action[None, None], planner.plan[None], *seen):
            assert bool(((x >= low) & (x <= high)).all())
    assert bool((torch.cat(seen) == high).any() or name == "gradient")  # sigma 3 really hit the bounds


def test_squashing_keeps_any_parameter_inside_the_bounds_and_inverts():
    low, high = torch.tensor([-0.2, -1.0]), torch.tensor([1.0, 0.5])
    theta = torch.linspace(-1e3, 1e3, 2001)[:, None].expand(-1, 2)
    actions = squash(theta, low, high)
    assert bool(((actions >= low) & (actions <= high)).all())
    assert bool((actions.diff(dim=0) >= 0).all())  # monotone: no fold-back at the edges
    inside = low + (high - low) * (0.01 + 0.98 * torch.rand(100, 2, generator=torch.Generator().manual_seed(0)))
    assert torch.allclose(squash(unsquash(inside, low, high), low, high), inside, atol=1e-5)
    # An action on a bound starts just inside, where tanh still has a gradient to follow back.
    edge = unsquash(high[None], low, high)
    assert bool(torch.isfinite(edge).all()) and bool((1 - torch.tanh(edge) ** 2 > 1e-3).all())


@pytest.mark.parametrize("name", PLANNERS)
def test_warm_start_is_the_previous_plan_shifted_and_reset_forgets_it(name):
    first_rows: list[torch.Tensor] = []
    near = obstacle_cost(goal=torch.tensor([0.4, -0.3]))  # close: plans stay off the bounds

    def cost(states, actions):
        first_rows.append(actions[0].detach().clone())
        return near(states, actions)

    planner = build(name, cost=cost)
    planner.command(torch.zeros(2))
    previous = planner.plan.clone()
    assert previous.abs().sum() > 0
    first_rows.clear()
    planner.command(torch.zeros(2))
    shifted = torch.cat([previous[1:], previous[-1:]])
    assert torch.allclose(first_rows[0], shifted, atol=1e-4)  # the first candidate evaluated is the warm start
    n = planner.num_samples
    assert planner.last_states.shape == (15, 2) and planner.last_costs.shape == (n,)
    assert planner.last_samples.shape == (n, 15, 2)
    planner.reset()
    assert planner.plan.abs().sum() == 0 and planner.last_states is None and planner.last_samples is None


@pytest.mark.parametrize("name", PLANNERS)
def test_a_seed_reproduces_every_command_and_another_seed_does_not(name):
    def run(seed: int) -> torch.Tensor:
        planner = build(name, dynamics=windy, cost=lambda s, a: s[:, :, 0].abs().mean(1) + s[:, -1, 1].abs(),
                        seed=seed, latent_draws=4, latent_dim=1)
        state, actions = torch.tensor([1.0, 0.5]), []
        for _ in range(3):
            actions.append(planner.command(state))
            state = point_mass(state, actions[-1])
        return torch.stack(actions)

    assert torch.equal(run(0), run(0))
    assert not torch.equal(run(0), run(1))


@pytest.mark.parametrize("name", PLANNERS)
def test_all_non_finite_costs_give_a_non_finite_command_not_a_silent_pick(name):
    planner = build(name, cost=lambda s, a: torch.full((s.shape[0],), float("nan")) + 0 * s.sum((1, 2)))
    assert not torch.isfinite(planner.command(torch.zeros(2))).all()
    assert not torch.isfinite(planner.last_states).all()


# ---- latent draws: a region whose dynamics depend on z ----

WIND = 1.0  # lateral kick per step, x z, inside the windy region x > 0.5


def windy(state: torch.Tensor, action: torch.Tensor, z: torch.Tensor) -> torch.Tensor:
    """1-D progress x (action[0]) and a lateral drift y that z kicks only while x > 0.5 (smoothly, so the
    gradient planners see the region's edge too)."""
    x = state[:, 0] + action[:, 0] * DT
    inside = torch.sigmoid((x - 0.5) / 0.02)
    y = state[:, 1] + WIND * inside * z[:, 0] * DT
    return torch.stack((x, y), dim=-1)


def windy_cost(states: torch.Tensor, actions: torch.Tensor) -> torch.Tensor:
    """Reward progress, pay for drift to one side (linear: its mean over draws is ~0, its worst case is not)."""
    return -states[:, -1, 0] + 3.0 * states[:, -1, 1]


@pytest.mark.parametrize("name", PLANNERS)
def test_worst_case_risk_stays_out_of_the_region_that_mean_risk_drives_through(name):
    def final_x(risk: str) -> float:
        more = dict(steps=20) if name == "gradient" else dict(iterations=3)
        planner = build(name, dynamics=windy, cost=windy_cost, low=(-1.0,), high=(1.0,), noise_sigma=(0.5,),
                        horizon=10, latent_draws=16, latent_dim=1, risk=risk, **more)
        for _ in range(3):  # re-planning from the same start: the plan settles
            planner.command(torch.zeros(2))
        return float(planner.plan[:, 0].sum() * DT)  # where the plan ends (x = sum of v dt)

    # (Seeds 0-5 all give mean 0.88-1.0 and worst 0.42-0.45 for every planner.)
    assert final_x("mean") > 0.8  # expected drift ~0: straight through the windy region x > 0.5
    assert final_x("worst") < 0.5  # the costliest of 16 draws drifts far: stop short of the wind


def test_latent_draws_are_shared_by_all_candidates_and_batched_as_rows():
    calls: list[torch.Tensor] = []

    def dynamics(state, action, z):
        calls.append(z.clone())
        return windy(state, action, z)

    planner = MPPI(dynamics, windy_cost, (-1.0,), (1.0,), (0.5,), num_samples=8, horizon=3, latent_draws=4,
                   latent_dim=1, seed=0)
    planner.command(torch.zeros(2))
    assert planner.last_samples.shape == (8 * 4, 3, 2) and planner.last_costs.shape == (8,)
    z = calls[0].view(8, 4, 1)  # row n*K + k: candidate n under draw k
    assert torch.equal(z, z[:1].expand_as(z)) and z[0].std() > 0
    assert torch.equal(calls[-1], torch.zeros(1, 1))  # the reported plan rollout uses the prior mean
    with pytest.raises(ValueError, match="latent_dim"):
        MPPI(dynamics, windy_cost, (-1.0,), (1.0,), (0.5,), latent_draws=4)
    with pytest.raises(ValueError, match="risk"):
        MPPI(dynamics, windy_cost, (-1.0,), (1.0,), (0.5,), latent_draws=4, latent_dim=1, risk="best")


# ---- MpcPolicy picks the planner ----

TINY = dict(embed_dim=16, hidden_dim=32, channels=(8, 8, 8, 8))


def tiny_model(**cfg) -> WorldModel:
    torch.manual_seed(0)
    return WorldModel(WorldModelConfig(**(TINY | cfg))).eval()


@pytest.mark.parametrize("name", PLANNERS)
def test_policy_builds_each_planner_and_still_stops_on_a_non_finite_plan(name):
    model = tiny_model()
    params = {"planner": name, "num_samples": 16, "horizon": 4, "gradient_steps": 2, "latent_draws": 3,
              "risk": "worst"} | LOW_LEVEL_ONLY
    policy = MpcPolicy.from_config(model, params, seed=0)
    expected = MPPI if name.startswith("mppi") else CEM if name.startswith("cem") else Gradient
    assert type(policy.planner) is expected
    assert policy.planner.refine_steps == (2 if name.endswith("_gradient") else 0)
    z_dim = getattr(model.cfg, "z_dim", 0)
    assert policy.planner.latent_draws == (3 if z_dim else 0) and policy.planner.risk == "worst"
    policy.set_goal((1.0, 1.0))
    step = policy.act(torch.zeros(16), (0.0, 0.0))
    assert step.status == "ok" and abs(step.command[0]) <= 0.5 and abs(step.command[1]) <= 1.5
    with torch.no_grad():
        model._dynamics[-1].bias.fill_(float("nan"))  # a corrupted predictor: every rollout is NaN
    step = policy.act(torch.zeros(16), (0.0, 0.0))
    assert step.status == "invalid_plan" and torch.isfinite(policy.planner.plan).all()


def test_bfloat16_policy_plans_with_a_bf16_copy_of_the_model():
    model = tiny_model()
    policy = MpcPolicy.from_config(model, {"precision": "bfloat16", "num_samples": 16, "horizon": 4} | LOW_LEVEL_ONLY,
                                   seed=0)
    assert policy.model._dynamics[0].weight.dtype == torch.bfloat16
    assert model._dynamics[0].weight.dtype == torch.float32
    policy.set_goal((1.0, 1.0))
    step = policy.act(torch.zeros(16), (0.0, 0.0))
    assert step.status == "ok" and abs(step.command[0]) <= 0.5 and abs(step.command[1]) <= 1.5
    assert np.isfinite(step.plan_poses).all() and len(step.plan_poses) == 4


def test_policy_refuses_unknown_planner_and_out_of_range_settings():
    model = tiny_model()
    for bad in ({"planner": "rrt"}, {"risk": "best"}, {"latent_draws": -1}, {"cem_elite_fraction": 0.0},
                {"cem_momentum": 1.0}):
        with pytest.raises(ValueError, match=next(iter(bad))):
            MpcPolicy.from_config(model, bad)
    assert make_planner(DEFAULTS, point_mass, obstacle_cost(), (1.0, 1.0), 0, None).latent_draws == 0


def test_primitives_let_a_planner_back_out_of_a_dead_end():
    """Warm-started flat out toward a wall it is touching, with noise too small to ever reverse: the primitives
    (creep forward or back, turn in place either way) are candidates every step, so backing off wins."""
    wall = 0.05

    def dynamics(s, a):
        return torch.cat((torch.minimum(s[:, :1] + 0.1 * a[:, :1], torch.full_like(s[:, :1], wall)), s[:, 1:]), 1)

    def cost(states, actions):
        return (torch.relu(states[..., 0] - (wall - 0.2)) ** 2).sum(1) * 100 + actions.square().sum((1, 2)) * 1e-3

    planner = MPPI(dynamics, cost, [-0.5, -1.5], [0.5, 1.5], (0.05, 0.05), num_samples=64, horizon=8, seed=0)
    planner.plan = torch.tensor([[0.5, 0.0]]).expand(8, -1).clone()
    planner._fresh = False
    first = planner.command(torch.tensor([wall, 0.0]))
    assert first[0] < 0
    assert planner.primitives().shape == (4, 8, 2) and bool((planner.primitives()[:, 0] != 0).any(dim=1).all())
