"""Self-supervised training of the JEPA world model from collected episodes.

Per window of H actions: s_0 = Enc(frame 0) with gradient; targets Enc(frames 1..H) under stop-gradient
(or from an EMA copy of the encoder); the predictor rolls H steps from s_0 on its own outputs with z from
its posterior. Loss terms: see core/losses.world_model_losses. After the last epoch the probes are
refitted on the frozen model: the clearance MLP (on encoded and imagined states, since the planner reads
clearance off imagined futures) and the linear image-only pose probe (closed form).
"""

from __future__ import annotations

import argparse
import copy
import csv
import math
import random
import time
from dataclasses import asdict, replace
from datetime import datetime, timezone
from pathlib import Path

import numpy as np
import torch
import yaml
from torch.utils.data import DataLoader, RandomSampler
from tqdm import tqdm

from ojepa_ros.core.losses import probe_loss, world_model_losses
from ojepa_ros.core.model_io import load_world_model, read_metadata, save_world_model
from ojepa_ros.core.sensing import RangeLabels
from ojepa_ros.core.world_model import KINDS, WorldModel, WorldModelConfig
from ojepa_ros.paths import config_file
from ojepa_ros.train.dataset import EpisodeDataset, split_episodes
from ojepa_ros.train.distributed import DistContext
from ojepa_ros.train.encoded import encode_frames
from ojepa_ros.train.plots import plot_training_log
from ojepa_ros.train.probes import effective_rank, fit_linear, pose_r_squared, pose_targets

NEAR_WALL = 0.2  # m: clearance below which a state counts as near a wall in the validation metrics
PROBE_SETTINGS = ("probe_dim", "probe_steps", "probe_batch", "probe_lr", "probe_stride")


def state_path(out_path: Path) -> Path:
    """Where the resumable training state (optimiser, EMA target, RNG) lives, next to the model file."""
    return out_path.with_name(out_path.stem + ".state.pt")


def log_path(out_path: Path) -> Path:
    return out_path.with_name(out_path.stem + ".csv")


def seed_everything(seed: int) -> None:
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)


