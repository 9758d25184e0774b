"""Mode-2 actor: MPPI through the world model, scored by the Objective, filtered by the CommandLimiter.

The policy never lets a command out that did not pass the limiter; a non-finite state or plan, no
goal, or a reached goal all become a stop (ramped at the acceleration limit, see CommandLimiter).
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Any, Mapping, Sequence

import numpy as np
import torch
from torch import Tensor

from ojepa_ros.core.costs import (Acceleration, Collision, CostContext, Energy, GoalDistance, Objective, Speed,
                                  default_terms)
from ojepa_ros.core.planner import MPPI
from ojepa_ros.core.safety import CommandLimiter
from ojepa_ros.core.world_model import WorldModel

# The actor's settings: mirrored one-to-one into config/agent.yaml (actor_node). Units SI.
DEFAULTS: dict[str, float | int] = {
    "horizon": 16,                    # planner steps of the model's dt (0.1 s)
    "num_samples": 512,
    "iterations": 1,
    "temperature": 0.05,              # MPPI lambda, in cost units
    "noise_sigma_linear": 0.25,       # m/s
    "noise_sigma_angular": 0.8,       # rad/s
    "max_linear_velocity": 0.5,       # m/s; planner bounds and limiter
    "max_angular_velocity": 1.5,      # rad/s
    "max_linear_acceleration": 1.0,   # m/s^2; limiter
    "max_angular_acceleration": 3.0,  # rad/s^2
    "goal_tolerance": 0.3,            # m, on odometry
    # weight_<term> of every cost term, from the terms themselves (goal_distance 1, collision 50, speed 1,
    # acceleration 0.1, energy 0.05); guardrail weights cannot go below 0.1 x these defaults.
    **{f"weight_{term.name}": term.default_weight for term in default_terms()},
}
SOFT_SPEED_FRACTION = 0.8  # the Speed guardrail starts charging at this fraction of the hard limits


@dataclass
class PolicyStep:
    command: np.ndarray  # [2] (v, w) after the limiter: the only thing to send to the base
    raw_command: np.ndarray  # [2] what the planner asked for
    status: str  # ok | no_goal | reached | invalid_state | invalid_plan
    plan_poses: np.ndarray = field(default_factory=lambda: np.zeros((0, 3)))  # [T,3] probe poses of the plan
    cost_terms: dict[str, float] = field(default_factory=dict)  # weighted cost of the chosen plan per term
    plan_ms: float = 0.0


class MpcPolicy:
    """act(state) -> a limited (v, w) toward the goal set with set_goal."""

    def __init__(self, model: WorldModel, objective: Objective, limiter: CommandLimiter, *, horizon: int,
                 num_samples: int, iterations: int, temperature: float, noise_sigma: Sequence[float],
                 goal_tolerance: float, seed: int | None = None) -> None:
        self.model, self.objective, self.limiter = model, objective, limiter
        self.goal_tolerance = goal_tolerance
        self.goal: Tensor | None = None
        self._ctx = CostContext(pose_fn=model.pose, clearance_fn=model.clearance)
        high = limiter.max_velocity.tolist()
        self.planner = MPPI(model.next, self._cost, [-x for x in high], high, noise_sigma,
                            num_samples=num_samples, horizon=horizon, temperature=temperature,
                            iterations=iterations, seed=seed)

    @classmethod
    def from_config(cls, model: WorldModel, params: Mapping[str, Any], seed: int | None = None) -> MpcPolicy:
        """Build from a flat dict named as DEFAULTS (e.g. actor_node's ROS parameters; other keys are ignored).

        Raises ValueError for a guardrail weight below its floor or a limit that is not > 0.
        """
        p = {**DEFAULTS, **{k: v for k, v in params.items() if k in DEFAULTS}}
        max_v, max_w = float(p["max_linear_velocity"]), float(p["max_angular_velocity"])
        soft = (SOFT_SPEED_FRACTION * max_v, SOFT_SPEED_FRACTION * max_w)
        objective = Objective([GoalDistance(), Collision(), Speed(soft_limits=soft), Acceleration(), Energy()])
        objective.set_weights({k.removeprefix("weight_"): float(v) for k, v in p.items() if k.startswith("weight_")})
        limiter = CommandLimiter(max_v, max_w, float(p["max_linear_acceleration"]),
                                 float(p["max_angular_acceleration"]))
        return cls(model, objective, limiter, horizon=int(p["horizon"]), num_samples=int(p["num_samples"]),
                   iterations=int(p["iterations"]), temperature=float(p["temperature"]),
                   noise_sigma=(float(p["noise_sigma_linear"]), float(p["noise_sigma_angular"])),
                   goal_tolerance=float(p["goal_tolerance"]), seed=seed)

    def set_goal(self, goal_xy: Sequence[float]) -> None:
        goal = torch.as_tensor(goal_xy, dtype=torch.float32).reshape(2)
        if not torch.isfinite(goal).all():
            raise ValueError(f"goal must be finite, got {goal.tolist()}")
        if self.goal is None or not torch.equal(goal, self.goal):
            self.planner.reset()  # a plan toward the old goal is a poor warm start
        self.goal = goal

    def clear_goal(self) -> None:
        self.goal = None
        self.planner.reset()

    def reset(self) -> None:
        """A new episode: no goal, no warm start, the limiter starts from standstill."""
        self.clear_goal()
        self.limiter.reset()

    def _cost(self, states: Tensor, actions: Tensor) -> Tensor:
        return self.objective.total(states, actions, self._ctx)

    def stop(self, status: str, dt: float) -> PolicyStep:
        self.planner.reset()
        return PolicyStep(command=self.limiter.limit(np.zeros(2), dt), raw_command=np.zeros(2), status=status)

    @torch.no_grad()
    def act(self, state: Tensor, current_velocity: Sequence[float], odom_xy: Sequence[float] | None = None,
            dt: float | None = None) -> PolicyStep:
        """Plan from `state` [D]; `current_velocity` (v, w) is what the base does now (the acceleration
        term's reference); `odom_xy` ends the task within goal_tolerance; `dt` defaults to the model's."""
        dt = self.model.cfg.dt if dt is None else dt
        if self.goal is None:
            return self.stop("no_goal", dt)
        if odom_xy is not None and float(np.hypot(*(np.asarray(odom_xy) - self.goal.numpy()))) <= self.goal_tolerance:
            return self.stop("reached", dt)
        if not torch.isfinite(state).all():
            return self.stop("invalid_state", dt)
        prev = torch.as_tensor(np.asarray(current_velocity, dtype=np.float32)).reshape(2)
        prev = torch.nan_to_num(prev, nan=0.0, posinf=0.0, neginf=0.0)
        self._ctx = CostContext(self.model.pose, self.model.clearance, self.goal.to(state.device),
                                prev.to(state.device))
        start = time.perf_counter()
        raw = self.planner.command(state).cpu()
        plan_ms = (time.perf_counter() - start) * 1e3
        if not torch.isfinite(raw).all() or not torch.isfinite(self.planner.last_states).all():
            return self.stop("invalid_plan", dt)
        plan, states = self.planner.plan, self.planner.last_states
        terms = self.objective.breakdown(states[None], plan[None], self._ctx)
        return PolicyStep(command=self.limiter.limit(raw.numpy(), dt), raw_command=raw.numpy().astype(float),
                          status="ok", plan_poses=self.model.pose(states).cpu().numpy().astype(float),
                          cost_terms={k: float(v[0]) for k, v in terms.items()}, plan_ms=plan_ms)
