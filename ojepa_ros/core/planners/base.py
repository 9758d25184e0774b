"""What every planner shares: bounds, warm start, candidate sampling, latent-draw risk, and gradient refinement."""

from __future__ import annotations

import math
import time
from typing import Callable, Sequence

import torch
from torch import Tensor

from ojepa_ros.core.planners.descent import descend

Dynamics = Callable[..., Tensor]  # (state [N,D], action [N,A]) -> [N,D]; with latent draws (state, action, z [N,Z])
Cost = Callable[[Tensor, Tensor], Tensor]  # (states [N,T,D], actions [N,T,A]) -> [N]
RISKS = ("mean", "worst")


class DeadlineMissed(Exception):
    """Planning passed the deadline given to Planner.command; the plan is left as the next warm start."""


def rollout(dynamics: Dynamics, state: Tensor, actions: Tensor, z: Tensor | None = None,
            deadline: float | None = None) -> Tensor:
    """States after each action: state [N,D] or [1,D] (shared), actions [N,T,A], z [N,T,Z] or None -> [N,T,D].
    Raises DeadlineMissed at a step begun after `deadline` (a time.perf_counter() value)."""
    n, horizon = actions.shape[:2]
    state = state.expand(n, -1)
    states = state.new_empty(n, horizon, state.shape[-1])  # written in place: no per-step list and stack copy
    for t in range(horizon):
        if deadline is not None and time.perf_counter() > deadline:
            raise DeadlineMissed
        state = dynamics(state, actions[:, t]) if z is None else dynamics(state, actions[:, t], z[:, t])
        states[:, t] = state
    return states


