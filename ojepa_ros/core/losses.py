"""JEPA training losses: multistep latent prediction, VICReg anti-collapse terms, the clearance probe.

The prediction term rolls the predictor recurrently from s_0 (no teacher forcing after step 0), so the
model is trained the way the planner uses it: 16-20 steps on its own outputs.
"""

from __future__ import annotations

import torch
from torch import Tensor

from ojepa_ros.core.world_model import WorldModel


def vicreg_variance(z: Tensor, gamma: float = 1.0, eps: float = 1e-4) -> Tensor:
    """Hinge on each dimension's std over the batch [N, D]: zero once every std >= gamma, large if collapsed."""
    std = torch.sqrt(z.var(dim=0) + eps)
    return torch.relu(gamma - std).mean()


def vicreg_covariance(z: Tensor) -> Tensor:
    """Sum of squared off-diagonal covariances of z [N, D], over D: decorrelates the dimensions."""
    n, d = z.shape
    z = z - z.mean(dim=0)
    cov = (z.T @ z) / (n - 1)
    off_diagonal = cov - torch.diag(torch.diagonal(cov))
    return off_diagonal.square().sum() / d


def rollout_loss(predicted: Tensor, target: Tensor) -> Tensor:
    """Mean squared error between predicted [B, T, D] and target [B, T, D] states, averaged over steps."""
    return (predicted - target).square().mean()


def jepa_loss(online: Tensor, predicted: Tensor, target: Tensor, weights: dict[str, float],
              odometry_dims: int) -> dict[str, Tensor]:
    """Named loss terms plus their weighted sum "jepa" (the trainer adds the probe term to it).

    online: learned features (model.features) of encoded states with gradient [N, F], for VICReg;
    predicted: model.rollout(s_0, actions) [B, H, D]; target: encodings [B, H, D] of the frames the
    actions led to, under stop-gradient. The first `odometry_dims` state dimensions (the odometry
    part) get their own weight: they are few, move little per step, and are what the planner steers by.
    """
    target = target.detach()
    terms = {
        "prediction": rollout_loss(predicted[..., odometry_dims:], target[..., odometry_dims:]),
        "odometry": rollout_loss(predicted[..., :odometry_dims], target[..., :odometry_dims]),
        "variance": vicreg_variance(online),
        "covariance": vicreg_covariance(online),
    }
    terms["jepa"] = sum(weights[name] * value for name, value in terms.items())
    return terms


def probe_loss(model: WorldModel, states: Tensor, clearance: Tensor) -> dict[str, Tensor]:
    """Clearance (m) regression on detached states [..., D]: the probe reads the representation, never shapes it."""
    return {"clearance": (model.clearance(states.detach()) - clearance).square().mean()}
