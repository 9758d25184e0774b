"""Closed-form linear probes and representation statistics, shared by training and `ojepa eval-wm`.

A linear probe fitted by ridge regression on frozen features is the standard read-out test of SSL:
it says what the representation makes *linearly* available, with no capacity of its own to hide behind.
"""

from __future__ import annotations

import torch
from torch import Tensor


def fit_linear(x: Tensor, y: Tensor, ridge: float = 1e-3) -> tuple[Tensor, Tensor]:
    """Weights [F, K] and bias [K] minimising |x W + b - y|^2 + ridge |W|^2 (x standardised internally)."""
    x, y = x.double(), y.double()
    mean, std = x.mean(0), x.std(0).clamp_min(1e-6)
    xs = (x - mean) / std
    gram = xs.T @ xs + ridge * len(xs) * torch.eye(xs.shape[1], dtype=xs.dtype)
    w = torch.linalg.solve(gram, xs.T @ (y - y.mean(0)))
    w = w / std[:, None]
    b = y.mean(0) - mean @ w
    return w.float(), b.float()


def r_squared(predicted: Tensor, target: Tensor) -> Tensor:
    """Coefficient of determination per output column [K]: 1 - SSE / SST."""
    sse = (predicted - target).square().sum(0)
    sst = (target - target.mean(0)).square().sum(0).clamp_min(1e-12)
    return 1.0 - sse / sst


def pose_targets(states: Tensor) -> Tensor:
    """Normalised (x, y, cos yaw, sin yaw) of states [N, D]: their odometry part, which pose probes must recover
    from the image features alone."""
    return states[:, :4]


def pose_r_squared(predicted: Tensor, target: Tensor) -> dict[str, float]:
    """R^2 of predicted (x, y, cos, sin) [N, 4]: x, y, and yaw as the mean over cos and sin."""
    r2 = r_squared(predicted, target)
    return {"x": r2[0].item(), "y": r2[1].item(), "yaw": r2[2:].mean().item()}


def effective_rank(features: Tensor) -> float:
    """exp(entropy of the normalised singular values) of centred features [N, F] (RankMe): 1 when collapsed to a
    line, F when every direction carries equal variance."""
    sv = torch.linalg.svdvals((features - features.mean(0)).double())
    p = sv / sv.sum().clamp_min(1e-12)
    p = p[p > 0]
    return float(torch.exp(-(p * p.log()).sum()))
