"""The actor's policy: high level (subgoal route, core/hierarchy.py) -> Mode-1 proposal (core/mode1.py) ->
Mode-2, a planner (MPPI by default) through the world model scored by the Objective -> the CommandLimiter.

The policy never lets a command out that did not pass the limiter; a non-finite state or plan, no
goal, or a reached goal all become a stop (ramped at the acceleration limit, see CommandLimiter). With a
plan_deadline, a Mode-2 step still rolling out at the deadline stops there and Mode-1's command goes out.
"""

from __future__ import annotations

import ctypes
import functools
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Mapping, Sequence

import numpy as np
import torch
from torch import Tensor

from ojepa_ros.core.final_heading import turn_rate
from ojepa_ros.core.goal_locator import LOCATOR_FILE, GoalLocator
from ojepa_ros.core.hierarchy import SubgoalPlanner
from ojepa_ros.core.goal_match import GoalMatcher
from ojepa_ros.core.image_goal import GoalHoming
from ojepa_ros.core.local_route import LocalRouter
from ojepa_ros.core.onnx_runtime import OrtWorldModel
from ojepa_ros.core.ort_rollouts import OrtRolloutModel
from ojepa_ros.core.mode1 import Mode1Policy, load_mode1, mode1_beside, relative_target
from ojepa_ros.core.obstacle_memory import ObstacleMemory
from ojepa_ros.core.sensing import sector_edges
from ojepa_ros.core.costs import (Acceleration, Backward, Collision, CostContext, CriticCost, Energy, GoalDistance,
                                  GoalEmbedding, Heading, Objective, PerceivedObstacles, Speed, default_terms)
from ojepa_ros.core.critic import Critic, critic_beside, load_critic
from ojepa_ros.core.planners import CEM, MPPI, RISKS, DeadlineMissed, Gradient, Planner
from ojepa_ros.core.recovery import (RECOVERY_CHECKS, RECOVERY_DEFAULTS, RECOVERY_RANGES, Recovery, RecoveryConfig,
                                     RecoveryStep, Surroundings)
from ojepa_ros.core.roadmap import Roadmap, load_roadmap, roadmap_beside
from ojepa_ros.core.safety import ROBOT_LIMITS, CommandLimiter
from ojepa_ros.core.world_model import WorldModel

