"""Cost terms over predicted trajectories, Nav2-MPPI-critic style, and the Objective that sums them.

Each term scores a batch of rollouts: states [N,T,D] and actions [N,T,A] -> raw cost [N] (>= 0,
unweighted). The Objective weights them as `weight * raw ** power`. Terms marked `guardrail` are the
intrinsic cost (collision, speed, acceleration, energy): a task may raise or lower their weight but
never below `floor` = FLOOR_FRACTION x the term's default weight, so no task can switch safety off.
Running costs are means over the horizon so a weight keeps its meaning when the horizon changes.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Callable, Mapping, Sequence

import torch
from torch import Tensor

FLOOR_FRACTION = 0.1


@dataclass(frozen=True)
class CostContext:
    """What the terms need besides the rollout: the task goal, the last command, and the state probes."""

    pose_fn: Callable[[Tensor], Tensor]  # states [...,D] -> [...,3] (x, y, yaw)
    clearance_fn: Callable[[Tensor], Tensor] | None = None  # states [...,D] -> [...] metres
    goal_xy: Tensor | None = None  # [2]
    prev_action: Tensor | None = None  # [A], the command being executed now
    critic_fn: Callable[[Tensor], Tensor] | None = None  # states [...,D] -> predicted future intrinsic cost [...]
    obstacles: Tensor | None = None  # [P, 2] perceived obstacle points in the odometry frame (core/obstacle_memory.py)
    features_fn: Callable[[Tensor], Tensor] | None = None  # states [...,D] -> image features [...,F]
    goal_features: Tensor | None = None  # [F] the goal image's features (a goal given as an image)


class CostTerm:
    """One critic. Subclasses set `name`, `default_weight`, `guardrail` and implement `__call__`."""

    name: str = ""
    default_weight: float = 1.0
    guardrail: bool = False

    def __init__(self, weight: float | None = None, power: float = 1.0) -> None:
        self.weight = self.default_weight if weight is None else float(weight)
        self.power = float(power)

    @property
    def floor(self) -> float:
        """The smallest weight a task may set: 0 for task terms, a fraction of the default for guardrails."""
        return FLOOR_FRACTION * self.default_weight if self.guardrail else 0.0

    def __call__(self, states: Tensor, actions: Tensor, ctx: CostContext) -> Tensor:
        raise NotImplementedError


class GoalDistance(CostTerm):
    """Task objective: probe-pose distance to the goal, mean over the horizon plus a stronger terminal term."""

    name = "goal_distance"

    def __init__(self, weight: float | None = None, power: float = 1.0, terminal_weight: float = 2.0) -> None:
        super().__init__(weight, power)
        self.terminal_weight = terminal_weight

    def __call__(self, states: Tensor, actions: Tensor, ctx: CostContext) -> Tensor:
        if ctx.goal_xy is None:
            return states.new_zeros(states.shape[0])
        dist = torch.linalg.vector_norm(ctx.pose_fn(states)[..., :2] - ctx.goal_xy, dim=-1)  # [N,T]
        return dist.mean(dim=1) + self.terminal_weight * dist[:, -1]


class GoalEmbedding(CostTerm):
    """Task objective for a goal given as an image: the mean squared divergence of the imagined states' image
    features from the goal image's, averaged over the horizon plus a stronger terminal term (summing over the
    horizon, not scoring the last state alone, is what EB-JEPA's planning ablation favours)."""

    name = "goal_embedding"
    default_weight = 20.0

    def __init__(self, weight: float | None = None, power: float = 1.0, terminal_weight: float = 2.0) -> None:
        super().__init__(weight, power)
        self.terminal_weight = terminal_weight

    def __call__(self, states: Tensor, actions: Tensor, ctx: CostContext) -> Tensor:
        if ctx.goal_features is None or ctx.features_fn is None:
            return states.new_zeros(states.shape[0])
        divergence = (ctx.features_fn(states) - ctx.goal_features.to(states)).square().mean(-1)  # [N,T]
        return divergence.mean(dim=1) + self.terminal_weight * divergence[:, -1]