class Planner:
    """Base of MPPI, CEM and Gradient: subclasses implement `_optimise`; `command(state)` returns the first action.

    Every candidate an optimiser evaluates lies within [action_low, action_high]. With `latent_draws` K > 0
    each candidate is rolled out under the same K draws of z from the prior N(0, I) (common random numbers,
    so candidates differ only by their actions; batched as N*K rows) and its K costs are combined by `risk`:
    "mean" (expected cost) or "worst" (the costliest draw). `refine_steps` > 0 hands the optimiser's plan to
    that many Adam steps through the dynamics (kept only if they lower its cost): the sampling-then-gradient
    hybrid. After a command: `plan` [T,A], `last_states` [T,D] (the plan's rollout, z = prior mean),
    `last_samples` [N*K or N, T, D] (the candidates' rollouts, row n*K + k) and `last_costs` [N].
    """

    def __init__(self, dynamics: Dynamics, cost: Cost, action_low: Sequence[float], action_high: Sequence[float],
                 noise_sigma: Sequence[float], *, num_samples: int = 512, horizon: int = 16, latent_draws: int = 0,
                 latent_dim: int = 0, risk: str = "mean", refine_steps: int = 0, refine_lr: float = 0.1,
                 seed: int | None = None) -> None:
        self.dynamics, self.cost = dynamics, cost
        self.low = torch.as_tensor(action_low, dtype=torch.float32)
        self.high = torch.as_tensor(action_high, dtype=torch.float32)
        self.sigma = torch.as_tensor(noise_sigma, dtype=torch.float32)
        if not (self.low.shape == self.high.shape == self.sigma.shape) or self.low.ndim != 1:
            raise ValueError("action_low, action_high and noise_sigma need one entry per action dim")
        bounds = torch.stack((self.low, self.high))
        if not bool(torch.isfinite(bounds).all() and (self.low <= self.high).all()):
            raise ValueError(f"action bounds must be finite with low <= high, got {action_low} .. {action_high}")
        if num_samples < 1 or horizon < 1 or latent_draws < 0 or refine_steps < 0 or not refine_lr > 0:
            raise ValueError("num_samples, horizon >= 1; latent_draws, refine_steps >= 0; refine_lr > 0")
        if latent_draws and latent_dim < 1:
            raise ValueError(f"latent_draws {latent_draws} needs latent_dim >= 1, got {latent_dim}")
        if risk not in RISKS:
            raise ValueError(f"risk must be one of {RISKS}, got {risk!r}")
        self.num_samples, self.horizon = num_samples, horizon
        self.latent_draws, self.latent_dim, self.risk = latent_draws, latent_dim, risk
        self.refine_steps, self.refine_lr = refine_steps, refine_lr
        self.generator = torch.Generator().manual_seed(seed) if seed is not None else None
        self._z: Tensor | None = None
        self._deadline: float | None = None
        self.reset()

    def reset(self) -> None:
        """Forget the warm start: the plan becomes the mid-point of the bounds (zero for symmetric ones)."""
        self.plan = ((self.low + self.high) / 2).expand(self.horizon, -1).clone()
        self._fresh = True
        self.last_states: Tensor | None = None
        self.last_samples: Tensor | None = None
        self.last_costs: Tensor | None = None

    @torch.no_grad()
    def command(self, state: Tensor, proposal: Tensor | None = None, deadline: float | None = None) -> Tensor:
        """Optimise the plan from `state` [D] and return its first action [A] (non-finite: no candidate had a
        finite cost, so nothing may be executed). `proposal` [T,A] (e.g. Mode-1's plan) competes with the warm
        start: the cheaper of the two is where the optimiser starts. Past `deadline` (time.perf_counter())
        every rollout stops and DeadlineMissed is raised: the caller then acts without this plan, and the
        shifted warm start stays for the next call (cooperative, so nothing keeps running in the background)."""
        if not self._fresh:  # warm start: the previous plan, one step on, last action repeated
            self.plan = torch.cat([self.plan[1:], self.plan[-1:]])
        self._fresh = False
        self._deadline = deadline
        try:
            return self._command(state, proposal)
        except DeadlineMissed:
            self.last_states = self.last_samples = self.last_costs = None
            raise
        finally:
            self._deadline = None

    def _command(self, state: Tensor, proposal: Tensor | None) -> Tensor:
        state = state.reshape(1, -1)
        device = state.device  # the model's: random draws come from the seeded CPU generator and move there
        self.low, self.high, self.sigma, self.plan = (x.to(device) for x in
                                                      (self.low, self.high, self.sigma, self.plan))
        if self.latent_draws:
            self._z = torch.randn(self.latent_draws, self.horizon, self.latent_dim, generator=self.generator).to(device)
        if proposal is not None and proposal.shape == self.plan.shape and bool(torch.isfinite(proposal).all()):
            starts = torch.stack((self.plan, torch.clamp(proposal.to(device), self.low, self.high)))
            self.plan = starts[int(torch.argmin(self.evaluate(state, starts)[0]))]
        plan = self._optimise(state)
        feasible = bool(torch.isfinite(self.last_costs).any())
        if feasible and self.refine_steps:
            plans, _, _ = descend(lambda a: self.evaluate(state, a), plan[None], self.low, self.high,
                                  self.refine_steps, self.refine_lr)
            plan = plans[0]
        self.plan = plan if feasible else torch.full_like(plan, math.nan)
        nominal_z = None if not self.latent_draws else state.new_zeros(1, self.horizon, self.latent_dim)
        self.last_states = rollout(self.dynamics, state, self.plan[None], nominal_z)[0]
        return self.plan[0].clone()

    def _optimise(self, state: Tensor) -> Tensor:
        """The new plan [T,A] from state [1,D], starting at self.plan; sets last_samples and last_costs."""
        raise NotImplementedError

    def evaluate(self, state: Tensor, actions: Tensor) -> tuple[Tensor, Tensor]:
        """Costs [N] of candidates actions [N,T,A] from state [1,D] (non-finite -> +inf: never chosen, no
        gradient) combined over the latent draws by `risk`, and the rollouts [N*K or N, T, D]."""
        k, n = self.latent_draws, actions.shape[0]
        z = None
        if k:
            actions = actions.repeat_interleave(k, dim=0)  # row n*K + k: candidate n under draw k
            z = self._z.repeat(n, 1, 1)
        states = rollout(self.dynamics, state, actions, z, self._deadline)
        costs = self.cost(states, actions)
        costs = torch.where(torch.isfinite(costs), costs, torch.full_like(costs, math.inf))
        if k:
            costs = costs.view(n, k)
            costs = costs.mean(dim=1) if self.risk == "mean" else costs.amax(dim=1)
        return costs, states

    def primitives(self) -> Tensor:
        """[P, T, A] constant sequences every sampling step also tries: half the bounds of each action dimension
        alone, either way (for a base: creep forward or back, turn in place). Noise around a warm start that
        drives into something never reaches reversing; these make escape a candidate (measured: pressed against
        a box, MPPI kept pushing forward for 30 s). Standing still is not one: as a candidate it won wherever
        every way on cost something, and a zero warm start then never moved again (measured between two boxes)."""
        mid = (self.low + self.high) / 2
        rows = []
        for i in range(len(mid)):
            for bound in (self.low, self.high):
                row = mid.clone()
                row[i] = (mid[i] + bound[i]) / 2
                rows.append(row)
        return torch.stack(rows)[:, None].expand(-1, self.horizon, -1)

    def _perturb(self, mean: Tensor, std: Tensor, n: int) -> Tensor:
        """n candidates [n,T,A]: mean [T,A] plus Gaussian noise of std ([A] or [T,A]), clamped to the bounds.
        Row 0 is the mean itself, so the warm start always competes; the next rows are the primitives (when n
        leaves room for them and more)."""
        noise = torch.randn(n, *mean.shape, generator=self.generator).to(mean.device) * std
        noise[0] = 0.0
        samples = torch.clamp(mean + noise, self.low, self.high)
        primitives = self.primitives().to(mean.device)
        if n > 2 * len(primitives):
            samples[1:1 + len(primitives)] = primitives
        return samples