# The actor's settings: mirrored one-to-one into config/agent.yaml (actor_node). Units SI.
DEFAULTS: dict[str, float | int | str] = {
    "planner": "mppi",                # one of PLANNERS; *_gradient: the sampler's plan refined by gradient steps
    "horizon": 16,                    # planner steps of the model's dt (0.1 s)
    "num_samples": 512,               # candidates per iteration (gradient: sequences descended at once, ~16)
    "iterations": 1,                  # MPPI / CEM iterations per control step
    "temperature": 0.05,              # MPPI lambda, in cost units
    "noise_sigma_linear": 0.25,       # m/s; sampling noise, CEM's initial std
    "noise_sigma_angular": 0.8,       # rad/s
    "cem_elite_fraction": 0.1,        # share of the candidates CEM refits its Gaussian to
    "cem_momentum": 0.1,              # share of the old mean and std CEM keeps per iteration
    "cem_min_std_fraction": 0.05,     # CEM's std floor, x noise_sigma
    "gradient_steps": 5,              # Adam steps of the gradient planner and of the *_gradient refinement
    "gradient_lr": 0.1,               # Adam step size on the tanh-squashed action parameters
    "latent_draws": 0,                # K prior draws of the model's latent z per candidate (0: z = prior mean)
    "risk": "mean",                   # how a candidate's K draw costs combine: mean | worst
    "precision": "float32",           # float32 | bfloat16: the planner's model copy has bf16 step + clearance MLPs
    "max_linear_velocity": 0.5,       # m/s; planner bounds and limiter
    "max_angular_velocity": 1.5,      # rad/s
    "max_linear_acceleration": 1.0,   # m/s^2; limiter
    "max_angular_acceleration": 3.0,  # rad/s^2
    "safe_stop_deceleration": 2.0,    # m/s^2; the safety stop (stale input, fault): steeper than the comfort limit
    "safe_stop_angular_deceleration": 6.0,  # rad/s^2
    "goal_tolerance": 0.3,            # m, on odometry
    "yaw_goal_tolerance": 0.25,       # rad: a goal given with a yaw is reached once also turned to it within this
    "image_goal_tolerance": 0.02,     # without a goal locator, an image goal is reached when the features' mean
                                      # squared divergence is below this
    "image_goal_confidence": 0.7,     # a goal locator's sighting at least this sure counts (core/image_goal.py)
    "image_goal_search_rate": 1.0,    # rad/s: the turn in place that looks for an image goal
    "image_goal_match": True,         # with a locator: match the goal view's ranges against the scan (core/goal_match.py)
    "image_goal_reach": 0.12,         # m: a homed image goal is reached this close to where it was placed
    "obstacle_margin": 0.15,          # m: the obstacles guardrail charges imagined paths closer than this to a
                                      # perceived obstacle point (from the robot's rim)
    "obstacle_memory": 30,            # control steps a perceived obstacle point is remembered (3 s)
    "obstacle_scan_range": 1.5,       # m from the centre: range-scan returns nearer than this are obstacle points too
                                      # (0: the scan only clears points it sees through); 1.5: the local route's
                                      # window, so what it routes round is what is there all round, not only
                                      # what the camera's 90 degrees saw in the last 3 s
    "local_route": True,              # steer along a short A* route around perceived obstacles (core/local_route.py)
    "hierarchical": True,             # route subgoals over the roadmap (core/hierarchy.py); False: flat MPC
    "subgoal_lookahead": 1.0,         # m along the route from the robot to the low level's target
    "subgoal_period": 8,              # control steps between high-level replans (the level-2 step)
    "mode1": "warm_start",            # none | warm_start: Mode-1's plan competes as Mode-2's warm start | alone
    "plan_deadline": 0.06,            # s; a Mode-2 step still rolling out then stops and Mode-1's command goes out
                                      # (needs mode1 != none; 0: always wait); leaves the 0.1 s tick room to publish
    # weight_<term> of every cost term, from the terms themselves (goal_distance 1, heading 0.5, collision 50,
    # speed 1, backward 20, acceleration 0.1, energy 0.05); guardrail weights cannot go below 0.1 x these defaults.
    **{f"weight_{term.name}": term.default_weight for term in default_terms()},
    **RECOVERY_DEFAULTS,              # progress checker and recovery behaviours (core/recovery.py)
}
SOFT_SPEED_FRACTION = 0.8  # the Speed guardrail starts charging at this fraction of the hard limits
PLANNERS = ("mppi", "cem", "gradient", "mppi_gradient", "cem_gradient")
GRADIENT_FREE = ("mppi", "cem")  # the planners that can roll out on onnxruntime
PRECISIONS = {"float32": torch.float32, "bfloat16": torch.bfloat16}  # pays off with AMX / AVX512-BF16 / tensor cores
MODE1_USES = ("none", "warm_start", "alone")  # not off/on: YAML would read those as booleans
# Settings for the low level alone (flat Mode-2, no critic, no recovery): needs no roadmap, Mode-1 or critic file. For
# teachers, baselines without those files, benches and tests.
LOW_LEVEL_ONLY: dict[str, Any] = {"hierarchical": False, "mode1": "none", "weight_critic": 0.0,
                                  "recovery_enabled": False}
# Inclusive ranges of the numeric settings that guard the robot or the control rate, for from_config and
# actor_node's parameters alike (there also as ROS descriptor ranges, which `ros2 param describe` shows).
# Velocities and accelerations stop at the robot's hardware limits (core/safety.py ROBOT_LIMITS).
RANGES: dict[str, tuple[float, float]] = {
    "max_linear_velocity": (0.01, ROBOT_LIMITS.linear_velocity),
    "max_angular_velocity": (0.01, ROBOT_LIMITS.angular_velocity),
    "max_linear_acceleration": (0.05, ROBOT_LIMITS.linear_acceleration),
    "max_angular_acceleration": (0.05, ROBOT_LIMITS.angular_acceleration),
    "safe_stop_deceleration": (0.05, ROBOT_LIMITS.linear_acceleration),
    "safe_stop_angular_deceleration": (0.05, ROBOT_LIMITS.angular_acceleration),
    "goal_tolerance": (0.05, 2.0),
    "yaw_goal_tolerance": (0.02, 3.15),
    "horizon": (1, 200),
    "num_samples": (1, 100_000),
    "iterations": (1, 50),
    "plan_deadline": (0.0, 10.0),
    "latent_draws": (0, 1024),
    "obstacle_margin": (0.01, 1.0),
    "obstacle_memory": (1, 600),
    "obstacle_scan_range": (0.0, 4.0),
    "image_goal_confidence": (0.05, 0.99),
    "image_goal_search_rate": (0.1, ROBOT_LIMITS.angular_velocity),
    "image_goal_reach": (0.02, 1.0),
    **RECOVERY_RANGES,
}
# Model rollout steps per second of control (horizon x num_samples x max(1, latent_draws) x iterations x
# control rate) that actor_node accepts: 1024 x 16 at 10 Hz, measured at ~63 ms a step on one thread of the
# 2-core development machine (README, plan_step), so one core can keep the rate. The horizon 2000
# (1.1 Hz) and num_samples 100000 (4.6 Hz) are far beyond it.
ROLLOUT_BUDGET_PER_S = 1024 * 16 * 10