class Heading(CostTerm):
    """Task objective: facing away from the goal, (1 - cos angle) / 2 over the horizon's states that are more
    than `near` from it, averaged; plus terminal_weight x how far the last state faces beyond 90° from it
    (0 at 90°, 1 at 180°). The camera looks forward, so a robot facing its goal sees the way there; a 1.6 s
    horizon cannot see that turning around (2 s at 1.5 rad/s) pays, this term says so (Nav2's PathAngle).
    The terminal part makes a turn in place worth starting: averaged alone, a turn's first steps still face
    away, and with the subgoal behind the robot (measured) MPPI dithered for 18 s between plans within 0.06
    of each other. It is free within 90°, as Nav2's critic is within its angle, so detours stay cheap."""

    name = "heading"
    default_weight = 0.5

    def __init__(self, weight: float | None = None, power: float = 1.0, near: float = 0.5,
                 terminal_weight: float = 2.0) -> None:
        super().__init__(weight, power)
        self.near, self.terminal_weight = near, terminal_weight

    def __call__(self, states: Tensor, actions: Tensor, ctx: CostContext) -> Tensor:
        if ctx.goal_xy is None:
            return states.new_zeros(states.shape[0])
        pose = ctx.pose_fn(states)  # [N,T,3]
        to_goal = ctx.goal_xy - pose[..., :2]
        far = (torch.linalg.vector_norm(to_goal, dim=-1) > self.near).to(states.dtype)
        away = (1.0 - torch.cos(torch.atan2(to_goal[..., 1], to_goal[..., 0]) - pose[..., 2])) / 2 * far  # [N,T]
        return away.mean(dim=1) + self.terminal_weight * 2.0 * torch.relu(away[:, -1] - 0.5)


class Backward(CostTerm):
    """Guardrail: squared reverse speed, averaged over the horizon. The camera faces forward, so backing up is
    driving blind (Nav2's PreferForward); measured here, MPPI backed into door jambs it could not see."""

    name = "backward"
    default_weight = 20.0
    guardrail = True

    def __call__(self, states: Tensor, actions: Tensor, ctx: CostContext) -> Tensor:
        return torch.relu(-actions[..., 0]).square().mean(dim=1)


class Collision(CostTerm):
    """Guardrail: predicted clearance below `margin`, as (intrusion / margin)^2 summed over the horizon.

    Summed, not averaged: one predicted contact (clearance 0) costs `weight` whatever the horizon.
    """

    name = "collision"
    default_weight = 50.0
    guardrail = True

    def __init__(self, weight: float | None = None, power: float = 1.0, margin: float = 0.15) -> None:
        super().__init__(weight, power)
        self.margin = margin

    def __call__(self, states: Tensor, actions: Tensor, ctx: CostContext) -> Tensor:
        if ctx.clearance_fn is None:
            return states.new_zeros(states.shape[0])
        intrusion = torch.relu(self.margin - ctx.clearance_fn(states)) / self.margin  # [N,T]
        return intrusion.square().sum(dim=1)


class PerceivedObstacles(CostTerm):
    """Guardrail: the imagined path's distance to what the camera showed in the way (ObstacleMemory's points),
    below `margin` from the robot's rim, as (intrusion / margin)^2 summed over the horizon, like Collision.

    The points come from the world model's range read-out of the current (and recent) image features; the path
    from its predicted odometry part. Both share the odometry frame, so an offset in odometry moves both."""

    name = "obstacles"
    default_weight = 50.0
    guardrail = True

    def __init__(self, weight: float | None = None, power: float = 1.0, margin: float = 0.15,
                 robot_radius: float = 0.18) -> None:
        super().__init__(weight, power)
        self.margin, self.robot_radius = margin, robot_radius

    def __call__(self, states: Tensor, actions: Tensor, ctx: CostContext) -> Tensor:
        if ctx.obstacles is None or not len(ctx.obstacles):
            return states.new_zeros(states.shape[0])
        xy = ctx.pose_fn(states)[..., :2]  # [N,T,2]
        gap = torch.cdist(xy.flatten(0, 1), ctx.obstacles.to(xy)).amin(-1).view(xy.shape[:2]) - self.robot_radius
        intrusion = torch.relu(self.margin - gap) / self.margin
        return intrusion.square().sum(dim=1)


