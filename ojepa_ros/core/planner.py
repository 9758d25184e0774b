"""Sampling MPC over plain callables (pytorch_mppi style): nothing about the robot leaks into the optimiser.

dynamics(state [N,D], action [N,A]) -> next state [N,D]
cost(states [N,T,D], actions [N,T,A]) -> cost [N]
"""

from __future__ import annotations

from typing import Callable, Protocol, Sequence

import torch
from torch import Tensor

Dynamics = Callable[[Tensor, Tensor], Tensor]
Cost = Callable[[Tensor, Tensor], Tensor]


class Planner(Protocol):
    plan: Tensor  # [T,A] current nominal plan
    last_states: Tensor | None  # [T,D] rollout of the nominal plan
    last_samples: Tensor | None  # [N,T,D] rollouts of the last iteration's samples
    last_costs: Tensor | None  # [N]

    def command(self, state: Tensor) -> Tensor: ...

    def reset(self) -> None: ...


def rollout(dynamics: Dynamics, state: Tensor, actions: Tensor) -> Tensor:
    """States after each action: state [N,D], actions [N,T,A] -> [N,T,D]."""
    states = []
    for t in range(actions.shape[1]):
        state = dynamics(state, actions[:, t])
        states.append(state)
    return torch.stack(states, dim=1)


class MPPI:
    """Model Predictive Path Integral control (Williams et al. 2017), batched and warm-started.

    Samples are clamped to the action bounds before the rollout, so the model only sees (and the
    weighted mean only mixes) feasible sequences; sample 0 is always the noise-free nominal plan.
    """

    def __init__(self, dynamics: Dynamics, cost: Cost, action_low: Sequence[float], action_high: Sequence[float],
                 noise_sigma: Sequence[float], num_samples: int = 512, horizon: int = 16,
                 temperature: float = 0.05, iterations: int = 1, seed: int | None = None) -> None:
        if num_samples < 1 or horizon < 1 or iterations < 1 or temperature <= 0:
            raise ValueError("num_samples, horizon and iterations must be >= 1 and temperature > 0")
        self.dynamics, self.cost = dynamics, cost
        self.low = torch.as_tensor(action_low, dtype=torch.float32)
        self.high = torch.as_tensor(action_high, dtype=torch.float32)
        self.sigma = torch.as_tensor(noise_sigma, dtype=torch.float32)
        if not (self.low.shape == self.high.shape == self.sigma.shape) or bool((self.low > self.high).any()):
            raise ValueError("action_low, action_high and noise_sigma need one entry per action dim, low <= high")
        self.num_samples, self.horizon = num_samples, horizon
        self.temperature, self.iterations = temperature, iterations
        self.generator = torch.Generator().manual_seed(seed) if seed is not None else None
        self.reset()

    def reset(self) -> None:
        """Forget the warm start: the nominal plan becomes the mid-point of the bounds (zero for symmetric ones)."""
        self.plan = ((self.low + self.high) / 2).expand(self.horizon, -1).clone()
        self._fresh = True
        self.last_states: Tensor | None = None
        self.last_samples: Tensor | None = None
        self.last_costs: Tensor | None = None

    @torch.no_grad()
    def command(self, state: Tensor) -> Tensor:
        """Optimise the plan from `state` [D] and return its first action [A]."""
        if not self._fresh:  # warm start: the previous plan, one step on, last action repeated
            self.plan = torch.cat([self.plan[1:], self.plan[-1:]])
        self._fresh = False
        state = state.reshape(1, -1)
        starts = state.expand(self.num_samples, -1)
        device = state.device  # the model's: noise is drawn on the CPU (seeded generator) and moved there
        low, high, self.plan = self.low.to(device), self.high.to(device), self.plan.to(device)
        for _ in range(self.iterations):
            noise = torch.randn(self.num_samples, self.horizon, self.plan.shape[1], generator=self.generator)
            noise = (noise * self.sigma).to(device)
            noise[0] = 0.0
            samples = torch.clamp(self.plan + noise, low, high)
            states = rollout(self.dynamics, starts, samples)
            costs = self.cost(states, samples)
            costs = torch.where(torch.isfinite(costs), costs, torch.full_like(costs, float("inf")))
            weights = torch.softmax(-(costs - costs.min()) / self.temperature, dim=0)
            self.plan = torch.einsum("n,nta->ta", weights, samples)
        self.last_samples, self.last_costs = states, costs
        self.last_states = rollout(self.dynamics, state, self.plan[None])[0]
        return self.plan[0].clone()
