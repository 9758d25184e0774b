"""Mode-1: a policy network distilled from Mode-2 plans (amortised inference), and its file.

Mode-2 optimises a plan through the world model every control step; Mode-1 maps (state, target) straight to
a whole plan in one forward pass (~0.1 ms). The actor uses it twice: as a candidate warm start that Mode-2
refines (a good first guess saves samples), and as the command when Mode-2 misses its deadline. The target
is given in the robot's frame (forward, left metres), so one network serves every place and heading.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Sequence

import torch
from torch import Tensor, nn

from ojepa_ros.core.model_io import ModelFileError, read_module, write_checkpoint
from ojepa_ros.core.world_model import mlp

FORMAT, VERSION = "ojepa-mode1-policy", 1
WHAT = "Mode-1 policy"


@dataclass
class Mode1Config:
    state_dim: int
    horizon: int = 16
    action_high: tuple[float, float] = (0.5, 1.5)  # the plan lies in [-high, high], as Mode-2's bounds
    hidden_dim: int = 256
    max_target: float = 3.0  # m; farther targets are scaled onto this circle (the route's subgoals lie within)

    def __post_init__(self) -> None:
        self.action_high = tuple(float(v) for v in self.action_high)


def relative_target(pose: Tensor, target: Tensor) -> Tensor:
    """Target xy [..., 2] in the frame of pose [..., 3] (x, y, yaw): (ahead, left) metres."""
    d = target - pose[..., :2]
    cos, sin = torch.cos(pose[..., 2]), torch.sin(pose[..., 2])
    return torch.stack((cos * d[..., 0] + sin * d[..., 1], -sin * d[..., 0] + cos * d[..., 1]), dim=-1)


class Mode1Policy(nn.Module):
    """plan(states [B, D], targets_rel [B, 2]) -> plans [B, horizon, 2] within +-action_high."""

    def __init__(self, cfg: Mode1Config) -> None:
        super().__init__()
        self.cfg = cfg
        self._net = mlp([cfg.state_dim + 3, cfg.hidden_dim, cfg.hidden_dim, cfg.horizon * 2])
        self.register_buffer("high", torch.tensor(cfg.action_high), persistent=False)

    def forward(self, states: Tensor, targets_rel: Tensor) -> Tensor:
        dist = torch.linalg.vector_norm(targets_rel, dim=-1, keepdim=True)
        clipped = targets_rel * (self.cfg.max_target / dist.clamp_min(self.cfg.max_target))
        x = torch.cat((states, clipped, dist.clamp_max(self.cfg.max_target)), dim=-1)
        return torch.tanh(self._net(x).view(-1, self.cfg.horizon, 2)) * self.high


def mode1_beside(model_path: str | Path) -> Path:
    """Where a world model's Mode-1 policy lives by default: world_model.pt -> world_model.mode1.pt."""
    return Path(model_path).with_suffix(".mode1.pt")


def save_mode1(policy: Mode1Policy, path: str | Path, metadata: dict) -> None:
    write_checkpoint(path, FORMAT, VERSION, asdict(policy.cfg), policy, metadata)


def load_mode1(path: str | Path, state_dim: int | None = None,
               action_high: Sequence[float] | None = None) -> Mode1Policy:
    """The policy at path in eval mode; ModelFileError names the file when it is missing, corrupt, or made for
    another world model (state_dim) or other velocity bounds (action_high)."""
    policy = read_module(path, FORMAT, VERSION, WHAT, Mode1Config, Mode1Policy)
    cfg = policy.cfg
    if state_dim is not None and cfg.state_dim != state_dim:
        raise ModelFileError(f"{WHAT} file {path} expects states of {cfg.state_dim} dims, the world model gives "
                             f"{state_dim}: distil it again for this model (`ojepa distill`)")
    if action_high is not None and any(abs(a - b) > 1e-6 for a, b in zip(cfg.action_high, action_high)):
        raise ModelFileError(f"{WHAT} file {path} was distilled for velocity bounds {cfg.action_high}, the actor "
                             f"has {tuple(action_high)}: distil it again (`ojepa distill`)")
    return policy
