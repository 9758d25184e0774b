"""Gradient-based planning: Adam on action sequences through the differentiable dynamics."""

from __future__ import annotations

from torch import Tensor

from ojepa_ros.core.planners.base import Planner
from ojepa_ros.core.planners.descent import descend


class Gradient(Planner):
    """`num_samples` sequences descend at once (the warm start and noisy copies of it: a single one stalls in
    the first local minimum), each `steps` Adam steps of size `lr` on its tanh-squashed parameters; the
    cheapest wins. Keep num_samples small: every step is a forward and a backward pass through the model."""

    def __init__(self, *args, steps: int = 5, lr: float = 0.1, **kwargs) -> None:
        if steps < 1 or not lr > 0:
            raise ValueError(f"steps must be >= 1 and lr > 0, got {steps}, {lr}")
        self.steps, self.lr = steps, lr
        super().__init__(*args, **kwargs)

    def _optimise(self, state: Tensor) -> Tensor:
        init = self._perturb(self.plan, self.sigma, self.num_samples)
        plans, costs, states = descend(lambda a: self.evaluate(state, a), init, self.low, self.high,
                                       self.steps, self.lr)
        self.last_samples, self.last_costs = states, costs
        return plans[costs.argmin()]
