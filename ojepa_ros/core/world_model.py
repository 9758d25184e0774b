"""The JEPA world model: one class whose methods are the concepts (encode, next, rollout, abstract, next2, probes).

State s = Enc(camera image, odometry) = [normalised proprio (6) | learned image features (embed_dim - 6)].
The odometry part is kept verbatim because it is already an abstract, exactly known state; the learned
part sees the image only, so what it knows of walls, doorways, furniture and rooms (and of the pose: see
`probe_pose`) comes from the camera. Pred(s, a, z) predicts the whole state one control step (`dt`)
ahead, never pixels. It is blind to the absolute position (x, y), and so are the obstacle read-outs
(`ranges`, `clearance`): what the robot may bump into is read from the image features, never from a
memorised map, so it holds in layouts never seen. The ranges head is supervised by the range scanner (a
sensor a real robot carries) and shapes the encoder; the clearance probe observes the detached states.
z carries what the action cannot explain (trained through a noisy, KL-limited posterior; zero or prior
draws when planning). Level 2 (H-JEPA) is a coarser state h = abstract(s)
whose predictor jumps `level2_k` control steps per call, for subgoal proposals. It sees no pose at all
(only velocities and image features) yet must predict the pose k steps on, so its gradient teaches the
encoder where the robot is and which way it faces, from the image. Probes (clearance,
image-only pose) are fitted on detached states, so they observe the representation without shaping it.
kind == "pixel" adds a decoder: the generative baseline that reconstructs pixels instead of VICReg.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import torch
from torch import Tensor, nn

KINDS = ("jepa", "pixel")
POSITION_DIMS = 2  # x, y lead the odometry part; no predictor or obstacle read-out sees them
POSE_DIMS = 4      # x, y, cos yaw, sin yaw: the level-2 predictor sees none of them


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
    z_dim: int = 4          # latent variable of the predictor; 0: deterministic
    level2_k: int = 8       # control steps per level-2 prediction
    level2_dim: int = 32    # size of the level-2 state h (its first proprio_dim entries are s's odometry part)
    expander_dim: int = 256  # VICReg expander width (training only): decorrelating more dims demands more information
    kind: str = "jepa"      # "jepa" | "pixel" (generative baseline with a pixel decoder)
    range_sectors: int = 9      # forward range read-out: nearest obstacle per sector of the camera's view
    range_fov: float = 90.0     # degrees the sectors span (the camera's horizontal field of view)
    range_cap: float = 3.0      # m: farther (or no) returns read as this
    dt: float = 0.1         # s per predictor step: the environment's control period
    proprio_mean: list[float] = field(default_factory=lambda: [0.0] * 6)
    proprio_std: list[float] = field(default_factory=lambda: [1.0] * 6)
    action_scale: list[float] = field(default_factory=lambda: [1.0, 1.0])

    def __post_init__(self) -> None:
        self.channels = tuple(self.channels)  # a checkpoint stores the tuple as a list
        if self.kind not in KINDS:
            raise ValueError(f"kind must be one of {KINDS}, got {self.kind!r}")
        if self.embed_dim <= self.proprio_dim or self.level2_dim <= self.proprio_dim:
            raise ValueError(f"embed_dim and level2_dim must exceed proprio_dim ({self.proprio_dim})")
        if self.image_size % 2 ** len(self.channels):
            raise ValueError(f"image_size {self.image_size} must be divisible by 2**{len(self.channels)}")

    @property
    def feature_dim(self) -> int:
        return self.embed_dim - self.proprio_dim


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


def deconv_net(channels: tuple[int, ...], image_size: int, in_dim: int) -> nn.Sequential:
    """The mirror of conv_net: features -> RGB image [B, 3, S, S] in [0, 1] (the pixel baseline's decoder)."""
    side = image_size // 2 ** len(channels)
    rev = tuple(reversed(channels))
    layers: list[nn.Module] = [nn.Linear(in_dim, rev[0] * side * side), nn.Unflatten(1, (rev[0], side, side))]
    for c_in, c_out in zip(rev, rev[1:] + (3,)):
        layers += [nn.SiLU(), nn.ConvTranspose2d(c_in, c_out, 4, stride=2, padding=1)]
    return nn.Sequential(*layers, nn.Sigmoid())


class WorldModel(nn.Module):
    """Encoder, latent-variable predictor, level-2 abstraction + predictor, probes (and a decoder for "pixel")."""

    def __init__(self, cfg: WorldModelConfig) -> None:
        super().__init__()
        self.cfg = cfg
        h, d, f, p = cfg.hidden_dim, cfg.embed_dim, cfg.feature_dim, cfg.proprio_dim
        self._conv, conv_out = conv_net(cfg.channels, cfg.image_size)
        self._image_head = mlp([conv_out, h, f])
        self._hidden = POSITION_DIMS  # leading state dims no level-1 network sees
        self._dynamics = mlp([d - self._hidden + cfg.action_dim + cfg.z_dim, h, h, d])
        if cfg.z_dim:
            self._posterior = mlp([2 * d, h // 2, 2 * cfg.z_dim])  # q(z | s_t, s_t+1): only used in training
        self._abstract = mlp([f, h // 2, cfg.level2_dim - p])
        self._dynamics2 = mlp([cfg.level2_dim - POSE_DIMS + cfg.level2_k * cfg.action_dim, h, h, cfg.level2_dim])
        self.clearance_head = mlp([d - self._hidden, cfg.probe_dim, cfg.probe_dim, 1])
        self.range_head = mlp([d - self._hidden, h, cfg.range_sectors])
        self._expander = mlp([f, cfg.expander_dim, cfg.expander_dim])
        self.pose_head = nn.Linear(f, 4)  # linear probe: (x, y, cos, sin) in normalised odometry units
        if cfg.kind == "pixel":
            self._decoder = deconv_net(cfg.channels, cfg.image_size, f)
        # Normalisation comes from the config (the single source of truth), so it is not in the state_dict.
        for name, values in (("proprio_mean", cfg.proprio_mean), ("proprio_std", cfg.proprio_std),
                             ("action_scale", cfg.action_scale)):
            self.register_buffer(name, torch.tensor(values, dtype=torch.float32), persistent=False)

    # --- level 1 -------------------------------------------------------------------------------------
    def encode(self, image: Tensor, proprio: Tensor) -> Tensor:
        """uint8 camera images [B, H, W, 3] (as the camera gives them) + proprio [B, 6] -> states [B, D]."""
        x = image.permute(0, 3, 1, 2).float().div(255.0)
        p = (proprio - self.proprio_mean) / self.proprio_std
        return torch.cat((p, self._image_head(self._conv(x))), dim=-1)

    def features(self, s: Tensor) -> Tensor:
        """The learned, image-only part of states [..., D] (what the anti-collapse terms and the pose probe see)."""
        return s[..., self.cfg.proprio_dim:]

    def expand(self, s: Tensor) -> Tensor:
        """The image features through the expander: where the VICReg terms act (training only)."""
        return self._expander(self.features(s))

    def _z(self, s: Tensor, z: Tensor | None) -> Tensor:
        return s.new_zeros(*s.shape[:-1], self.cfg.z_dim) if z is None else z

    def next(self, s: Tensor, a: Tensor, z: Tensor | None = None) -> Tensor:
        """State one control step after action a = (v m/s, w rad/s) in state s; z None = the prior mean (zeros).
        The step MLP runs in its weights' dtype (see with_rollout_dtype); the residual sum stays in s's."""
        x = torch.cat((s[..., self._hidden:], a / self.action_scale, self._z(s, z)), dim=-1)
        return s + self._dynamics(x.to(self._dynamics[0].weight.dtype)).to(s.dtype)

    def rollout(self, s0: Tensor, actions: Tensor, z: Tensor | None = None) -> Tensor:
        """Predicted states [N, T, D] after each of the actions [N, T, 2] from s0 [N, D]; z [N, T, z_dim] or None."""
        states = []
        s = s0
        for t, a in enumerate(actions.unbind(1)):
            s = self.next(s, a, None if z is None else z[:, t])
            states.append(s)
        return torch.stack(states, dim=1)

    def sample_z(self, n: int, generator: torch.Generator | None = None) -> Tensor:
        """n draws [n, z_dim] from the prior N(0, I): what the planner imagines the unexplained part to be."""
        return torch.randn(n, self.cfg.z_dim, generator=generator).to(self.proprio_mean.device)

    def posterior(self, s: Tensor, s_next: Tensor) -> tuple[Tensor, Tensor]:
        """Mean and log-variance of q(z | s, s_next): what the action alone did not explain (training only)."""
        mean, log_var = self._posterior(torch.cat((s, s_next), dim=-1)).chunk(2, dim=-1)
        return mean, log_var.clamp(-8.0, 4.0)

    def rollout_posterior(self, s0: Tensor, actions: Tensor, targets: Tensor,
                          generator: torch.Generator | None = None) -> tuple[Tensor, Tensor]:
        """Training rollout [B, T, D] with z drawn from the posterior given each step's target, and the mean
        KL(q || N(0, I)) per step: the bottleneck that keeps z from carrying what the action explains."""
        if not self.cfg.z_dim:
            return self.rollout(s0, actions), s0.new_zeros(())
        states, kl = [], s0.new_zeros(())
        s = s0
        for t, a in enumerate(actions.unbind(1)):
            mean, log_var = self.posterior(s, targets[:, t])
            noise = torch.randn(mean.shape, generator=generator).to(mean.device)
            s = self.next(s, a, mean + noise * (0.5 * log_var).exp())
            kl = kl + 0.5 * (mean.square() + log_var.exp() - 1.0 - log_var).sum(-1).mean()
            states.append(s)
        return torch.stack(states, dim=1), kl / actions.shape[1]

    # --- level 2 (H-JEPA) ----------------------------------------------------------------------------
    def abstract(self, s: Tensor) -> Tensor:
        """Level-2 state h [..., level2_dim] = [odometry part | coarse summary of the image features]."""
        p = self.cfg.proprio_dim
        return torch.cat((s[..., :p], self._abstract(s[..., p:])), dim=-1)

    def next2(self, h: Tensor, macro: Tensor) -> Tensor:
        """Level-2 state level2_k control steps after the actions macro [N, k, 2] (residual update)."""
        flat = (macro / self.action_scale).flatten(-2)
        return h + self._dynamics2(torch.cat((h[..., POSE_DIMS:], flat), dim=-1))

    def rollout2(self, h0: Tensor, macros: Tensor) -> Tensor:
        """Level-2 states [N, M, d2] after each of the macro-actions [N, M, k, 2]."""
        states = []
        h = h0
        for macro in macros.unbind(1):
            h = self.next2(h, macro)
            states.append(h)
        return torch.stack(states, dim=1)

    # --- readouts ------------------------------------------------------------------------------------
    def _pose_from_normalised(self, xy_cs: Tensor) -> Tensor:
        xy_cs = xy_cs * self.proprio_std[:4] + self.proprio_mean[:4]
        return torch.cat((xy_cs[..., :2], torch.atan2(xy_cs[..., 3], xy_cs[..., 2]).unsqueeze(-1)), dim=-1)

    def pose(self, s: Tensor) -> Tensor:
        """Pose [..., 3] = (x m, y m, yaw rad) of states s or level-2 states h, read from their odometry part."""
        return self._pose_from_normalised(s[..., :4])

    def probe_pose(self, s: Tensor) -> Tensor:
        """Pose [..., 3] as the linear probe reads it from the image features alone (no odometry)."""
        return self._pose_from_normalised(self.pose_head(self.features(s)))

    def clearance(self, s: Tensor) -> Tensor:
        """Distance [...] in metres from the robot's body to the nearest obstacle, >= 0, read from everything in
        s but the position (the scan-derived label of sensing.clearance_from_scan)."""
        head_dtype = self.clearance_head[0].weight.dtype
        x = s[..., self._hidden:].to(head_dtype)
        return nn.functional.softplus(self.clearance_head(x).squeeze(-1).to(s.dtype))

    def ranges(self, s: Tensor) -> Tensor:
        """Nearest obstacle [..., range_sectors] in metres in each sector of the camera's view (sector k centred
        on sensing.sector_centres(range_fov, range_sectors)[k]), read from the state without its position."""
        return nn.functional.softplus(self.range_head(s[..., self._hidden:])).clamp_max(self.cfg.range_cap)

    def with_rollout_dtype(self, dtype: torch.dtype) -> WorldModel:
        """A copy whose step and clearance MLPs hold `dtype` weights: what a planner calls thousands of times
        per control step. States, their residual updates, the pose read-out and the normalisation stay
        float32, so a bfloat16 copy loses no position precision; the MLPs themselves run on the bf16 units
        (AMX, tensor cores) with no per-call casting of weights (autocast would also keep LayerNorm in
        float32, which is where most of a rollout's time goes here)."""
        copy = WorldModel(self.cfg)
        copy.load_state_dict(self.state_dict())
        copy._dynamics.to(dtype)
        copy.clearance_head.to(dtype)
        return copy.eval().to(self.proprio_mean.device)

    def decode(self, s: Tensor) -> Tensor:
        """Pixel baseline only: states [B, D] -> images [B, 3, S, S] in [0, 1]."""
        if self.cfg.kind != "pixel":
            raise RuntimeError("decode() exists only on the pixel baseline (cfg.kind == 'pixel')")
        return self._decoder(self.features(s))

    def planning_parameters(self) -> int:
        """Parameters used at planning time (encoder + predictor): the budget baselines are matched on."""
        parts = (self._conv, self._image_head, self._dynamics)
        return sum(p.numel() for part in parts for p in part.parameters())