class Speed(CostTerm):
    """Guardrail: squared excess of |v| and |w| over soft limits (below the hard limits the planner clamps to)."""

    name = "speed"
    guardrail = True

    def __init__(self, weight: float | None = None, power: float = 1.0,
                 soft_limits: Sequence[float] = (0.4, 1.2)) -> None:
        super().__init__(weight, power)
        self.soft_limits = torch.as_tensor(soft_limits, dtype=torch.float32)

    def __call__(self, states: Tensor, actions: Tensor, ctx: CostContext) -> Tensor:
        excess = torch.relu(actions.abs() - self.soft_limits.to(actions))
        return excess.square().sum(dim=-1).mean(dim=1)


class Acceleration(CostTerm):
    """Guardrail: squared change between consecutive actions, the first against the command running now."""

    name = "acceleration"
    default_weight = 0.1  # 0.5 made MPPI's noisy samples cost more than detours: slow, hesitant plans
    guardrail = True

    def __call__(self, states: Tensor, actions: Tensor, ctx: CostContext) -> Tensor:
        prev = actions[:, :1] if ctx.prev_action is None else ctx.prev_action.to(actions).expand_as(actions[:, :1])
        delta = torch.diff(actions, dim=1, prepend=prev)
        return delta.square().sum(dim=-1).mean(dim=1)


class Energy(CostTerm):
    """Guardrail: squared action magnitude, a small preference for doing less."""

    name = "energy"
    default_weight = 0.05
    guardrail = True

    def __call__(self, states: Tensor, actions: Tensor, ctx: CostContext) -> Tensor:
        return actions.square().sum(dim=-1).mean(dim=1)


class CriticCost(CostTerm):
    """Trainable intrinsic cost (core/critic.py) as the terminal cost: what the critic expects to follow the
    plan's last state, beyond the horizon. Not a guardrail: it is learned, so a task may turn it down or off."""

    name = "critic"

    def __call__(self, states: Tensor, actions: Tensor, ctx: CostContext) -> Tensor:
        if ctx.critic_fn is None:
            return states.new_zeros(states.shape[0])
        return ctx.critic_fn(states[:, -1])


def default_terms() -> list[CostTerm]:
    return [GoalDistance(), GoalEmbedding(), Heading(), Collision(), PerceivedObstacles(), Speed(), Backward(),
            Acceleration(), Energy(), CriticCost()]


class Objective:
    """The weighted sum of cost terms; the planner minimises `total`, a node reports `breakdown`."""

    def __init__(self, terms: Sequence[CostTerm] | None = None) -> None:
        terms = default_terms() if terms is None else list(terms)
        self.terms = {t.name: t for t in terms}
        if len(self.terms) != len(terms):
            raise ValueError(f"duplicate cost term names in {[t.name for t in terms]}")

    @property
    def weights(self) -> dict[str, float]:
        return {name: t.weight for name, t in self.terms.items()}

    def set_weights(self, weights: Mapping[str, float]) -> None:
        """Apply all weights or none; refuses unknown names, negative/non-finite values, guardrails below floor."""
        for name, value in weights.items():
            term = self.terms.get(name)
            if term is None:
                raise ValueError(f"unknown cost term {name!r}; known: {sorted(self.terms)}")
            if not math.isfinite(value) or value < 0:
                raise ValueError(f"weight of {name!r} must be a finite number >= 0, got {value!r}")
            if value < term.floor:
                raise ValueError(f"{name!r} is a guardrail: its weight cannot go below {term.floor:g} "
                                 f"({FLOOR_FRACTION:g} x default {term.default_weight:g}), got {value:g}")
        for name, value in weights.items():
            self.terms[name].weight = float(value)

    def breakdown(self, states: Tensor, actions: Tensor, ctx: CostContext) -> dict[str, Tensor]:
        """Weighted cost of every term, name -> [N]; terms with weight 0 are not evaluated."""
        zeros = states.new_zeros(states.shape[0])
        return {name: t.weight * t(states, actions, ctx).pow(t.power) if t.weight > 0 else zeros
                for name, t in self.terms.items()}

    def total(self, states: Tensor, actions: Tensor, ctx: CostContext) -> Tensor:
        return torch.stack(list(self.breakdown(states, actions, ctx).values())).sum(dim=0)
