"""Windows of H+1 frames (H actions) from episode files: `ojepa collect` .npz and memory_node MCAP alike.

Episodes are split into train and val as a whole, so validation windows never overlap training ones.
All episodes are held in memory (uint8 images: ~12 kB a 64x64 frame), which keeps sampling cheap.
The clearance and forward-range labels come from the recorded scan (NaN where a source has none); the
losses mask NaNs.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch
from torch.utils.data import Dataset

from ojepa_ros.core.odometry import proprio_from_odom
from ojepa_ros.core.sensing import RangeLabels
from ojepa_ros.train.episode_files import find_episodes, load_episode


def split_episodes(sources: str | Path | list[str | Path], val_fraction: float, seed: int) -> dict[str, list[Path]]:
    """{"train": [...], "val": [...]}: a seeded shuffle of the episode files found in `sources` (a directory,
    file, or a list of them; see find_episodes); val gets at least one if >= 2."""
    files = find_episodes(sources)
    if not files:
        where = sources if isinstance(sources, (str, Path)) else ", ".join(map(str, sources))
        raise FileNotFoundError(f"no episode .npz files in {where}; run `ojepa collect` first")
    order = np.random.default_rng(seed).permutation(len(files))
    n_val = max(1, round(val_fraction * len(files))) if len(files) >= 2 and val_fraction > 0 else 0
    return {"train": [files[i] for i in sorted(order[n_val:])], "val": [files[i] for i in sorted(order[:n_val])]}


class EpisodeDataset(Dataset):
    """Item i: {"images" uint8 [H+1, S, S, 3], "proprio" [H+1, 6], "actions" [H, 2], "clearance" [H+1],
    "ranges" [H+1, sectors]}.

    Every episode's images are resized to image_size (None: the first episode's size), so .npz and MCAP
    episodes recorded at different resolutions mix.
    """

    def __init__(self, files: list[Path], horizon: int, image_size: int | None = None,
                 labels: RangeLabels = RangeLabels()) -> None:
        self.horizon = horizon
        self.image_size = image_size
        self.episodes = []
        for path in files:
            ep = load_episode(path, self.image_size, labels)
            self.image_size = ep["images"].shape[1]
            self.episodes.append({
                "images": torch.from_numpy(ep["images"]),
                "proprio": torch.from_numpy(proprio_from_odom(ep["odom"])),
                "actions": torch.from_numpy(ep["actions"]),
                "clearance": torch.from_numpy(ep["clearance"]),
                "ranges": torch.from_numpy(ep["ranges"]),
            })
        # (episode, first frame) of every window that fits inside its episode.
        self.index = [(e, t) for e, ep in enumerate(self.episodes) for t in range(len(ep["actions"]) - horizon + 1)]

    def __len__(self) -> int:
        return len(self.index)

    def __getitem__(self, i: int) -> dict[str, torch.Tensor]:
        e, t = self.index[i]
        ep, end = self.episodes[e], t + self.horizon
        return {"images": ep["images"][t:end + 1], "proprio": ep["proprio"][t:end + 1],
                "actions": ep["actions"][t:end], "clearance": ep["clearance"][t:end + 1],
                "ranges": ep["ranges"][t:end + 1]}

    def normalisation(self) -> dict[str, list[float]]:
        """Proprio mean/std and per-dimension action scale (max |a|) for WorldModelConfig; NaNs are ignored."""
        proprio = torch.cat([ep["proprio"] for ep in self.episodes])
        actions = torch.cat([ep["actions"] for ep in self.episodes])
        mean = proprio.nanmean(0)
        count = (~proprio.isnan()).sum(0)
        std = ((proprio - mean).square().nansum(0) / (count - 1).clamp_min(1)).sqrt()  # unbiased, as Tensor.std
        return {"proprio_mean": mean.tolist(),
                "proprio_std": std.clamp_min(1e-3).tolist(),
                "action_scale": actions.abs().nan_to_num(0.0).amax(0).clamp_min(1e-3).tolist()}
