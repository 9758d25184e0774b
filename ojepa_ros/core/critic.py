"""The trainable critic: how much intrinsic cost follows a state, learned from memory; the planner's terminal cost.

The guardrails score only what the 1.6 s horizon shows. The critic looks past it: from a state it predicts
the discounted contact cost of the next `horizon` recorded steps, V(s_t) = sum_j gamma^j c_{t+j}, where c is
the Collision guardrail's shape, (max(0, margin - clearance) / margin)^2, on the clearance the episode
recorded (a bumper contact counts as clearance 0). So a plan that ends facing a wall at speed costs more than
one that ends with room to turn, though neither touches within the horizon.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import torch
from torch import Tensor, nn

from ojepa_ros.core.model_io import PartFile
from ojepa_ros.core.world_model import mlp

FORMAT, VERSION = "ojepa-critic", 1
WHAT = "critic"


@dataclass
class CriticConfig:
    state_dim: int
    hidden_dim: int = 128
    horizon: int = 30      # recorded steps summed into the target
    discount: float = 0.95
    margin: float = 0.15   # m, as the Collision guardrail's


def step_costs(clearance: Tensor, margin: float) -> Tensor:
    """Per-step contact cost [T] of recorded clearances [T] (NaN: unknown, counted as no cost)."""
    return (torch.relu(margin - torch.nan_to_num(clearance, nan=margin)) / margin).square()


def value_targets(clearance: Tensor, cfg: CriticConfig) -> Tensor:
    """V_t [T - horizon] = sum_{j=1..horizon} discount^(j-1) c_{t+j} for every step with a full horizon ahead."""
    costs = step_costs(clearance, cfg.margin)
    weights = cfg.discount ** torch.arange(cfg.horizon, dtype=costs.dtype)
    windows = costs[1:].unfold(0, cfg.horizon, 1)  # [T - horizon, horizon]
    return windows @ weights


class Critic(nn.Module):
    """V(states [..., D]) -> predicted discounted future contact cost [...], >= 0."""

    def __init__(self, cfg: CriticConfig) -> None:
        super().__init__()
        self.cfg = cfg
        self._net = mlp([cfg.state_dim, cfg.hidden_dim, cfg.hidden_dim, 1])

    def forward(self, states: Tensor) -> Tensor:
        return nn.functional.softplus(self._net(states).squeeze(-1))


CRITIC_FILE = PartFile(FORMAT, VERSION, WHAT, ".critic.pt", CriticConfig, Critic, "ojepa critic")


def critic_beside(model_path: str | Path) -> Path:
    """Where a world model's critic lives by default: world_model.pt -> world_model.critic.pt."""
    return CRITIC_FILE.beside(model_path)


def save_critic(critic: Critic, path: str | Path, metadata: dict) -> None:
    CRITIC_FILE.save(critic, path, metadata)


def load_critic(path: str | Path, state_dim: int | None = None) -> Critic:
    """The critic at path in eval mode; ModelFileError names the file if missing, corrupt or for another model."""
    return CRITIC_FILE.load(path, state_dim=state_dim)
