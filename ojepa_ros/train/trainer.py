"""Self-supervised training of the JEPA world model from collected episodes.

Per window of H actions: s_0 = Enc(frame 0) with gradient; targets Enc(frames 1..H) under stop-gradient
(or from an EMA copy of the encoder); the predictor rolls H steps from s_0 on its own outputs. Loss =
multistep prediction + VICReg variance/covariance on s_0's learned features, plus a clearance probe fitted on
detached encoded *and* predicted states (so the planner can read clearance off imagined futures);
after the last epoch the probe is refitted on the frozen model.
"""

from __future__ import annotations

import argparse
import copy
import csv
import math
import random
import time
from dataclasses import asdict
from datetime import datetime, timezone
from pathlib import Path

import numpy as np
import torch
import yaml
from torch.utils.data import DataLoader, RandomSampler
from tqdm import tqdm

from ojepa_ros.core.losses import jepa_loss, probe_loss
from ojepa_ros.core.model_io import save_world_model
from ojepa_ros.core.world_model import WorldModel, WorldModelConfig
from ojepa_ros.paths import config_file
from ojepa_ros.train.dataset import EpisodeDataset, split_episodes

NEAR_WALL = 0.2  # m: clearance below which a state counts as near a wall in the validation metrics


def state_path(out_path: Path) -> Path:
    """Where the resumable training state (optimiser, EMA target, RNG) lives, next to the model file."""
    return out_path.with_name(out_path.stem + ".state.pt")


def log_path(out_path: Path) -> Path:
    return out_path.with_name(out_path.stem + ".csv")


def seed_everything(seed: int) -> None:
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)


def training_step(model: WorldModel, target_model: WorldModel, batch: dict[str, torch.Tensor],
                  weights: dict[str, float]) -> dict[str, torch.Tensor]:
    """All loss terms of one batch of windows; "total" is what is minimised."""
    images, proprio, actions, clear = batch["images"], batch["proprio"], batch["actions"], batch["clearance"]
    b, k = images.shape[:2]
    s0 = model.encode(images[:, 0], proprio[:, 0])
    with torch.no_grad():
        target = target_model.encode(images[:, 1:].flatten(0, 1), proprio[:, 1:].flatten(0, 1)).view(b, k - 1, -1)
    predicted = model.rollout(s0, actions)
    terms = jepa_loss(model.features(s0), predicted, target, weights, model.cfg.proprio_dim)
    states = torch.cat((s0.unsqueeze(1), predicted), dim=1)
    terms.update(probe_loss(model, states, clear.clamp_min(0.0)))
    terms["total"] = terms["jepa"] + weights["clearance"] * terms["clearance"]
    return terms


@torch.no_grad()
def validate(model: WorldModel, dataset: EpisodeDataset, windows: int, batch: int) -> dict[str, float]:
    """Held-out quality of H-step imagined rollouts from encoded s_0 and of the clearance probe.

    rollout_error_ratio: latent error relative to predicting "nothing changes" (copy s_0);
    rollout_pose_rmse_m: position error averaged over the H steps; final_*: at step H;
    near_wall_recall / free_space_recall: clearance probe on either side of NEAR_WALL.
    """
    model.eval()
    picks = torch.linspace(0, len(dataset) - 1, min(windows, len(dataset))).long().unique().tolist()
    sums = dict.fromkeys(("err", "copy", "xy", "xy_h", "yaw_h", "clear", "clear_h", "near_ok", "near", "free_ok",
                          "free", "frames", "windows"), 0.0)
    features = []
    for i in range(0, len(picks), batch):
        items = [dataset[j] for j in picks[i:i + batch]]
        images, proprio, actions, clear = (torch.stack([it[key] for it in items])
                                           for key in ("images", "proprio", "actions", "clearance"))
        b, k = images.shape[:2]
        s = model.encode(images.flatten(0, 1), proprio.flatten(0, 1)).view(b, k, -1)
        predicted = model.rollout(s[:, 0], actions)
        sums["err"] += (predicted - s[:, 1:]).square().sum().item()
        sums["copy"] += (s[:, :1] - s[:, 1:]).square().sum().item()
        pose, true_pose = model.pose(predicted), model.pose(s[:, 1:])
        xy_sq = (pose[..., :2] - true_pose[..., :2]).square().sum(-1)
        sums["xy"] += xy_sq.mean(1).sum().item()
        sums["xy_h"] += xy_sq[:, -1].sum().item()
        yaw_err = torch.remainder(pose[:, -1, 2] - true_pose[:, -1, 2] + math.pi, 2 * math.pi) - math.pi
        sums["yaw_h"] += yaw_err.abs().sum().item()
        c, true_c = model.clearance(s), clear.clamp_min(0.0)
        sums["clear"] += (c - true_c).abs().sum().item()
        sums["clear_h"] += (model.clearance(predicted[:, -1]) - true_c[:, -1]).abs().sum().item()
        near = true_c < NEAR_WALL
        sums["near"] += near.sum().item()
        sums["near_ok"] += (near & (c < NEAR_WALL)).sum().item()
        sums["free"] += (~near).sum().item()
        sums["free_ok"] += (~near & (c >= NEAR_WALL)).sum().item()
        sums["frames"] += b * k
        sums["windows"] += b
        features.append(model.features(s).flatten(0, 1))
    model.train()
    n, w = sums["frames"], sums["windows"]
    return {
        "val_rollout_error_ratio": sums["err"] / max(sums["copy"], 1e-12),
        "val_rollout_pose_rmse_m": math.sqrt(sums["xy"] / w),
        "val_final_pose_rmse_m": math.sqrt(sums["xy_h"] / w),
        "val_final_yaw_mae_deg": math.degrees(sums["yaw_h"] / w),
        "val_clearance_mae_m": sums["clear"] / n,
        "val_final_clearance_mae_m": sums["clear_h"] / w,
        "val_near_wall_recall": sums["near_ok"] / max(sums["near"], 1),
        "val_free_space_recall": sums["free_ok"] / max(sums["free"], 1),
        "val_feature_std": torch.cat(features).std(0).mean().item(),
    }


