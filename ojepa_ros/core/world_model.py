"""The JEPA world model: one class whose methods are the concepts (encode, next, rollout, pose, clearance).

State s = Enc(camera image, odometry) = [normalised proprio (6) | learned features (embed_dim - 6)].
The odometry part is kept verbatim because it is already an abstract, exactly known state: the
learned part only has to add what odometry cannot tell (walls, doorways, which room), and the pose
is read off any state, encoded or imagined, without a probe's error on top of the predictor's.
Pred(s, a) predicts the whole state one control step (`dt`) ahead, never pixels. Clearance is read
by a probe head trained on detached states, so it observes the representation without shaping it.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import torch
from torch import Tensor, nn


def proprio_from_odom(odom: Tensor) -> Tensor:
    """[..., 5] odometry (x, y, yaw, v, w) -> [..., 6] (x, y, cos yaw, sin yaw, v, w): yaw without the wrap-around."""
    x, y, yaw, v, w = odom.unbind(-1)
    return torch.stack((x, y, torch.cos(yaw), torch.sin(yaw), v, w), dim=-1)


@dataclass
class WorldModelConfig:
    """Sizes, the control step and the data normalisation; saved verbatim in every checkpoint."""

    image_size: int = 64
    proprio_dim: int = 6
    action_dim: int = 2
    embed_dim: int = 64
    hidden_dim: int = 256
    channels: tuple[int, ...] = (16, 32, 64, 64)
    probe_dim: int = 128
    dt: float = 0.1  # s per predictor step: the environment's control period
    proprio_mean: list[float] = field(default_factory=lambda: [0.0] * 6)
    proprio_std: list[float] = field(default_factory=lambda: [1.0] * 6)
    action_scale: list[float] = field(default_factory=lambda: [1.0, 1.0])

    def __post_init__(self) -> None:
        self.channels = tuple(self.channels)  # a checkpoint stores the tuple as a list


def mlp(dims: list[int]) -> nn.Sequential:
    """Linear layers with LayerNorm + SiLU between them and a plain linear output."""
    layers: list[nn.Module] = []
    for i, (d_in, d_out) in enumerate(zip(dims[:-1], dims[1:])):
        layers.append(nn.Linear(d_in, d_out))
        if i < len(dims) - 2:
            layers += [nn.LayerNorm(d_out), nn.SiLU()]
    return nn.Sequential(*layers)


def conv_net(channels: tuple[int, ...], image_size: int) -> tuple[nn.Sequential, int]:
    """Stride-2 3x3 convolutions, each halving the image; returns the net and its flattened output size."""
    layers: list[nn.Module] = []
    c_in = 3
    for c_out in channels:
        layers += [nn.Conv2d(c_in, c_out, 3, stride=2, padding=1), nn.SiLU()]
        c_in = c_out
    side = image_size // 2 ** len(channels)
    return nn.Sequential(*layers, nn.Flatten()), c_in * side * side


class WorldModel(nn.Module):
    """Encoder, action-conditioned latent predictor, pose readout and clearance probe."""

    def __init__(self, cfg: WorldModelConfig) -> None:
        super().__init__()
        self.cfg = cfg
        h, d = cfg.hidden_dim, cfg.embed_dim
        self._conv, conv_out = conv_net(cfg.channels, cfg.image_size)
        self._proprio = mlp([cfg.proprio_dim, 64, 64])
        self._fuse = mlp([conv_out + 64, h, d - cfg.proprio_dim])
        self._dynamics = mlp([d + cfg.action_dim, h, h, d])
        self.clearance_head = mlp([d, cfg.probe_dim, cfg.probe_dim, 1])  # refitted on frozen states
        # Normalisation comes from the config (the single source of truth), so it is not in the state_dict.
        for name, values in (("proprio_mean", cfg.proprio_mean), ("proprio_std", cfg.proprio_std),
                             ("action_scale", cfg.action_scale)):
            self.register_buffer(name, torch.tensor(values, dtype=torch.float32), persistent=False)

    def encode(self, image: Tensor, proprio: Tensor) -> Tensor:
        """uint8 camera images [B, H, W, 3] (as the camera gives them) + proprio [B, 6] -> states [B, D]."""
        x = image.permute(0, 3, 1, 2).float().div(255.0)
        p = (proprio - self.proprio_mean) / self.proprio_std
        return torch.cat((p, self._fuse(torch.cat((self._conv(x), self._proprio(p)), dim=-1))), dim=-1)

    def features(self, s: Tensor) -> Tensor:
        """The learned part of states [..., D] (what the anti-collapse terms act on)."""
        return s[..., self.cfg.proprio_dim:]

    def next(self, s: Tensor, a: Tensor) -> Tensor:
        """State one control step after applying action a = (v m/s, w rad/s) in state s (residual update)."""
        return s + self._dynamics(torch.cat((s, a / self.action_scale), dim=-1))

    def rollout(self, s0: Tensor, actions: Tensor) -> Tensor:
        """Predicted states [N, T, D] after each of the actions [N, T, 2], starting from s0 [N, D]."""
        states = []
        s = s0
        for a in actions.unbind(1):
            s = self.next(s, a)
            states.append(s)
        return torch.stack(states, dim=1)

    def pose(self, s: Tensor) -> Tensor:
        """Pose [..., 3] = (x m, y m, yaw rad) of states [..., D], read from their odometry part."""
        xy_cs = s[..., :4] * self.proprio_std[:4] + self.proprio_mean[:4]
        return torch.cat((xy_cs[..., :2], torch.atan2(xy_cs[..., 3], xy_cs[..., 2]).unsqueeze(-1)), dim=-1)

    def clearance(self, s: Tensor) -> Tensor:
        """Distance [...] in metres from the robot's body to the nearest obstacle, >= 0."""
        return nn.functional.softplus(self.clearance_head(s).squeeze(-1))
