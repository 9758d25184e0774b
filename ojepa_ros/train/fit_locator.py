"""`ojepa locator`: train the goal locator on frozen image features of recorded episodes, labelled by the
relative odometry between two frames of one episode (core/goal_locator.py); held-out episodes measure it."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import torch

from ojepa_ros.core.goal_locator import LOCATOR_FILE, GoalLocator, LocatorConfig, in_sight, relative_pose
from ojepa_ros.core.world_model import WorldModel
from ojepa_ros.train.encoded import encoded_episodes, fit_and_save

DISTANCE_BINS = (0.0, 0.5, 1.0, 1.5, 2.0, 2.5, 3.0, 4.0)  # m: in-sight pairs are drawn evenly from these
STRIDE = 2  # frames between the pairs' candidates (neighbours add little)
BATCH = 512


class PairSampler:
    """Batches of (features, goal features, relative xy, relative yaw, in sight): half in-sight pairs drawn
    evenly over DISTANCE_BINS (random driving rarely puts two frames 3 m apart), half any two frames."""

    def __init__(self, features: list[torch.Tensor], poses: list[np.ndarray], seed: int) -> None:
        self.lengths = np.array([len(p) for p in poses])
        longest = int(self.lengths.max())
        self.features = torch.zeros(len(features), longest, features[0].shape[-1])
        self.poses = np.zeros((len(poses), longest, 3))
        for e, (f, pose) in enumerate(zip(features, poses)):  # padded: episodes may differ in length
            self.features[e, :len(f)], self.poses[e, :len(pose)] = f, pose
        self.rng = np.random.default_rng(seed)
        groups: list[list[np.ndarray]] = [[] for _ in DISTANCE_BINS[:-1]]
        for e, pose in enumerate(poses):
            i, j = (a.ravel() for a in np.meshgrid(np.arange(0, len(pose), STRIDE), np.arange(0, len(pose), STRIDE)))
            xy, yaw = relative_pose(pose[i], pose[j])
            seen = in_sight(xy, yaw)
            which = np.digitize(np.hypot(xy[:, 0], xy[:, 1]), DISTANCE_BINS) - 1
            for k in range(len(groups)):
                pick = seen & (which == k)
                groups[k].append(np.stack([np.full(pick.sum(), e), i[pick], j[pick]], axis=1).astype(np.int32))
        self.groups = [np.concatenate(g) for g in groups if sum(len(x) for x in g)]
        if not self.groups:
            raise ValueError("no two frames of any episode see each other: nothing to train the locator on")

    def draw(self, n: int) -> list[torch.Tensor]:
        picks = [g[self.rng.integers(len(g), size=n // (2 * len(self.groups)))] for g in self.groups]
        e = self.rng.integers(len(self.lengths), size=n // 2)
        anywhere = np.stack([e, *np.floor(self.rng.random((2, len(e))) * self.lengths[e]).astype(int)], axis=1)
        e, i, j = np.concatenate(picks + [anywhere]).T
        xy, yaw = relative_pose(self.poses[e, i], self.poses[e, j])
        return [self.features[e, i], self.features[e, j], torch.from_numpy(xy).float(),
                torch.from_numpy(yaw).float(), torch.from_numpy(in_sight(xy, yaw)).float()]


def locator_loss(out: torch.Tensor, xy: torch.Tensor, yaw: torch.Tensor, seen: torch.Tensor) -> torch.Tensor:
    """L1 on position and on (sin, cos) of the turn where the goal is in sight (elsewhere it is unknowable),
    plus the in-sight classification."""
    where = (out[:, :2] - xy).abs().sum(1) + 0.5 * ((out[:, 2] - yaw.sin()).abs() + (out[:, 3] - yaw.cos()).abs())
    located = (where * seen).sum() / seen.sum().clamp(min=1)
    return located + torch.nn.functional.binary_cross_entropy_with_logits(out[:, 4], seen)


@torch.no_grad()
def locator_metrics(locator: GoalLocator, batch: list[torch.Tensor]) -> dict[str, float]:
    """Median position error (m) and bearing error (deg) of in-sight pairs per distance band; in-sight accuracy."""
    f, g, xy, _, seen = batch
    out = locator(f, g)
    dist, sure = xy.norm(dim=1), torch.sigmoid(out[:, 4])
    metrics = {"in_sight_accuracy": float(((sure > 0.5) == (seen > 0)).float().mean()),
               "false_sightings": float((sure[seen == 0] > 0.5).float().mean())}
    for lo, hi in ((0.0, 0.5), (0.5, 1.0), (1.0, 2.0), (2.0, 3.0), (3.0, 4.0)):
        band = (seen > 0) & (dist >= lo) & (dist < hi)
        if band.any():
            turn = torch.atan2(out[band, 1], out[band, 0]) - torch.atan2(xy[band, 1], xy[band, 0])
            metrics[f"error_m_{lo:g}_{hi:g}"] = float((out[band, :2] - xy[band]).norm(dim=1).median())
            metrics[f"bearing_deg_{lo:g}_{hi:g}"] = math.degrees(float(torch.atan2(turn.sin(), turn.cos()).abs().median()))
    return metrics


def fit_locator(model: WorldModel, files: list[Path], steps: int, seed: int,
                val_fraction: float = 0.1) -> tuple[GoalLocator, dict[str, float]]:
    torch.manual_seed(seed)
    features, poses = [], []
    for states, ep in encoded_episodes(model, files):
        features.append(model.features(states))
        poses.append(ep["odom"][:, :3].numpy().astype(np.float64))
    if len(features) < 2:
        raise ValueError(f"need at least 2 episodes, got {len(features)}")
    order = np.random.default_rng(seed).permutation(len(features))
    n_val = max(1, int(len(features) * val_fraction))
    val = PairSampler([features[i] for i in order[:n_val]], [poses[i] for i in order[:n_val]], seed + 1)
    train = PairSampler([features[i] for i in order[n_val:]], [poses[i] for i in order[n_val:]], seed)
    locator = GoalLocator(LocatorConfig(feature_dim=model.cfg.feature_dim))
    opt = torch.optim.Adam(locator.parameters(), lr=1e-3)
    sched = torch.optim.lr_scheduler.CosineAnnealingLR(opt, steps)
    for _ in range(steps):
        f, g, xy, yaw, seen = train.draw(BATCH)
        opt.zero_grad()
        locator_loss(locator(f, g), xy, yaw, seen).backward()
        opt.step()
        sched.step()
    locator.eval().requires_grad_(False)
    return locator, {**locator_metrics(locator, val.draw(20000)), "episodes": len(features)}


def main(argv: list[str] | None = None) -> int:
    done = fit_and_save(argv, "ojepa locator", __doc__.splitlines()[0], 8000, fit_locator, LOCATOR_FILE)
    if done is None:
        return 2
    metrics, args, seconds = done
    bands = " ".join(f"{k.removeprefix('error_m_').replace('_', '-')} m: {v:.2f} m"
                     for k, v in metrics.items() if k.startswith("error_m_"))
    print(f"ojepa locator: {metrics['episodes']} episodes in {seconds:.0f} s; held-out episodes: in-sight accuracy "
          f"{metrics['in_sight_accuracy']:.3f}, position error by distance {bands} -> {args.out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
