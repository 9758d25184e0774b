"""How much of the robot's pose one camera image holds: the supervised ceiling of the image-only pose probe.

    python bench/pose_ceiling.py [--minutes 30] [--threads 2] [--model models/world_model.pt] [--data data/rooms]

`ojepa eval-wm` probes the JEPA's frozen image features for (x, y, yaw). This trains the same encoder
architecture (conv net + image head of --model's config, plus a linear read-out) end to end, supervised on
the pose itself, on the same training episodes, and scores it on the same held-out episodes with the same
R^2. Supervision on the pose is the direct route to a linear read-out of it with this network and data, so
the figure is what the probe target can fairly ask of features that never see the pose. The defaults are the
issue's training budget for the world model (30 min on 2 CPU cores). Prints figures, asserts nothing.
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import numpy as np
import torch
from torch import nn

from ojepa_ros.core.losses import SHIFT_PX, random_shift
from ojepa_ros.core.model_io import load_world_model, read_metadata
from ojepa_ros.core.odometry import proprio_from_odom
from ojepa_ros.core.world_model import conv_net, mlp
from ojepa_ros.paths import default_model
from ojepa_ros.train.dataset import split_episodes
from ojepa_ros.train.episode_files import load_episode
from ojepa_ros.train.probes import pose_r_squared


def frames(files: list[Path], mean: torch.Tensor, std: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """All images uint8 [N, S, S, 3] of the episodes and their normalised (x, y, cos, sin) [N, 4]."""
    episodes = [load_episode(f) for f in files]
    images = torch.from_numpy(np.concatenate([e["images"] for e in episodes]))
    proprio = torch.from_numpy(np.concatenate([proprio_from_odom(e["odom"]) for e in episodes]))
    return images, ((proprio - mean) / std)[:, :4]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", type=Path, default=None, help="architecture, normalisation and split seed")
    parser.add_argument("--data", type=Path, default=Path("data/rooms"))
    parser.add_argument("--minutes", type=float, default=30.0, help="training time budget")
    parser.add_argument("--batch", type=int, default=128)
    parser.add_argument("--threads", type=int, default=2)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    path = args.model or default_model()
    model = load_world_model(path)
    cfg, train_config = model.cfg, read_metadata(path).get("train_config", {})
    split = split_episodes(args.data, train_config.get("val_fraction", 0.1), train_config.get("seed", 0))
    mean, std = model.proprio_mean, model.proprio_std
    train_x, train_y = frames(split["train"], mean, std)
    val_x, val_y = frames(split["val"], mean, std)
    conv, conv_out = conv_net(cfg.channels, cfg.image_size)
    net = nn.Sequential(conv, mlp([conv_out, cfg.hidden_dim, cfg.feature_dim]), nn.Linear(cfg.feature_dim, 4))
    optimiser = torch.optim.AdamW(net.parameters(), lr=1e-3, weight_decay=1e-4)
    generator = torch.Generator().manual_seed(0)

    def predict(images: torch.Tensor) -> torch.Tensor:
        with torch.no_grad():
            return torch.cat([net(chunk.permute(0, 3, 1, 2).float() / 255) for chunk in images.split(1024)])

    print(f"{len(train_x)} training / {len(val_x)} held-out frames ({len(split['val'])} episodes), "
          f"{sum(p.numel() for p in net.parameters())} parameters, {args.minutes} min on {args.threads} thread(s)")
    start, steps = time.perf_counter(), 0
    while time.perf_counter() - start < 60 * args.minutes:
        for group in optimiser.param_groups:  # cosine decay over the time budget: the best fit that budget buys
            group["lr"] = 1e-3 * 0.5 * (1 + np.cos(np.pi * (time.perf_counter() - start) / (60 * args.minutes)))
        idx = torch.randint(0, len(train_x), (args.batch,), generator=generator)
        images = random_shift(train_x[idx], SHIFT_PX, generator).permute(0, 3, 1, 2) / 255  # JEPA's view shift
        loss = (net(images) - train_y[idx]).square().mean()
        optimiser.zero_grad()
        loss.backward()
        optimiser.step()
        steps += 1
        if steps % 1000 == 0:
            r2 = pose_r_squared(predict(val_x), val_y)
            print(f"step {steps:6d}  {time.perf_counter() - start:6.0f} s  loss {loss.item():.4f}  held-out R^2 "
                  + "  ".join(f"{k} {v:.3f}" for k, v in r2.items()), flush=True)
    r2 = pose_r_squared(predict(val_x), val_y)
    print(f"supervised ceiling after {steps} steps: held-out R^2 " + "  ".join(f"{k} {v:.3f}" for k, v in r2.items()))


if __name__ == "__main__":
    main()
