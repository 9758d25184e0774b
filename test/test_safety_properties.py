"""Safety as properties (hypothesis): whatever is asked of the CommandLimiter, and whatever state, goal, planner
or poisoned plan the MpcPolicy meets, the command sent to the base is finite, within the velocity limits, and
within acceleration x dt of the previous one; a plan with a NaN in it is never executed."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st

from ojepa_ros.core.mode1 import Mode1Config, Mode1Policy
from ojepa_ros.core.mpc import CALM_STOPS, LOW_LEVEL_ONLY, PLANNERS, MpcPolicy
from ojepa_ros.core.safety import CommandLimiter
from ojepa_ros.core.world_model import WorldModel, WorldModelConfig

# Huge finite inputs (1.8e308 x an acceleration, a float64 velocity cast to float32) overflow to inf on purpose.
pytestmark = pytest.mark.filterwarnings("ignore:overflow encountered:RuntimeWarning")
TOL = 1e-9
MAX_V, MAX_W, ACC_V, ACC_W = 0.5, 1.5, 1.0, 3.0  # DEFAULTS' limits
STATE_DIM = 16

any_float = st.floats(allow_nan=True, allow_infinity=True)  # NaN, +-inf, +-1.8e308 and subnormals included
any_dt = st.one_of(st.floats(1e-4, 1.0), any_float)
positive = st.floats(1e-3, 1e3)


def assert_safe_step(previous: np.ndarray, command: np.ndarray, max_velocity: np.ndarray,
                     max_accel: np.ndarray, dt: float) -> None:
    assert command.shape == (2,) and np.isfinite(command).all()
    assert (np.abs(command) <= max_velocity).all()
    allowed = max_accel * dt if math.isfinite(dt) and dt > 0 else np.zeros(2)
    assert (np.abs(command - previous) <= allowed + TOL * np.maximum(1.0, np.abs(previous))).all()


def assert_ramps_to_stop(previous: np.ndarray, command: np.ndarray) -> None:
    """Toward zero, never past it or away from it."""
    assert (np.abs(command) <= np.abs(previous)).all() and (command * previous >= 0).all()


# ---- (a) the limiter alone ----

@settings(max_examples=300, deadline=None)
@given(limits=st.tuples(positive, positive, positive, positive),
       steps=st.lists(st.tuples(st.tuples(any_float, any_float), any_dt), min_size=1, max_size=30))
def test_limiter_output_is_finite_bounded_and_rate_limited_for_any_input(limits, steps):
    limiter = CommandLimiter(*limits)
    previous = np.zeros(2)
    for requested, dt in steps:
        command = limiter.limit(np.array(requested), dt)
        assert_safe_step(previous, command, limiter.max_velocity, limiter.max_accel, dt)
        if not np.isfinite(requested).all():
            assert limiter.fault is not None
            assert_ramps_to_stop(previous, command)
        previous = command


@settings(max_examples=100, deadline=None)
@given(requested=st.lists(any_float, min_size=0, max_size=5).filter(lambda r: len(r) != 2), dt=any_dt)
def test_limiter_treats_a_malformed_command_as_a_stop(requested, dt):
    limiter = CommandLimiter(MAX_V, MAX_W, ACC_V, ACC_W)
    previous = limiter.limit(np.array([0.4, -1.0]), 1.0)
    command = limiter.limit(np.array(requested), dt)
    assert limiter.fault is not None
    assert_safe_step(previous, command, limiter.max_velocity, limiter.max_accel, dt)
    assert_ramps_to_stop(previous, command)


# ---- (b) the policy, every planner, a real (untrained) tiny world model ----

@pytest.fixture(scope="module", autouse=True)
def one_torch_thread():
    """As the nodes run (runtime.py): on a busy 2-core machine two intra-op threads made each gradient
    planner step ~50x slower here (~500 ms instead of ~10 ms)."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@pytest.fixture(scope="module")
def model() -> WorldModel:
    torch.manual_seed(0)
    return WorldModel(WorldModelConfig(embed_dim=STATE_DIM, hidden_dim=32, channels=(8, 8, 8, 8))).eval()


def tiny_policy(model: WorldModel, planner: str) -> MpcPolicy:
    """A real policy with one of PLANNERS, or "mode1": an (untrained) Mode-1 network alone commands."""
    params = LOW_LEVEL_ONLY | {"planner": planner, "num_samples": 12, "horizon": 4, "gradient_steps": 2,
                               "latent_draws": 2}
    mode1 = None
    if planner == "mode1":
        params |= {"planner": "mppi", "mode1": "alone"}
        mode1 = Mode1Policy(Mode1Config(state_dim=STATE_DIM, horizon=4, action_high=(MAX_V, MAX_W))).eval()
    return MpcPolicy.from_config(model, params, seed=0, mode1=mode1)


def step_accel(policy: MpcPolicy, step) -> np.ndarray:
    """The rate a step may change the command at: the comfort limits, or the safety stop's steeper
    deceleration when the step is a fault stop (MpcPolicy.stop)."""
    return policy.limiter.max_accel if step.status in ("ok", *CALM_STOPS) else policy.limiter.stop_accel


finite = st.floats(-1e3, 1e3)


def vectors(elements: st.SearchStrategy[float]) -> st.SearchStrategy[torch.Tensor]:
    return st.lists(elements, min_size=STATE_DIM, max_size=STATE_DIM).map(lambda xs: torch.tensor(xs))