@torch.no_grad()
def validate(model: WorldModel, dataset: EpisodeDataset, windows: int, batch: int) -> dict[str, float]:
    """Held-out quality of H-step imagined rollouts (z = prior mean) from encoded s_0, and of the probes.

    rollout_error_ratio: latent error relative to predicting "nothing changes" (copy s_0);
    level2_error_ratio: the same for the level-2 jumps (h after each k actions vs copy h_0);
    rollout_pose_rmse_m: position error averaged over the H steps; final_*: at step H;
    near_wall_recall / free_space_recall: clearance probe on either side of NEAR_WALL;
    ranges_mae_m / final_ranges_mae_m: forward ranges read from encoded states / from imagined states at step H;
    feature_std / effective_rank: of the image features (collapse shows as std -> 0, rank -> 1).
    """
    model.eval()
    k = model.cfg.level2_k
    picks = torch.linspace(0, len(dataset) - 1, min(windows, len(dataset))).long().unique().tolist()
    sums = dict.fromkeys(("err", "copy", "err2", "copy2", "xy", "xy_h", "yaw_h", "clear", "clear_h", "near_ok", "near",
                          "free_ok", "free", "frames", "windows", "rng", "rng_h", "rng_n", "rng_hn"), 0.0)
    features = []
    for i in range(0, len(picks), batch):
        items = [dataset[j] for j in picks[i:i + batch]]
        images, proprio, actions, clear, ranges = (torch.stack([it[key] for it in items]) for key in
                                                   ("images", "proprio", "actions", "clearance", "ranges"))
        b, n = images.shape[:2]
        s = model.encode(images.flatten(0, 1), proprio.flatten(0, 1)).view(b, n, -1)
        predicted = model.rollout(s[:, 0], actions)
        sums["err"] += (predicted - s[:, 1:]).square().sum().item()
        sums["copy"] += (s[:, :1] - s[:, 1:]).square().sum().item()
        jumps = (n - 1) // k
        if jumps:
            h0, h = model.abstract(s[:, 0]), model.abstract(s[:, k::k][:, :jumps])
            h_predicted = model.rollout2(h0, actions[:, :jumps * k].reshape(b, jumps, k, -1))
            sums["err2"] += (h_predicted - h).square().sum().item()
            sums["copy2"] += (h0.unsqueeze(1) - h).square().sum().item()
        pose, true_pose = model.pose(predicted), model.pose(s[:, 1:])
        xy_sq = (pose[..., :2] - true_pose[..., :2]).square().sum(-1)
        sums["xy"] += xy_sq.mean(1).sum().item()
        sums["xy_h"] += xy_sq[:, -1].sum().item()
        yaw_err = torch.remainder(pose[:, -1, 2] - true_pose[:, -1, 2] + math.pi, 2 * math.pi) - math.pi
        sums["yaw_h"] += yaw_err.abs().sum().item()
        known = torch.isfinite(clear)
        c, true_c = model.clearance(s)[known], clear[known].clamp_min(0.0)
        sums["clear"] += (c - true_c).abs().sum().item()
        last = known[:, -1]
        sums["clear_h"] += (model.clearance(predicted[:, -1])[last] - clear[:, -1][last]).abs().sum().item()
        near = true_c < NEAR_WALL
        sums["near"] += near.sum().item()
        sums["near_ok"] += (near & (c < NEAR_WALL)).sum().item()
        sums["free"] += (~near).sum().item()
        sums["free_ok"] += (~near & (c >= NEAR_WALL)).sum().item()
        sums["frames"] += known.sum().item()
        scanned = torch.isfinite(ranges).all(-1)
        sums["rng"] += (model.ranges(s)[scanned] - ranges[scanned]).abs().mean(-1).sum().item()
        sums["rng_n"] += scanned.sum().item()
        end = scanned[:, -1]
        sums["rng_h"] += (model.ranges(predicted[:, -1])[end] - ranges[:, -1][end]).abs().mean(-1).sum().item()
        sums["rng_hn"] += end.sum().item()
        sums["windows"] += b
        features.append(model.features(s).flatten(0, 1))
    model.train()
    w, f = sums["windows"], torch.cat(features)
    return {
        "val_rollout_error_ratio": sums["err"] / max(sums["copy"], 1e-12),
        "val_level2_error_ratio": sums["err2"] / max(sums["copy2"], 1e-12),
        "val_rollout_pose_rmse_m": math.sqrt(sums["xy"] / w),
        "val_final_pose_rmse_m": math.sqrt(sums["xy_h"] / w),
        "val_final_yaw_mae_deg": math.degrees(sums["yaw_h"] / w),
        "val_clearance_mae_m": sums["clear"] / max(sums["frames"], 1),
        "val_final_clearance_mae_m": sums["clear_h"] / w,
        "val_ranges_mae_m": sums["rng"] / max(sums["rng_n"], 1),
        "val_final_ranges_mae_m": sums["rng_h"] / max(sums["rng_hn"], 1),
        "val_near_wall_recall": sums["near_ok"] / max(sums["near"], 1),
        "val_free_space_recall": sums["free_ok"] / max(sums["free"], 1),
        "val_feature_std": f.std(0).mean().item(),
        "val_effective_rank": effective_rank(f),
    }


def encode_episodes(model: WorldModel, dataset: EpisodeDataset) -> list[torch.Tensor]:
    """Encoded states [T+1, D] of every frame of every episode (frozen model)."""
    return [encode_frames(model, ep["images"], ep["proprio"]) for ep in dataset.episodes]


def fit_pose_probe(model: WorldModel, train_states: torch.Tensor, val_states: torch.Tensor) -> dict[str, float]:
    """Fit the linear image-only pose probe (features -> normalised x, y, cos, sin) in closed form on the training
    frames; returns its held-out R^2 for x, y and yaw (the mean over cos and sin)."""
    w, b = fit_linear(model.features(train_states), pose_targets(train_states))
    with torch.no_grad():
        model.pose_head.weight.copy_(w.T)
        model.pose_head.bias.copy_(b)
        r2 = pose_r_squared(model.pose_head(model.features(val_states)), pose_targets(val_states))
    return {f"val_probe_r2_{k}": v for k, v in r2.items()}