def rollout_budget_problem(p: Mapping[str, Any], control_rate: float) -> str | None:
    """Why these settings cannot plan at control_rate on the budget, or None if they can."""
    steps = int(p["horizon"]) * int(p["num_samples"]) * max(1, int(p["latent_draws"])) * int(p["iterations"])
    if steps * control_rate > ROLLOUT_BUDGET_PER_S:
        return (f"horizon x num_samples x max(1, latent_draws) x iterations x control_rate = {steps} x "
                f"{control_rate:g} Hz = {steps * control_rate:.0f} rollout steps/s exceeds the budget of "
                f"{ROLLOUT_BUDGET_PER_S}")
    return None


def joint_problem(p: Mapping[str, Any]) -> str | None:
    """Settings valid one by one but not together, or None: the safety stop must be at least as steep as
    the comfort limit it overrides."""
    for stop, comfort in (("safe_stop_deceleration", "max_linear_acceleration"),
                          ("safe_stop_angular_deceleration", "max_angular_acceleration")):
        if float(p[stop]) < float(p[comfort]):
            return f"{stop}={p[stop]} must be >= {comfort}={p[comfort]} (the safety stop is the steeper ramp)"
    return None


# Settings whose valid range is not "integer >= 1" / "number > 0": (check, requirement), for from_config
# and actor_node's parameter validation alike.
CHECKS: dict[str, tuple[Callable[[Any], bool], str]] = {
    **{name: (lambda v, lo=lo, hi=hi: lo <= v <= hi, f"must be in {lo:g}..{hi:g}") for name, (lo, hi) in RANGES.items()},
    "planner": (lambda v: v in PLANNERS, f"must be one of {PLANNERS}"),
    "risk": (lambda v: v in RISKS, f"must be one of {RISKS}"),
    "precision": (lambda v: v in PRECISIONS, f"must be one of {tuple(PRECISIONS)}"),
    "hierarchical": (lambda v: isinstance(v, bool), "must be true or false"),
    "local_route": (lambda v: isinstance(v, bool), "must be true or false"),
    **RECOVERY_CHECKS,
    "mode1": (lambda v: v in MODE1_USES, f"must be one of {MODE1_USES}"),
    "cem_elite_fraction": (lambda v: 0 < v <= 1, "must be in (0, 1]"),
    "cem_momentum": (lambda v: 0 <= v < 1, "must be in [0, 1)"),
    "cem_min_std_fraction": (lambda v: 0 <= v <= 1, "must be in [0, 1]"),
}


@functools.cache
def keep_freed_memory() -> None:
    """Stop glibc from handing the planner's large freed blocks back to the OS after every step.

    Each step allocates and frees the same ~10 MB of rollouts and MLP activations; by default glibc unmaps
    or trims them and the next step page-faults them in again, ~15% of a 1024 x 16 MPPI step measured here.
    Process-wide and once; the cost is that the process keeps its peak heap. A no-op off glibc.
    """
    if not sys.platform.startswith("linux"):
        return
    try:
        libc = ctypes.CDLL("libc.so.6")
    except OSError:
        return
    m_trim_threshold, m_mmap_threshold = -1, -3  # from malloc.h
    libc.mallopt(m_mmap_threshold, 32 << 20)  # glibc's maximum: blocks up to 32 MB come from the heap
    libc.mallopt(m_trim_threshold, 1 << 30)


