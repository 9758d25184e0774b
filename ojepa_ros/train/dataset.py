"""Windows of H+1 frames (H actions) from the episode .npz files that `collect` writes.

Episodes are split into train and val as a whole, so validation windows never overlap training ones.
All episodes are held in memory (uint8 images: ~12 kB a 64x64 frame), which keeps sampling cheap.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch
from torch.utils.data import Dataset

from ojepa_ros.core.world_model import proprio_from_odom


def split_episodes(data_dir: str | Path, val_fraction: float, seed: int) -> dict[str, list[Path]]:
    """{"train": [...], "val": [...]}: a seeded shuffle of the episode files; val gets at least one if >= 2."""
    files = sorted(Path(data_dir).glob("*.npz"))
    if not files:
        raise FileNotFoundError(f"no episode .npz files in {data_dir}; run `ojepa collect` first")
    order = np.random.default_rng(seed).permutation(len(files))
    n_val = max(1, round(val_fraction * len(files))) if len(files) >= 2 and val_fraction > 0 else 0
    return {"train": [files[i] for i in sorted(order[n_val:])], "val": [files[i] for i in sorted(order[:n_val])]}


class EpisodeDataset(Dataset):
    """Item i: {"images" uint8 [H+1, S, S, 3], "proprio" [H+1, 6], "actions" [H, 2], "clearance" [H+1]}."""

    def __init__(self, files: list[Path], horizon: int) -> None:
        self.horizon = horizon
        self.episodes = []
        for path in files:
            with np.load(path) as ep:
                self.episodes.append({
                    "images": torch.from_numpy(ep["images"]),
                    "proprio": proprio_from_odom(torch.from_numpy(ep["odom"]).float()),
                    "actions": torch.from_numpy(ep["actions"]).float(),
                    "clearance": torch.from_numpy(ep["clearance"]).float(),
                })
        # (episode, first frame) of every window that fits inside its episode.
        self.index = [(e, t) for e, ep in enumerate(self.episodes) for t in range(len(ep["actions"]) - horizon + 1)]

    def __len__(self) -> int:
        return len(self.index)

    def __getitem__(self, i: int) -> dict[str, torch.Tensor]:
        e, t = self.index[i]
        ep, end = self.episodes[e], t + self.horizon
        return {"images": ep["images"][t:end + 1], "proprio": ep["proprio"][t:end + 1],
                "actions": ep["actions"][t:end], "clearance": ep["clearance"][t:end + 1]}

    def normalisation(self) -> dict[str, list[float]]:
        """Proprio mean/std and per-dimension action scale (max |a|) for WorldModelConfig."""
        proprio = torch.cat([ep["proprio"] for ep in self.episodes])
        actions = torch.cat([ep["actions"] for ep in self.episodes])
        return {"proprio_mean": proprio.mean(0).tolist(),
                "proprio_std": proprio.std(0).clamp_min(1e-3).tolist(),
                "action_scale": actions.abs().amax(0).clamp_min(1e-3).tolist()}
