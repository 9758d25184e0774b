"""World-model training losses: multistep latent prediction with a KL-limited latent, VICReg anti-collapse
terms, the level-2 jump prediction, the pixel baseline's reconstruction, the forward ranges the range scanner
measured (read from encoded and imagined states, shaping both), and the clearance probe.

The prediction term rolls the predictor recurrently from s_0 (no teacher forcing after step 0), so the
model is trained the way the planner uses it: 16 steps on its own outputs. The view term (VICReg's
invariance between two views of one image, the views being small shifts) makes the features prefer what
a shift keeps, such as a room's colours and landmarks, over exact pixel positions. Every term has a weight in
config/train.yaml; the ablations are weight changes (variance = covariance = 0: no regulariser) or the
model kind ("pixel": reconstruction in place of VICReg).
"""

from __future__ import annotations

import torch
from torch import Tensor

from ojepa_ros.core.world_model import WorldModel

SHIFT_PX = 4  # the view term's image shift: enough to move edges, never enough to change the room in view


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


def random_shift(images: Tensor, pad: int, generator: torch.Generator | None = None) -> Tensor:
    """uint8 images [B, H, W, 3] shifted by up to +-pad px each (edge-replicated), as DrQ augments pixels for RL."""
    b, h, w, _ = images.shape
    padded = torch.nn.functional.pad(images.permute(0, 3, 1, 2).float(), (pad, pad, pad, pad), mode="replicate")
    dx, dy = (torch.randint(0, 2 * pad + 1, (2, b), generator=generator)).tolist()
    return torch.stack([padded[i, :, dy[i]:dy[i] + h, dx[i]:dx[i] + w] for i in range(b)]).permute(0, 2, 3, 1)


def probe_loss(model: WorldModel, states: Tensor, clearance: Tensor) -> dict[str, Tensor]:
    """Clearance (m) regression on detached states [..., D]; unknown clearance (NaN, e.g. from MCAP logs) is skipped."""
    known = torch.isfinite(clearance)
    if not bool(known.any()):
        return {"clearance": states.new_zeros(())}
    return {"clearance": (model.clearance(states.detach())[known] - clearance[known]).square().mean()}


RANGE_LOG_OFFSET = 0.1  # m: the log-range loss counts 0.2 m vs 0.4 m as much as 1.4 m vs 2.8 m, nearly


def ranges_loss(model: WorldModel, states: Tensor, ranges: Tensor) -> Tensor:
    """Huber loss of log(range + 0.1 m) of the forward-range read-out of states [..., D] against scanned ranges
    [..., sectors]: relative error, as depth estimation scores it, so what is near (what the robot may hit) is
    learned sharply and what is far only roughly. Frames without a scan (NaN) are skipped. Not detached: the
    scanner teaches the encoder what is in the way."""
    known = torch.isfinite(ranges).all(-1)
    if not bool(known.any()):
        return states.new_zeros(())
    predicted = torch.log(model.ranges(states[known]) + RANGE_LOG_OFFSET)
    return torch.nn.functional.smooth_l1_loss(predicted, torch.log(ranges[known] + RANGE_LOG_OFFSET), beta=0.1)


def world_model_losses(model: WorldModel, target_model: WorldModel, batch: dict[str, Tensor],
                       weights: dict[str, float], generator: torch.Generator | None = None) -> dict[str, Tensor]:
    """All named loss terms of one batch of windows; "total" is what is minimised.

    batch: images uint8 [B, H+1, S, S, 3], proprio [B, H+1, 6], actions [B, H, 2], clearance [B, H+1],
    ranges [B, H+1, sectors].
    Targets are target_model's encodings of frames 1..H under stop-gradient (target_model is the model
    itself, or its EMA copy).
    """
    images, proprio, actions, clear = batch["images"], batch["proprio"], batch["actions"], batch["clearance"]
    b, h = actions.shape[:2]
    k, p = model.cfg.level2_k, model.cfg.proprio_dim
    if h % k:
        raise ValueError(f"training horizon {h} must be a multiple of level2_k {k}")
    s0 = model.encode(images[:, 0], proprio[:, 0])
    with torch.no_grad():
        target = target_model.encode(images[:, 1:].flatten(0, 1), proprio[:, 1:].flatten(0, 1)).view(b, h, -1)
    predicted, kl = model.rollout_posterior(s0, actions, target, generator)
    online = model.expand(s0)
    shifted = model.encode(random_shift(images[:, 0], SHIFT_PX, generator), proprio[:, 0])
    terms = {
        "view": rollout_loss(model.features(shifted), model.features(s0)),
        "prediction": rollout_loss(predicted[..., p:], target[..., p:]),
        "odometry": rollout_loss(predicted[..., :p], target[..., :p]),
        "kl": kl,
        "variance": vicreg_variance(online),
        "covariance": vicreg_covariance(online),
    }
    # Level 2: one jump per k actions, scored against abstract(target). Blind to the pose, it can only predict
    # the pose k steps on from the image features, so its gradient shapes the encoder towards localisation.
    h0 = model.abstract(s0)
    with torch.no_grad():
        h_target = model.abstract(target[:, k - 1::k])
    h_predicted = model.rollout2(h0, actions.view(b, h // k, k, -1))
    h_online = h0[..., p:]
    terms["level2"] = (rollout_loss(h_predicted, h_target) + weights["variance"] * vicreg_variance(h_online)
                       + weights["covariance"] * vicreg_covariance(h_online))
    if model.cfg.kind == "pixel":  # frames 0, 1, 2, 4, ..., H: the decoder is the costly part, so not every step
        picks = sorted({0, h, *(2 ** i for i in range(h.bit_length()) if 2 ** i <= h)})
        frames = images[:, picks].permute(0, 1, 4, 2, 3).float().div(255.0)
        states = torch.cat((s0.unsqueeze(1), predicted), dim=1)[:, picks]
        terms["reconstruction"] = (model.decode(states.flatten(0, 1)) - frames.flatten(0, 1)).square().mean()
    states = torch.cat((s0.unsqueeze(1), predicted), dim=1)
    terms["ranges"] = ranges_loss(model, states, batch["ranges"])
    terms.update(probe_loss(model, states, clear.clamp_min(0.0)))
    terms["total"] = sum(weights.get(name, 0.0) * value for name, value in terms.items())
    return terms