calm_states = vectors(st.floats(-3.0, 3.0, width=32))
states = vectors(st.one_of(st.floats(-5.0, 5.0, width=32), st.floats(width=32)))  # NaN, inf, 3.4e38 too
velocities = st.tuples(any_float, any_float)
goals = st.tuples(finite, finite)
dts = st.floats(0.01, 0.5)
PROPERTY = settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])


@pytest.mark.parametrize("planner", (*PLANNERS, "mode1"))
@PROPERTY
@given(steps=st.lists(st.tuples(st.one_of(calm_states, states), velocities, dts), min_size=1, max_size=4),
       goal=goals)
def test_policy_commands_stay_within_limits_for_any_state_goal_and_velocity(model, planner, steps, goal):
    policy = tiny_policy(model, planner)
    policy.set_goal(goal)
    previous = np.zeros(2)
    for state, velocity, dt in steps:
        step = policy.act(state, velocity, dt=dt)
        event(step.status)
        assert_safe_step(previous, step.command, policy.limiter.max_velocity, step_accel(policy, step), dt)
        if step.status == "ok":
            assert np.isfinite(step.plan_poses).all()
            assert planner == "mode1" or torch.isfinite(policy.planner.plan).all()
        else:
            assert step.status in ("invalid_state", "invalid_plan")
            assert_ramps_to_stop(previous, step.command)
        previous = step.command


def poison(policy: MpcPolicy, how: str, threshold: float) -> None:
    """Corrupt the real planner in place: its dynamics, its command or its rollout get NaNs."""
    planner = policy.planner
    if how in ("all_rows", "some_rows"):
        clean = planner.dynamics

        def dynamics(s, a, z=None):
            out = clean(s, a, z)
            bad = torch.ones_like(a[:, 0], dtype=torch.bool) if how == "all_rows" else a[:, 0] > threshold
            return torch.where(bad[:, None], torch.full_like(out, math.nan), out)

        planner.dynamics = dynamics
    elif how == "command":
        clean_command = planner.command
        planner.command = lambda *args: clean_command(*args) * torch.tensor([math.nan, 1.0])
    else:  # "rollout": a finite first action, but the plan's predicted states go NaN
        clean_command = planner.command

        def command(*args):
            first = clean_command(*args)
            planner.last_states[-1, 0] = math.nan
            return first

        planner.command = command


@pytest.mark.parametrize("planner", PLANNERS)
@PROPERTY
@given(how=st.sampled_from(["all_rows", "some_rows", "command", "rollout"]), threshold=st.floats(-0.5, 0.5),
       moving=st.tuples(st.floats(-MAX_V, MAX_V), st.floats(-MAX_W, MAX_W)), state=calm_states, goal=goals,
       dt=dts)
def test_a_plan_with_nan_is_never_executed_the_base_ramps_to_a_stop(model, planner, how, threshold, moving,
                                                                    state, goal, dt):
    policy = tiny_policy(model, planner)
    policy.set_goal(goal)
    previous = policy.limiter.limit(np.array(moving), 10.0)  # the base is moving at `moving`
    poison(policy, how, threshold)
    step = policy.act(state, previous, dt=dt)
    event(f"{how}: {step.status}")
    assert_safe_step(previous, step.command, policy.limiter.max_velocity, step_accel(policy, step), dt)
    executed = policy.planner.last_states
    if step.status == "ok":  # only "some_rows" may leave a clean plan: NaN candidates lost to finite ones
        assert how == "some_rows"
        assert torch.isfinite(executed).all() and np.isfinite(step.raw_command).all()
    else:
        assert step.status == "invalid_plan" and step.raw_command.tolist() == [0.0, 0.0]
        assert_ramps_to_stop(previous, step.command)
        assert executed is None  # the poisoned plan is not kept as the next warm start


def test_a_fault_stop_brakes_at_the_safe_stop_deceleration_a_calm_one_at_the_comfort_limit(model):
    policy = tiny_policy(model, "mppi")
    assert policy.limiter.stop_accel.tolist() == [2.0, 6.0] and policy.limiter.max_accel.tolist() == [ACC_V, ACC_W]
    policy.limiter.limit(np.array([0.5, 1.5]), 10.0)
    np.testing.assert_allclose(policy.stop("stale", 0.1).command, [0.3, 0.9])  # 2 m/s^2, 6 rad/s^2
    np.testing.assert_allclose(policy.stop("invalid_plan", 0.1).command, [0.1, 0.3])
    policy.limiter.limit(np.array([0.5, 1.5]), 10.0)
    np.testing.assert_allclose(policy.stop("reached", 0.1).command, [0.4, 1.2])  # 1 m/s^2, 3 rad/s^2


def test_settings_outside_their_ranges_or_not_together_are_refused(model):
    from ojepa_ros.core.mpc import rollout_budget_problem

    for bad in ({"max_linear_velocity": 50.0}, {"goal_tolerance": 1e6}, {"horizon": 2000},
                {"num_samples": 200_000}, {"safe_stop_deceleration": 0.5},  # below the 1 m/s^2 comfort limit
                {"max_angular_acceleration": 7.0}):
        with pytest.raises(ValueError):
            MpcPolicy.from_config(model, LOW_LEVEL_ONLY | bad)
    base = {"horizon": 16, "num_samples": 512, "latent_draws": 0, "iterations": 1}
    assert rollout_budget_problem(base, 10.0) is None
    assert "budget" in rollout_budget_problem(base | {"num_samples": 100_000}, 10.0)
    assert "budget" in rollout_budget_problem(base | {"horizon": 2000}, 10.0)
    assert rollout_budget_problem(base | {"num_samples": 1024}, 10.0) is None
    assert "budget" in rollout_budget_problem(base | {"num_samples": 1024}, 20.0)
