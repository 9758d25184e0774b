"""Model Predictive Path Integral control (Williams et al. 2017), batched and warm-started."""

from __future__ import annotations

import torch
from torch import Tensor

from ojepa_ros.core.planners.base import Planner


class MPPI(Planner):
    """Each iteration: candidates around the plan (noise_sigma, clamped to the bounds, row 0 the plan itself),
    the plan becomes their softmax(-cost / temperature)-weighted mean: a convex mix of feasible sequences."""

    def __init__(self, *args, temperature: float = 0.05, iterations: int = 1, **kwargs) -> None:
        if iterations < 1 or not temperature > 0:
            raise ValueError(f"iterations must be >= 1 and temperature > 0, got {iterations}, {temperature}")
        self.temperature, self.iterations = temperature, iterations
        super().__init__(*args, **kwargs)

    def _optimise(self, state: Tensor) -> Tensor:
        plan = self.plan
        for _ in range(self.iterations):
            samples = self._perturb(plan, self.sigma, self.num_samples)
            costs, states = self.evaluate(state, samples)
            weights = torch.softmax(-(costs - costs.min()) / self.temperature, dim=0)  # all +inf -> NaN plan
            # Multiply-and-sum, not a matmul: a BLAS call this small still wakes the thread pool, which on a
            # busy machine cost 20-30 ms (a 500x slowdown) in measurements here.
            plan = (weights[:, None, None] * samples).sum(dim=0).clamp(self.low, self.high)  # clamp: rounding only
        self.last_samples, self.last_costs = states, costs
        return plan