@torch.no_grad()
def _probe_data(model: WorldModel, dataset: EpisodeDataset, stride: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Frozen states with their true clearance: every encoded frame, plus the imagined states of H-step
    rollouts started every `stride` frames (the planner reads clearance off imagined states)."""
    model.eval()
    states, clearance = [], []
    steps = torch.arange(dataset.horizon)
    for ep in dataset.episodes:
        s = model.encode(ep["images"], ep["proprio"])
        starts = torch.arange(0, len(ep["actions"]) - dataset.horizon + 1, stride)
        imagined = model.rollout(s[starts], ep["actions"][starts[:, None] + steps])
        states += [s, imagined.flatten(0, 1)]
        clearance += [ep["clearance"], ep["clearance"][starts[:, None] + steps + 1].flatten()]
    model.train()
    return torch.cat(states), torch.cat(clearance).clamp_min(0.0)


def fit_clearance_probe(model: WorldModel, dataset: EpisodeDataset, config: dict, generator: torch.Generator) -> float:
    """Refit the clearance probe on the final, frozen representation (the linear-probe protocol of SSL,
    with an MLP): i.i.d. batches of frozen states converge far better than the probe trained alongside."""
    states, clearance = _probe_data(model, dataset, config["probe_stride"])
    optimizer = torch.optim.Adam(model.clearance_head.parameters(), lr=config["probe_lr"])
    scheduler = torch.optim.lr_scheduler.CosineAnnealingLR(optimizer, config["probe_steps"])
    total = 0.0
    for _ in tqdm(range(config["probe_steps"]), desc="clearance probe", leave=False, disable=None):
        i = torch.randint(len(states), (config["probe_batch"],), generator=generator)
        loss = probe_loss(model, states[i], clearance[i])["clearance"]
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
        scheduler.step()
        total += loss.item()
    return total / config["probe_steps"]


def _schedule(config: dict, total_steps: int):
    """Linear warm-up, then cosine decay to 10 % of the base rate."""
    warmup = max(1, config["warmup_steps"])

    def factor(step: int) -> float:
        cosine = 0.5 * (1 + math.cos(math.pi * min(step, total_steps) / total_steps))
        return min(1.0, (step + 1) / warmup) * (0.1 + 0.9 * cosine)
    return factor


def train(config: dict, data_dir: str | Path, out_path: str | Path, resume: str | Path | None = None) -> dict:
    """Train per `config` (the "train" section of config/train.yaml); returns the last epoch's metrics.

    Writes out_path (model file, every epoch), <stem>.csv (one row per epoch, and a last row "probe" after
    the clearance probe is refitted on the frozen model) and <stem>.state.pt (resume).
    """
    out_path = Path(out_path)
    out_path.parent.mkdir(parents=True, exist_ok=True)
    seed_everything(config["seed"])
    torch.set_num_threads(config["threads"])
    split = split_episodes(data_dir, config["val_fraction"], config["seed"])
    if not split["val"]:
        raise ValueError(f"{data_dir} needs at least two episodes (one is held out for validation)")
    train_set = EpisodeDataset(split["train"], config["horizon"])
    val_set = EpisodeDataset(split["val"], config["val_horizon"])
    state = torch.load(resume, weights_only=True) if resume else None
    model_config = WorldModelConfig(**state["model_config"]) if state else WorldModelConfig(
        image_size=train_set.episodes[0]["images"].shape[1], embed_dim=config["embed_dim"],
        hidden_dim=config["hidden_dim"], probe_dim=config["probe_dim"], channels=tuple(config["channels"]),
        **train_set.normalisation())
    model = WorldModel(model_config)
    target_model = copy.deepcopy(model).requires_grad_(False) if config["ema"] else model
    optimizer = torch.optim.AdamW(model.parameters(), lr=config["lr"], weight_decay=config["weight_decay"])
    total_steps = config["epochs"] * config["steps_per_epoch"]
    scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, _schedule(config, total_steps))
    generator = torch.Generator().manual_seed(config["seed"])
    first_epoch, elapsed = 0, 0.0
    if state:
        model.load_state_dict(state["model"])
        target_model.load_state_dict(state["target"])
        optimizer.load_state_dict(state["optimizer"])
        scheduler.load_state_dict(state["scheduler"])
        generator.set_state(state["generator"])
        torch.set_rng_state(state["torch_rng"])
        first_epoch, elapsed = state["epoch"], state["seconds"]
    weights = config["weights"]
    metrics: dict = {}
    for epoch in range(first_epoch, config["epochs"]):
        start = time.perf_counter()
        sampler = RandomSampler(train_set, replacement=True, num_samples=config["steps_per_epoch"] * config["batch"],
                                generator=generator)
        loader = DataLoader(train_set, batch_size=config["batch"], sampler=sampler)
        sums: dict[str, float] = {}
        bar = tqdm(loader, desc=f"epoch {epoch + 1}/{config['epochs']}", leave=False, disable=None)
        for batch in bar:
            terms = training_step(model, target_model, batch, weights)
            optimizer.zero_grad(set_to_none=True)
            terms["total"].backward()
            torch.nn.utils.clip_grad_norm_(model.parameters(), config["grad_clip"])
            optimizer.step()
            scheduler.step()
            if target_model is not model:
                with torch.no_grad():
                    for p_target, p in zip(target_model.parameters(), model.parameters()):
                        p_target.lerp_(p, 1.0 - config["ema_tau"])
            for name, value in terms.items():
                sums[name] = sums.get(name, 0.0) + value.item()
            bar.set_postfix(loss=f"{terms['total'].item():.4f}")
        elapsed += time.perf_counter() - start
        metrics = {"epoch": epoch + 1, "step": (epoch + 1) * config["steps_per_epoch"], "seconds": round(elapsed, 1),
                   **{f"train_{k}": v / config["steps_per_epoch"] for k, v in sums.items()},
                   **validate(model, val_set, config["val_windows"], config["batch"])}
        print(" ".join(f"{k}={v:.4g}" if isinstance(v, float) else f"{k}={v}" for k, v in metrics.items()), flush=True)
        _append_csv(log_path(out_path), metrics, first=epoch == 0)
        save_world_model(model, out_path, _metadata(config, data_dir, split, metrics))
        torch.save({"model_config": asdict(model_config),
                    "model": model.state_dict(), "target": target_model.state_dict(),
                    "optimizer": optimizer.state_dict(), "scheduler": scheduler.state_dict(),
                    "generator": generator.get_state(), "torch_rng": torch.get_rng_state(),
                    "epoch": epoch + 1, "seconds": elapsed}, state_path(out_path))
    start = time.perf_counter()
    probe_mse = fit_clearance_probe(model, train_set, config, generator)
    metrics = metrics | {"epoch": "probe", "seconds": round(elapsed + time.perf_counter() - start, 1),
                         "train_clearance": probe_mse}
    metrics |= validate(model, val_set, config["val_windows"], config["batch"])
    print("clearance probe refitted: " + " ".join(f"{k}={v:.4g}" for k, v in metrics.items() if "clearance" in k
                                                   or "recall" in k), flush=True)
    _append_csv(log_path(out_path), metrics, first=False)
    save_world_model(model, out_path, _metadata(config, data_dir, split, metrics))
    return metrics


def _metadata(config: dict, data_dir: str | Path, split: dict[str, list[Path]], metrics: dict) -> dict:
    return {"created": datetime.now(timezone.utc).isoformat(timespec="seconds"), "data_dir": str(data_dir),
            "train_episodes": len(split["train"]), "val_episodes": len(split["val"]),
            "train_config": config, "metrics": metrics, "torch": str(torch.__version__)}


def _append_csv(path: Path, row: dict, first: bool) -> None:
    with path.open("w" if first else "a", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=list(row))
        if first:
            writer.writeheader()
        writer.writerow(row)


def main(argv: list[str] | None = None) -> int:
    """`ojepa train`: settings from the "train" section of config/train.yaml; flags override them."""
    parser = argparse.ArgumentParser(prog="ojepa train", description=__doc__.splitlines()[0])
    parser.add_argument("--config", type=Path, default=config_file("train.yaml"))
    parser.add_argument("--data", type=Path, default=Path("data/rooms"), help="directory of episode .npz files")
    parser.add_argument("--out", type=Path, default=Path("models/world_model.pt"))
    parser.add_argument("--resume", action="store_true", help="continue from <out stem>.state.pt")
    for name in ("epochs", "steps-per-epoch", "batch", "horizon", "threads", "seed"):
        parser.add_argument(f"--{name}", type=int, help="overrides the config file")
    args = parser.parse_args(argv)
    config = yaml.safe_load(args.config.read_text())["train"]
    config.update({k: v for k, v in vars(args).items() if k in config and v is not None})
    if args.resume and not state_path(args.out).is_file():
        parser.error(f"--resume: no training state {state_path(args.out)} (it is written after each epoch)")
    metrics = train(config, args.data, args.out, state_path(args.out) if args.resume else None)
    print(f"train: wrote {args.out}; final validation: " +
          ", ".join(f"{k}={v:.4g}" for k, v in metrics.items() if k.startswith("val_")))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
