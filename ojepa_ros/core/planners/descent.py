"""Adam on action sequences through the differentiable dynamics, inside the action bounds by construction.

The optimiser's variable theta is unconstrained and the actions are squash(theta) = low + (high - low) *
(tanh(theta) + 1) / 2, so every point Adam visits is a feasible plan. Clipping after each step instead would
let the optimiser push against a bound it cannot see, its momentum piling up there.
"""

from __future__ import annotations

from typing import Callable

import torch
from torch import Tensor

EDGE = 0.995  # an action on a bound starts just inside it: tanh's gradient vanishes at +-1
BETAS, EPS = (0.9, 0.999), 1e-8  # Adam's defaults

Evaluate = Callable[[Tensor], tuple[Tensor, Tensor]]  # actions [M,T,A] -> (costs [M], rollouts [M*K, T, D])


def squash(theta: Tensor, low: Tensor, high: Tensor) -> Tensor:
    """Unconstrained parameters -> actions within [low, high]."""
    return low + (high - low) * (torch.tanh(theta) + 1) / 2


def unsquash(actions: Tensor, low: Tensor, high: Tensor) -> Tensor:
    """Actions within [low, high] -> parameters (bounds pulled in to EDGE; a zero-width range maps to 0)."""
    unit = 2 * (actions - low) / (high - low).clamp_min(1e-12) - 1
    return torch.atanh(unit.clamp(-EDGE, EDGE))


def descend(evaluate: Evaluate, init: Tensor, low: Tensor, high: Tensor, steps: int,
            lr: float) -> tuple[Tensor, Tensor, Tensor]:
    """`steps` Adam steps on every candidate of init [M,T,A] at once (each gets the gradient of its own cost),
    the step size decaying linearly from lr to 0: Adam's normalised steps do not shrink near a minimum.

    Returns per candidate the best actions seen [M,T,A], their costs [M] (+inf: none finite; the actions
    are then init's) and rollouts [M*K, T, D]: a step that raised the cost is never handed back.
    """
    theta = unsquash(init, low, high).requires_grad_(True)
    # Adam by hand: torch.optim's first step imports torch._dynamo, a 1.5 s stall of the first control step.
    mean, square = torch.zeros_like(theta), torch.zeros_like(theta)
    best, best_costs, best_states = init.clone(), None, None
    for step in range(steps + 1):  # the last pass only evaluates the final step
        with torch.set_grad_enabled(step < steps):
            actions = squash(theta, low, high)
            costs, states = evaluate(actions)
            finite = torch.isfinite(costs)
            loss = costs[finite].sum()
        if best_costs is None:
            best_costs, best_states = torch.full_like(costs, torch.inf), states.detach()
        better = costs.detach() < best_costs
        best = torch.where(better[:, None, None], actions.detach(), best)
        best_costs = torch.where(better, costs.detach(), best_costs)
        rows = better.repeat_interleave(states.shape[0] // better.shape[0])
        best_states = torch.where(rows[:, None, None], states.detach(), best_states)
        if step == steps or not finite.any():
            break
        (grad,) = torch.autograd.grad(loss, theta)  # theta only: no gradients for the model's weights
        grad = torch.nan_to_num(grad, nan=0.0, posinf=0.0, neginf=0.0)
        mean.lerp_(grad, 1 - BETAS[0])
        square.lerp_(grad.square(), 1 - BETAS[1])
        n = step + 1
        with torch.no_grad():
            theta -= lr * (1 - step / steps) * (mean / (1 - BETAS[0] ** n)) / ((square / (1 - BETAS[1] ** n)).sqrt()
                                                                              + EPS)
    return best, best_costs, best_states