def make_planner(p: Mapping[str, Any], dynamics: Callable, cost: Callable, high: Sequence[float], z_dim: int,
                 seed: int | None) -> Planner:
    """The planner named by p["planner"], set up from p (named as DEFAULTS) for symmetric bounds +-high.

    Latent draws need a model with a latent (z_dim > 0); without one every draw would be the same rollout.
    """
    name = p["planner"]
    common = dict(num_samples=int(p["num_samples"]), horizon=int(p["horizon"]),
                  latent_draws=int(p["latent_draws"]) if z_dim else 0, latent_dim=z_dim, risk=p["risk"],
                  seed=seed)
    steps, lr = int(p["gradient_steps"]), float(p["gradient_lr"])
    if name.endswith("_gradient"):
        common.update(refine_steps=steps, refine_lr=lr)
    args = (dynamics, cost, [-x for x in high], list(high),
            (float(p["noise_sigma_linear"]), float(p["noise_sigma_angular"])))
    if name.startswith("mppi"):
        return MPPI(*args, temperature=float(p["temperature"]), iterations=int(p["iterations"]), **common)
    if name.startswith("cem"):
        return CEM(*args, iterations=int(p["iterations"]), elite_fraction=float(p["cem_elite_fraction"]),
                   momentum=float(p["cem_momentum"]), min_std_fraction=float(p["cem_min_std_fraction"]), **common)
    return Gradient(*args, steps=steps, lr=lr, **common)


# Stops at the comfort ramp (nothing to do, or a goal given up stuck); any other reason brakes at the safe-stop rate.
CALM_STOPS = ("no_goal", "reached", "failed")


@dataclass
class PolicyStep:
    command: np.ndarray  # [2] (v, w) after the limiter: the only thing to send to the base
    raw_command: np.ndarray  # [2] what the planner asked for
    status: str  # ok | no_goal | reached | invalid_state | invalid_plan | recovery | failed (given up: stuck)
    plan_poses: np.ndarray = field(default_factory=lambda: np.zeros((0, 3)))  # [T,3] probe poses of the plan
    cost_terms: dict[str, float] = field(default_factory=dict)  # weighted cost of the chosen plan per term
    plan_ms: float = 0.0
    source: str = "mode2"  # who chose the command: mode2 | mode1 (alone, or Mode-2 missed its deadline) | search
                           # (turning in place to find an image goal) | recovery | align (turning to the goal's yaw)
    subgoal: np.ndarray | None = None  # [2] the low level's target when the high level runs
    route: np.ndarray = field(default_factory=lambda: np.zeros((0, 2)))  # [S,2] the remaining subgoal route
    obstacles: np.ndarray = field(default_factory=lambda: np.zeros((0, 2)))  # [P,2] perceived obstacle points
    local_route: np.ndarray = field(default_factory=lambda: np.zeros((0, 2)))  # [K,2] the route around them
    recovery: str = ""  # a recovery's start ("<behaviour> #n (why ...)"), the behaviour running, or why it failed