@torch.no_grad()
def _probe_data(model: WorldModel, dataset: EpisodeDataset, encoded: list[torch.Tensor],
                stride: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Frozen states with their true clearance: every encoded frame, plus the imagined states of H-step
    rollouts started every `stride` frames (the planner reads clearance off imagined states)."""
    model.eval()
    states, clearance = [], []
    steps = torch.arange(dataset.horizon)
    for ep, s in zip(dataset.episodes, encoded):
        starts = torch.arange(0, len(ep["actions"]) - dataset.horizon + 1, stride)
        imagined = model.rollout(s[starts], ep["actions"][starts[:, None] + steps])
        states += [s, imagined.flatten(0, 1)]
        clearance += [ep["clearance"], ep["clearance"][starts[:, None] + steps + 1].flatten()]
    model.train()
    states, clearance = torch.cat(states), torch.cat(clearance).clamp_min(0.0)
    known = torch.isfinite(clearance)
    return states[known], clearance[known]


def fit_clearance_probe(model: WorldModel, dataset: EpisodeDataset, encoded: list[torch.Tensor], config: dict,
                        generator: torch.Generator) -> float:
    """Refit the clearance probe on the final, frozen representation (the linear-probe protocol of SSL,
    with an MLP): i.i.d. batches of frozen states converge far better than the probe trained alongside."""
    states, clearance = _probe_data(model, dataset, encoded, config["probe_stride"])
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


class _Losses(torch.nn.Module):
    """The loss as a module's forward: DistributedDataParallel averages gradients only through its wrapper's forward."""

    def __init__(self, model: WorldModel, weights: dict[str, float]) -> None:
        super().__init__()
        self.model, self.weights = model, weights

    def forward(self, batch: dict[str, torch.Tensor], target_model: WorldModel,
                generator: torch.Generator) -> dict[str, torch.Tensor]:
        return world_model_losses(self.model, target_model, batch, self.weights, generator)


def train(config: dict, data: str | Path | list, out_path: str | Path, resume: str | Path | None = None) -> dict:
    """Train per `config` (the "train" section of config/train.yaml); returns the last epoch's metrics.

    data: episode directories/files (`ojepa collect` .npz and memory_node MCAP). Under torchrun each rank
    draws its own windows (batch / world_size each) and DDP averages the gradients; rank 0 alone prints and
    writes out_path (model file, every epoch), <stem>.csv + <stem>.png (one row per epoch, and a last row
    "probe" after the probes are refitted on the frozen model) and <stem>.state.pt (resume).
    """
    ctx = DistContext.from_env().init()
    try:
        return _train(ctx, config, data, Path(out_path), resume)
    finally:
        ctx.close()


def _train(ctx: DistContext, config: dict, data: str | Path | list, out_path: Path,
           resume: str | Path | None) -> dict:
    out_path.parent.mkdir(parents=True, exist_ok=True)
    seed_everything(config["seed"])
    torch.set_num_threads(max(1, config["threads"] // ctx.world_size))
    state = torch.load(resume, weights_only=True, map_location="cpu") if resume else None
    split, train_set, val_set = _episode_sets(config, data, state["model_config"]["image_size"] if state else None)
    model_config = WorldModelConfig(**state["model_config"]) if state else WorldModelConfig(
        image_size=train_set.image_size, embed_dim=config["embed_dim"],
        hidden_dim=config["hidden_dim"], probe_dim=config["probe_dim"], channels=tuple(config["channels"]),
        z_dim=config["z_dim"], level2_k=config["level2_k"], level2_dim=config["level2_dim"], kind=config["kind"],
        expander_dim=config["expander_dim"], range_sectors=config["range_sectors"], range_fov=config["range_fov"],
        range_cap=config["range_cap"], **train_set.normalisation())
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
    losses = ctx.wrap(_Losses(model, config["weights"]), find_unused_parameters=True)
    batch_size = config["batch"] // ctx.world_size
    metrics: dict = {}
    for epoch in range(first_epoch, config["epochs"]):
        if ctx.world_size > 1:  # each rank its own windows, reproducible on resume without gathering generator states
            generator.manual_seed(int(np.random.SeedSequence([config["seed"], epoch, ctx.rank]).generate_state(1)[0]))
        start = time.perf_counter()
        sampler = RandomSampler(train_set, replacement=True, num_samples=config["steps_per_epoch"] * batch_size,
                                generator=generator)
        loader = DataLoader(train_set, batch_size=batch_size, sampler=sampler)
        sums: dict[str, float] = {}
        bar = tqdm(loader, desc=f"epoch {epoch + 1}/{config['epochs']}", leave=False,
                   disable=None if ctx.is_main else True)
        for batch in bar:
            terms = losses(batch, target_model, generator)
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
        epoch_seconds = time.perf_counter() - start
        elapsed += epoch_seconds
        metrics = {"epoch": epoch + 1, "step": (epoch + 1) * config["steps_per_epoch"], "seconds": round(elapsed, 1),
                   "samples_per_s": round(config["steps_per_epoch"] * batch_size * ctx.world_size / epoch_seconds, 2),
                   **ctx.mean({f"train_{k}": v / config["steps_per_epoch"] for k, v in sums.items()}),
                   **validate(model, val_set, config["val_windows"], config["batch"])}
        if ctx.is_main:
            print(" ".join(f"{k}={v:.4g}" if isinstance(v, float) else f"{k}={v}" for k, v in metrics.items()),
                  flush=True)
            _append_csv(log_path(out_path), metrics, first=epoch == 0)
            plot_training_log(log_path(out_path))
            save_world_model(model, out_path, _metadata(config, data, split, metrics))
            torch.save({"model_config": asdict(model_config),
                        "model": model.state_dict(), "target": target_model.state_dict(),
                        "optimizer": optimizer.state_dict(), "scheduler": scheduler.state_dict(),
                        "generator": generator.get_state(), "torch_rng": torch.get_rng_state(),
                        "epoch": epoch + 1, "seconds": elapsed}, state_path(out_path))
    if not ctx.is_main:
        return {}
    return _fit_probes(model, train_set, val_set, config, generator, metrics, elapsed, data, split, out_path)


def range_labels(config: dict) -> RangeLabels:
    """The scan -> label settings of a train config (robot_radius, scan_max, range_sectors / fov / cap)."""
    return RangeLabels(config["robot_radius"], config["scan_max"], config["range_sectors"], config["range_fov"],
                       config["range_cap"])


def _episode_sets(config: dict, data: str | Path | list,
                  image_size: int | None) -> tuple[dict[str, list[Path]], EpisodeDataset, EpisodeDataset]:
    """The split (seeded, so a refit sees its training's split) and the training and held-out windows."""
    split = split_episodes(data, config["val_fraction"], config["seed"])
    if not split["val"]:
        raise ValueError(f"{data} needs at least two episodes (one is held out for validation)")
    labels = range_labels(config)
    train_set = EpisodeDataset(split["train"], config["horizon"], image_size=image_size, labels=labels)
    val_set = EpisodeDataset(split["val"], config["val_horizon"], image_size=train_set.image_size, labels=labels)
    return split, train_set, val_set


def _fit_probes(model: WorldModel, train_set: EpisodeDataset, val_set: EpisodeDataset, config: dict,
                generator: torch.Generator, metrics: dict, elapsed: float, data: str | Path | list,
                split: dict[str, list[Path]], out_path: Path) -> dict:
    """Fit the probes on the frozen model, log the "probe" row and write the model file."""
    start = time.perf_counter()
    train_states = encode_episodes(model, train_set)
    probe_mse = fit_clearance_probe(model, train_set, train_states, config, generator)
    pose_r2 = fit_pose_probe(model, torch.cat(train_states), torch.cat(encode_episodes(model, val_set)))
    metrics = metrics | {"epoch": "probe", "seconds": round(elapsed + time.perf_counter() - start, 1),
                         "train_clearance": probe_mse}
    metrics |= validate(model, val_set, config["val_windows"], config["batch"]) | pose_r2
    print("probes refitted: " + " ".join(f"{k}={v:.4g}" for k, v in metrics.items() if "clearance" in k
                                         or "recall" in k or "probe" in k), flush=True)
    _append_csv(log_path(out_path), metrics, first=False)
    plot_training_log(log_path(out_path))
    save_world_model(model, out_path, _metadata(config, data, split, metrics))
    return metrics


def refit_probes(config: dict, data: str | Path | list, out_path: str | Path) -> dict:
    """Refit the probes of the trained model at out_path with this config's probe settings (probe_dim,
    probe_steps, ...), its encoder and predictors untouched: the probes read a frozen
    representation, so a better probe needs no retraining. Same episodes and split as its training."""
    out_path = Path(out_path)
    old = load_world_model(out_path)
    trained = read_metadata(out_path)
    torch.set_num_threads(config["threads"])  # how to run it is the caller's; what was trained is the file's
    config = trained["train_config"] | {k: config[k] for k in PROBE_SETTINGS}
    seed_everything(config["seed"])
    split, train_set, val_set = _episode_sets(config, data, old.cfg.image_size)
    model = WorldModel(replace(old.cfg, probe_dim=config["probe_dim"]))
    model.load_state_dict({k: v for k, v in old.state_dict().items() if not k.startswith("clearance_head.")},
                          strict=False)
    return _fit_probes(model, train_set, val_set, config, torch.Generator().manual_seed(config["seed"]),
                       trained["metrics"], trained["metrics"]["seconds"], data, split, out_path)


def _metadata(config: dict, data: str | Path | list, split: dict[str, list[Path]], metrics: dict) -> dict:
    sources = [str(p) for p in data] if isinstance(data, (list, tuple)) else [str(data)]
    return {"created": datetime.now(timezone.utc).isoformat(timespec="seconds"), "data_dir": sources,
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
    parser.add_argument("--data", type=Path, nargs="+", default=[Path("data/rooms")],
                        help="episode directories or files: `ojepa collect` .npz and/or memory_node MCAP episodes")
    parser.add_argument("--out", type=Path, default=Path("models/world_model.pt"))
    parser.add_argument("--resume", action="store_true", help="continue from <out stem>.state.pt")
    parser.add_argument("--probes-only", action="store_true",
                        help="refit only the probes of the trained model at --out with this config's probe settings "
                             f"({', '.join(PROBE_SETTINGS)}); encoder and predictors stay as trained")
    for name in ("epochs", "steps-per-epoch", "batch", "horizon", "threads", "seed"):
        parser.add_argument(f"--{name}", type=int, help="overrides the config file")
    parser.add_argument("--kind", choices=KINDS, help="model kind: jepa, or the pixel-reconstruction baseline")
    parser.add_argument("--weight", action="append", default=[], metavar="TERM=VALUE",
                        help="override one loss weight, e.g. --weight variance=0 --weight covariance=0 (no regulariser)")
    parser.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                        help="override any other train setting, e.g. --set range_sectors=7")
    args = parser.parse_args(argv)
    config = yaml.safe_load(args.config.read_text())["train"]
    config.update({k: v for k, v in vars(args).items() if k in config and v is not None})
    for item in args.set:
        key, _, value = item.partition("=")
        if key not in config or key == "weights":
            parser.error(f"--set {item}: unknown setting {key!r} (loss weights: --weight)")
        config[key] = yaml.safe_load(value)
    for item in args.weight:
        term, _, value = item.partition("=")
        if term not in config["weights"]:
            parser.error(f"--weight {item}: unknown term {term!r}; terms: {', '.join(config['weights'])}")
        try:
            config["weights"][term] = float(value)
        except ValueError:
            parser.error(f"--weight {item}: {value!r} is not a number")
    if args.resume and not state_path(args.out).is_file():
        parser.error(f"--resume: no training state {state_path(args.out)} (it is written after each epoch)")
    if args.probes_only:
        if args.resume or not args.out.is_file():
            parser.error(f"--probes-only refits the probes of an existing model: {args.out} "
                         + ("is missing" if not args.out.is_file() else "(drop --resume)"))
        if "train_config" not in read_metadata(args.out):
            parser.error(f"--probes-only: {args.out} records no training settings (not written by `ojepa train`)")
        metrics = refit_probes(config, args.data, args.out)
    else:
        metrics = train(config, args.data, args.out, state_path(args.out) if args.resume else None)
    if not metrics:  # a torchrun rank other than 0
        return 0
    print(f"train: wrote {args.out}; final validation: " +
          ", ".join(f"{k}={v:.4g}" for k, v in metrics.items() if k.startswith("val_")))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
