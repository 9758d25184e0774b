"""`ojepa critic`: fit the trainable critic on frozen world-model states of recorded episodes (collect .npz or
memory_node MCAP, whose bumper contacts count as clearance 0); held-out episodes measure it."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch

from ojepa_ros.core.critic import CRITIC_FILE, Critic, CriticConfig, value_targets
from ojepa_ros.core.world_model import WorldModel
from ojepa_ros.train.encoded import encoded_episodes, fit_and_save
from ojepa_ros.train.probes import r_squared


def critic_data(model: WorldModel, files: list[Path], cfg: CriticConfig) -> list[tuple[torch.Tensor, torch.Tensor]]:
    """(states [N, D], targets [N]) per episode long enough for one full target window."""
    out = []
    for states, ep in encoded_episodes(model, files):
        if len(states) > cfg.horizon:
            out.append((states[:len(states) - cfg.horizon], value_targets(ep["clearance"], cfg)))
    if len(out) < 2:
        raise ValueError(f"need at least 2 episodes longer than {cfg.horizon} steps, got {len(out)}")
    return out


def fit_critic(model: WorldModel, files: list[Path], steps: int, seed: int,
               val_fraction: float = 0.1) -> tuple[Critic, dict[str, float]]:
    """Regress V on held-in episodes (Huber: contacts are rare and large); R^2 on held-out whole episodes."""
    torch.manual_seed(seed)
    cfg = CriticConfig(state_dim=model.cfg.embed_dim)
    episodes = critic_data(model, files, cfg)
    order = np.random.default_rng(seed).permutation(len(episodes))
    n_val = max(1, int(len(episodes) * val_fraction))
    val = [episodes[i] for i in order[:n_val]]
    train = [episodes[i] for i in order[n_val:]]
    x, y = torch.cat([s for s, _ in train]), torch.cat([t for _, t in train])
    critic = Critic(cfg)
    opt = torch.optim.AdamW(critic.parameters(), lr=1e-3, weight_decay=1e-4)
    sched = torch.optim.lr_scheduler.CosineAnnealingLR(opt, steps)
    for _ in range(steps):
        batch = torch.randint(len(x), (512,))
        opt.zero_grad()
        torch.nn.functional.huber_loss(critic(x[batch]), y[batch], delta=1.0).backward()
        opt.step()
        sched.step()
    critic.eval().requires_grad_(False)
    xv, yv = torch.cat([s for s, _ in val]), torch.cat([t for _, t in val])
    pred = critic(xv)
    risky = yv > 0.1
    metrics = {"val_r2": float(r_squared(pred[:, None], yv[:, None])[0]), "val_mae": float((pred - yv).abs().mean()),
               "val_target_mean": float(yv.mean()), "val_risky_fraction": float(risky.float().mean()),
               "val_mean_pred_risky": float(pred[risky].mean()) if risky.any() else float("nan"),
               "val_mean_pred_safe": float(pred[~risky].mean()), "frames": len(x) + len(xv)}
    return critic, metrics


def main(argv: list[str] | None = None) -> int:
    done = fit_and_save(argv, "ojepa critic", __doc__.splitlines()[0], 3000, fit_critic, CRITIC_FILE)
    if done is None:
        return 2
    metrics, args, seconds = done
    print(f"ojepa critic: {metrics['frames']} frames in {seconds:.0f} s; held-out R^2 {metrics['val_r2']:.3f}, mean "
          f"prediction {metrics['val_mean_pred_risky']:.3f} where the target is > 0.1 "
          f"({100 * metrics['val_risky_fraction']:.1f} % of frames) vs {metrics['val_mean_pred_safe']:.3f} elsewhere "
          f"-> {args.out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