class MpcPolicy:
    """act(state) -> a limited (v, w) toward the goal set with set_goal; with a high level, via its subgoals."""

    def __init__(self, model: WorldModel | OrtRolloutModel, objective: Objective, limiter: CommandLimiter, *,
                 planner_settings: Mapping[str, Any], goal_tolerance: float, seed: int | None = None,
                 high_level: SubgoalPlanner | None = None, mode1: Mode1Policy | None = None,
                 mode1_use: str = "warm_start", plan_deadline: float = 0.0, critic: Critic | None = None,
                 image_goal_tolerance: float = 0.02, obstacle_memory: int = 30, obstacle_scan_range: float = 0.0,
                 local_route: bool = False,
                 homing: GoalHoming | None = None, search_rate: float = 1.0, image_goal_reach: float = 0.12,
                 recovery: Recovery | None = None, yaw_goal_tolerance: float = 0.25) -> None:
        """planner_settings: named as DEFAULTS (see make_planner); the bounds are the limiter's velocities.
        mode1_use and plan_deadline as DEFAULTS' mode1 and plan_deadline (both ignored without a mode1).
        homing: image goals are searched for and driven to as positions (else: the GoalEmbedding divergence),
        reached within image_goal_reach of where they are placed."""
        keep_freed_memory()
        self.model, self.objective, self.limiter = model, objective, limiter
        self.goal_tolerance, self.yaw_goal_tolerance = goal_tolerance, yaw_goal_tolerance
        self.high_level = high_level
        self.critic = critic
        self.mode1, self.mode1_use, self.plan_deadline = mode1, mode1_use, plan_deadline
        self.fallbacks = 0  # Mode-2 steps that missed the deadline (Mode-1 commanded instead)
        self.goal: Tensor | None = None
        self.goal_yaw: float | None = None  # the pose goal's final heading (rad), if it has one
        self._at_goal = False  # the goal's position was reached: only its yaw is left (kept while turning)
        self.goal_features: Tensor | None = None
        self.image_goal_tolerance = image_goal_tolerance
        self.homing, self.search_rate, self.image_goal_reach = homing, search_rate, image_goal_reach
        cfg = model.cfg
        self._ctx = CostContext(pose_fn=model.pose, clearance_fn=model.clearance, critic_fn=critic)
        self.planner = make_planner(planner_settings, model.next, self._cost, limiter.max_velocity.tolist(),
                                    model.cfg.z_dim, seed)
        self.memory = ObstacleMemory(sector_edges(cfg.range_fov, cfg.range_sectors), cfg.range_cap, obstacle_memory,
                                     scan_range=obstacle_scan_range)
        obstacles_term = objective.terms.get("obstacles", PerceivedObstacles())
        self._rim = obstacles_term.robot_radius + 0.02  # m: where a bumper contact puts its points
        margin = obstacles_term.margin + obstacles_term.robot_radius
        self._reach = self.planner.horizon * cfg.dt * float(limiter.max_velocity[0]) + margin + 0.1  # m
        self.router = LocalRouter(margin, footprint=self._rim) if local_route else None
        self.recovery = recovery  # None: the planner alone, however long it sits still

    @classmethod
    def from_config(cls, model: WorldModel, params: Mapping[str, Any], seed: int | None = None,
                    roadmap: Roadmap | None = None, mode1: Mode1Policy | None = None,
                    critic: Critic | None = None, onnx: OrtWorldModel | None = None,
                    locator: GoalLocator | None = None) -> MpcPolicy:
        """Build from a flat dict named as DEFAULTS (e.g. actor_node's ROS parameters; other keys are ignored).

        `roadmap` is needed when p["hierarchical"], `mode1` when p["mode1"] != "none", `critic` when
        p["weight_critic"] > 0 (the caller loads them: where they live is the caller's concern); with a
        `locator`, image goals are homed on (core/image_goal.py). With `onnx`
        (this model's exported graphs) every rollout step and clearance runs on onnxruntime: MPPI or CEM only.
        Raises ValueError for a guardrail weight below its floor, a limit that is not > 0, a setting outside
        its CHECKS range, a needed roadmap or Mode-1 missing, or a gradient planner on onnxruntime;
        OnnxModelError for graphs exported from another model.
        """
        p = {**DEFAULTS, **{k: v for k, v in params.items() if k in DEFAULTS}}
        for name, (check, requirement) in CHECKS.items():
            if not check(p[name]):
                raise ValueError(f"{name}={p[name]!r} {requirement}")
        problem = joint_problem(p)
        if problem:
            raise ValueError(problem)
        max_v, max_w = float(p["max_linear_velocity"]), float(p["max_angular_velocity"])
        soft = (SOFT_SPEED_FRACTION * max_v, SOFT_SPEED_FRACTION * max_w)
        objective = Objective([GoalDistance(), GoalEmbedding(), Heading(), Collision(),
                               PerceivedObstacles(margin=float(p["obstacle_margin"])),
                               Speed(soft_limits=soft), Backward(), Acceleration(), Energy(), CriticCost()])
        objective.set_weights({k.removeprefix("weight_"): float(v) for k, v in p.items() if k.startswith("weight_")})
        limiter = CommandLimiter(max_v, max_w, float(p["max_linear_acceleration"]),
                                 float(p["max_angular_acceleration"]),
                                 stop_accel=(float(p["safe_stop_deceleration"]),
                                             float(p["safe_stop_angular_deceleration"])))
        high_level = None
        if p["hierarchical"]:
            if roadmap is None:
                raise ValueError("hierarchical=true needs a roadmap (`ojepa roadmap`), or set hierarchical=false")
            high_level = SubgoalPlanner(roadmap, float(p["subgoal_lookahead"]), int(p["subgoal_period"]))
        if p["mode1"] != "none" and mode1 is None:
            raise ValueError(f"mode1={p['mode1']} needs a Mode-1 policy (`ojepa distill`), or set mode1=none")
        if float(p["weight_critic"]) > 0 and critic is None:
            raise ValueError("weight_critic > 0 needs a critic (`ojepa critic`), or set weight_critic=0")
        if onnx is not None:  # the policy plans, reads poses and checks plans with this stand-in or copy
            if p["planner"] not in GRADIENT_FREE or p["precision"] != "float32":
                raise ValueError(f"planner={p['planner']}, precision={p['precision']} need torch; on onnxruntime "
                                 f"the planner must be one of {GRADIENT_FREE} at float32")
            model = OrtRolloutModel(model, onnx)
        elif p["precision"] != "float32":
            model = model.with_rollout_dtype(PRECISIONS[p["precision"]])
        return cls(model, objective, limiter, planner_settings=p, goal_tolerance=float(p["goal_tolerance"]),
                   yaw_goal_tolerance=float(p["yaw_goal_tolerance"]),
                   seed=seed, high_level=high_level, mode1=mode1 if p["mode1"] != "none" else None,
                   mode1_use=p["mode1"], plan_deadline=float(p["plan_deadline"]), critic=critic,
                   image_goal_tolerance=float(p["image_goal_tolerance"]), obstacle_memory=int(p["obstacle_memory"]),
                   obstacle_scan_range=float(p["obstacle_scan_range"]),
                   local_route=bool(p["local_route"]), search_rate=float(p["image_goal_search_rate"]),
                   image_goal_reach=float(p["image_goal_reach"]),
                   homing=None if locator is None else GoalHoming(
                       locator, float(p["image_goal_confidence"]),
                       matcher=GoalMatcher(sector_edges(model.cfg.range_fov, model.cfg.range_sectors),
                                           model.cfg.range_cap) if p["image_goal_match"] else None),
                   recovery=Recovery(RecoveryConfig.from_params(p, PerceivedObstacles().robot_radius))
                   if p["recovery_enabled"] else None)

    @classmethod
    def from_files(cls, model: WorldModel, model_path: str | Path, params: Mapping[str, Any],
                   seed: int | None = None, onnx: OrtWorldModel | None = None,
                   mode1: Mode1Policy | None = None) -> MpcPolicy:
        """from_config, loading the parts the settings ask for: the roadmap (hierarchical), the Mode-1 policy
        (mode1 != none) and the critic (weight_critic > 0), each from its *_path or else beside the model file,
        and the goal locator from locator_path, or beside the model file where one is (without it, image goals
        fall back to the features' divergence). Raises RoadmapFileError / ModelFileError naming the file that
        is missing or unusable. `onnx`: the
        exported graphs of this model, for rollouts on onnxruntime (see from_config). `mode1`: a policy to use
        instead of the file's (`ojepa distill` drives a student it has not written yet)."""
        p = {**DEFAULTS, **params}
        roadmap = critic = locator = None
        if p["hierarchical"]:
            roadmap = load_roadmap(p.get("roadmap_path") or roadmap_beside(model_path), model.cfg.level2_dim)
        if p["mode1"] != "none" and mode1 is None:
            high = (float(p["max_linear_velocity"]), float(p["max_angular_velocity"]))
            mode1 = load_mode1(p.get("mode1_path") or mode1_beside(model_path), model.cfg.embed_dim, high)
        if float(p["weight_critic"]) > 0:
            critic = load_critic(p.get("critic_path") or critic_beside(model_path), model.cfg.embed_dim)
        beside = LOCATOR_FILE.beside(model_path)
        if p.get("locator_path") or beside.exists():
            locator = LOCATOR_FILE.load(p.get("locator_path") or beside, feature_dim=model.cfg.feature_dim)
        return cls.from_config(model, p, seed=seed, roadmap=roadmap, mode1=mode1, critic=critic, onnx=onnx,
                               locator=locator)

    def set_goal(self, goal_xy: Sequence[float], yaw: float | None = None) -> None:
        """Drive to goal_xy (odometry frame); with a `yaw` (rad), turn to it there (core/final_heading.py)."""
        goal = torch.as_tensor(goal_xy, dtype=torch.float32).reshape(2)
        if not torch.isfinite(goal).all() or (yaw is not None and not np.isfinite(yaw)):
            raise ValueError(f"goal must be finite, got {goal.tolist()} yaw {yaw}")
        if yaw != self.goal_yaw:
            self._at_goal = False
        self.goal_yaw = None if yaw is None else float(yaw)
        if self.goal is None or not torch.equal(goal, self.goal):
            self._at_goal = False
            self.planner.reset()  # a plan toward the old goal is a poor warm start
            if self.high_level is not None:
                self.high_level.reset()
            if self.recovery is not None:
                self.recovery.reset()
        self.goal, self.goal_features = goal, None

    def set_goal_image(self, goal_state: Tensor) -> None:
        """The goal as what the camera should see there: goal_state [D] is the encoded goal image (its odometry
        part is ignored). The task objective becomes the divergence of the imagined image features from it
        (GoalEmbedding); reached when the current features are within image_goal_tolerance of it. With a goal
        locator, the robot instead looks around for the goal and drives to where it was taken (GoalHoming)."""
        features = self.model.features(torch.as_tensor(goal_state, dtype=torch.float32)).reshape(-1)
        if features.shape != (self.model.cfg.feature_dim,) or not torch.isfinite(features).all():
            raise ValueError(f"goal image state must be {self.model.cfg.embed_dim} finite numbers")
        self.clear_goal()
        self.goal_features = features
        if self.homing is not None:
            goal_state = torch.as_tensor(goal_state, dtype=torch.float32).reshape(-1)
            self.homing.start(features, self.model.ranges(goal_state).cpu().numpy())

    def clear_goal(self) -> None:
        self.goal, self.goal_yaw, self.goal_features, self._at_goal = None, None, None, False
        self.planner.reset()
        if self.high_level is not None:
            self.high_level.reset()
        if self.recovery is not None:
            self.recovery.reset()

    def reset(self) -> None:
        """A new episode: no goal, no warm start, no remembered obstacles, the limiter starts from standstill."""
        self.clear_goal()
        self.limiter.reset()
        self.memory.reset()
        if self.router is not None:
            self.router.reset()

    def image_divergence(self, states: Tensor) -> Tensor:
        """Mean squared difference [...] of the image features of states [..., D] from the goal image's."""
        return (self.model.features(states) - self.goal_features.to(states)).square().mean(-1)

    def _cost(self, states: Tensor, actions: Tensor) -> Tensor:
        return self.objective.total(states, actions, self._ctx)

    def stop(self, status: str, dt: float) -> PolicyStep:
        """A stop: at the comfort ramp when there is nothing to do (no_goal, reached), at the safety stop's
        own deceleration (CommandLimiter.brake) for everything else (stale inputs, an invalid state or plan)."""
        self.planner.reset()
        calm = status in CALM_STOPS
        command = self.limiter.limit(np.zeros(2), dt) if calm else self.limiter.brake(dt)
        return PolicyStep(command=command, raw_command=np.zeros(2), status=status)

    @torch.no_grad()
    def act(self, state: Tensor, current_velocity: Sequence[float], odom_xy: Sequence[float] | None = None,
            dt: float | None = None, contact: bool = False, scan: np.ndarray | None = None,
            heading: float | None = None) -> PolicyStep:
        """Plan from `state` [D]; `current_velocity` (v, w) is what the base does now (the acceleration
        term's reference); `odom_xy` ends the task within goal_tolerance, and `heading` (odometry yaw, rad; None:
        the state's) a goal's yaw within yaw_goal_tolerance; `dt` defaults to the model's;
        `contact`: the bumper reports touching something now; `scan`: [N, 2] range-scan points in the base frame
        (None: no fresh scan): it clears remembered obstacle points it sees through, adds its near returns
        (ObstacleMemory.add_scan), and the recovery's back-up checks the rear against it."""
        dt = self.model.cfg.dt if dt is None else dt
        if self.goal is None and self.goal_features is None:
            return self.stop("no_goal", dt)
        if self.goal is not None and odom_xy is not None and (
                self._at_goal or float(np.hypot(*(np.asarray(odom_xy) - self.goal.numpy()))) <= self.goal_tolerance):
            return self._final_heading(state, heading, dt)
        if not torch.isfinite(state).all():
            return self.stop("invalid_state", dt)
        state_pose = self.model.pose(state)  # the odometry part: where the robot is, in the odometry frame
        pose = state_pose.cpu().numpy()
        goal_features = self.goal_features
        target, subgoal, route = self.goal, None, np.zeros((0, 2))
        if goal_features is not None and self.homing is not None:  # an image goal, found and driven to as a place
            found = self.homing.update(pose, self.model.features(state), scan)
            if found is None:
                return PolicyStep(command=self.limiter.limit(np.array([0.0, self.search_rate]), dt),
                                  raw_command=np.array([0.0, self.search_rate]), status="ok", source="search")
            here = np.asarray(odom_xy, dtype=float) if odom_xy is not None else pose[:2]
            if float(np.hypot(*(here - found))) <= self.image_goal_reach:
                return self.stop("reached", dt)
            target, goal_features = torch.as_tensor(found, dtype=torch.float32), None
        elif goal_features is not None and float(self.image_divergence(state)) <= self.image_goal_tolerance:
            return self.stop("reached", dt)
        prev = torch.as_tensor(np.asarray(current_velocity, dtype=np.float32)).reshape(2)
        prev = torch.nan_to_num(prev, nan=0.0, posinf=0.0, neginf=0.0)
        if self.high_level is not None and self.goal is not None:
            here = np.asarray(odom_xy, dtype=float) if odom_xy is not None else pose[:2]
            subgoal = self.high_level.subgoal(here, self.goal.numpy())
            target, route = torch.as_tensor(subgoal, dtype=torch.float32), self.high_level.route.copy()
        self.memory.add(pose, self.model.ranges(state).cpu().numpy())
        self.memory.add_contact(pose, self._rim if contact else 0.0, forward=float(self.limiter.last[0]) >= 0)
        self.memory.add_scan(pose, scan)
        points = self.memory.points()
        # -- recovery hook (core/recovery.py): no progress, or a contact while driving: a bounded behaviour drives --
        if self.recovery is not None and self.goal is not None:
            recovering = self.recovery.step(Surroundings(pose, points, scan, contact), self.goal.numpy(),
                                            self.limiter.last, dt)
            if recovering is not None:
                return self._recovery_step(recovering, dt)
        # -- end of the recovery hook --
        local_route = np.zeros((0, 2))
        if self.router is not None and target is not None:
            target = torch.as_tensor(self.router.subgoal(pose[:2], target.cpu().numpy(), points), dtype=torch.float32)
            local_route = self.router.route.copy()
        points = points[np.hypot(*(points - pose[:2]).T) <= self._reach]  # only what the horizon can touch
        obstacles = torch.as_tensor(points, dtype=torch.float32, device=state.device)
        on_device = None if target is None else target.to(state.device)
        ctx = CostContext(self.model.pose, self.model.clearance, on_device, prev.to(state.device), self.critic,
                          obstacles, self.model.features, goal_features)
        proposal = None
        if self.mode1 is not None and target is not None:  # Mode-1 was distilled toward positions, not images
            proposal = self.mode1(state[None], relative_target(state_pose, target.to(state.device))[None])[0]
            horizon = self.planner.horizon  # a Mode-1 distilled for another horizon: cut, or hold its last action
            proposal = torch.cat([proposal[:horizon], proposal[-1:].expand(max(0, horizon - len(proposal)), -1)])
        start = time.perf_counter()
        source, plan_ms = "mode2", 0.0
        if self.mode1_use == "alone" and proposal is not None:
            raw, source = proposal[0].cpu(), "mode1"
        else:
            self._ctx = ctx
            deadline = start + self.plan_deadline if proposal is not None and self.plan_deadline > 0 else None
            try:
                raw = self.planner.command(state, proposal, deadline).cpu()
            except DeadlineMissed:
                self.fallbacks += 1
                raw, source = proposal[0].cpu(), "mode1"
        if source == "mode2":
            plan_ms = (time.perf_counter() - start) * 1e3
            plan, states = self.planner.plan, self.planner.last_states
        else:
            plan, states = proposal, self.model.rollout(state[None], proposal[None])[0]
        if not torch.isfinite(raw).all() or not torch.isfinite(states).all():
            return self.stop("invalid_plan", dt)
        terms = self.objective.breakdown(states[None], plan[None], ctx)
        return PolicyStep(command=self.limiter.limit(raw.numpy(), dt), raw_command=raw.numpy().astype(float),
                          status="ok", plan_poses=self.model.pose(states).cpu().numpy().astype(float),
                          cost_terms={k: float(v[0]) for k, v in terms.items()}, plan_ms=plan_ms, source=source,
                          subgoal=subgoal, route=route, obstacles=obstacles.cpu().numpy().astype(float),
                          local_route=local_route)

    def _final_heading(self, state: Tensor, heading: float | None, dt: float) -> PolicyStep:
        """At the goal's position: reached, or (the goal has a yaw not yet faced) a turn in place toward it."""
        if self.goal_yaw is None:
            return self.stop("reached", dt)
        self._at_goal = True
        if heading is None:
            heading = float(self.model.pose(state)[2])
        if not np.isfinite(heading):
            return self.stop("invalid_state", dt)
        rate = turn_rate(heading, self.goal_yaw, self.yaw_goal_tolerance, float(self.limiter.max_velocity[1]))
        if rate is None:
            return self.stop("reached", dt)
        self.planner.reset()
        command = np.array([0.0, rate])
        return PolicyStep(command=self.limiter.limit(command, dt), raw_command=command, status="ok", source="align")

    def _recovery_step(self, step: RecoveryStep, dt: float) -> PolicyStep:
        """The recovery's request through the limiter, or the stop of a goal given up; Wait's start forgets the
        perceived obstacle points, so the camera perceives them afresh."""
        if step.clear_obstacles:
            self.memory.reset()
        if step.failed:
            stop = self.stop("failed", dt)
            stop.recovery = step.failed
            return stop
        self.planner.reset()  # the plan from before the recovery is no warm start from where it leaves the robot
        return PolicyStep(command=self.limiter.limit(step.command, dt), raw_command=step.command.astype(float),
                          status="recovery", source="recovery", recovery=step.started or step.behaviour)
