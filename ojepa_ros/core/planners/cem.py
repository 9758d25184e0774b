"""The cross-entropy method: sample around a Gaussian, refit it to the elite candidates, repeat."""

from __future__ import annotations

import torch
from torch import Tensor

from ojepa_ros.core.planners.base import Planner


class CEM(Planner):
    """Every command starts the Gaussian at (warm-started plan, noise_sigma): a std that collapsed on the last
    goal would not explore toward a new one. Each iteration moves mean and std toward the statistics of the
    `elite_fraction` cheapest candidates, keeping `momentum` of the old value, the std floored at
    `min_std_fraction` x noise_sigma. The plan is the final mean (a mix of clamped samples: within bounds)."""

    def __init__(self, *args, iterations: int = 1, elite_fraction: float = 0.1, momentum: float = 0.1,
                 min_std_fraction: float = 0.05, **kwargs) -> None:
        if iterations < 1 or not 0 < elite_fraction <= 1 or not 0 <= momentum < 1 or not 0 <= min_std_fraction <= 1:
            raise ValueError("CEM needs iterations >= 1, elite_fraction in (0, 1], momentum in [0, 1), "
                             "min_std_fraction in [0, 1]")
        self.iterations, self.elite_fraction = iterations, elite_fraction
        self.momentum, self.min_std_fraction = momentum, min_std_fraction
        super().__init__(*args, **kwargs)

    def _optimise(self, state: Tensor) -> Tensor:
        mean, std = self.plan, self.sigma.expand_as(self.plan)
        n_elite = max(1, round(self.elite_fraction * self.num_samples))
        keep = self.momentum
        for _ in range(self.iterations):
            samples = self._perturb(mean, std, self.num_samples)
            costs, states = self.evaluate(state, samples)
            elites = samples[torch.topk(costs, n_elite, largest=False).indices]
            mean = (keep * mean + (1 - keep) * elites.mean(dim=0)).clamp(self.low, self.high)  # clamp: rounding only
            std = torch.maximum(keep * std + (1 - keep) * elites.std(dim=0, correction=0),
                                self.min_std_fraction * self.sigma)
        self.last_samples, self.last_costs = states, costs
        return mean
