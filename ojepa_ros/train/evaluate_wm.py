"""`ojepa eval-wm`: what the world models learned, on held-out episodes, as a table and a plot.

Per model: k-step latent prediction error (z = prior mean) relative to the copy-last-state baseline, for
k = 1, 4, 16 and for the level-2 jumps; linear (and small-MLP) probe R^2 of x, y, yaw from the image
features alone; per-dimension feature std and effective rank (collapse shows as std -> 0, rank -> 1);
forward-range error (what the camera says is in the way, against the scanner: all, and where the scanner saw
something within 1 m); parameter counts; optionally the closed-loop success of the MPC agent planning with
that model on held-out layouts, two obstacles on each path. Every model is scored on episodes it never saw:
with --heldout, episodes collected in held-out layouts (`ojepa collect --split heldout`); otherwise the
episodes its own training held out (same split seed) from its training worlds.
"""

from __future__ import annotations

import argparse
import json
import math
import sys
from pathlib import Path

import numpy as np
import torch

from ojepa_ros.core.model_io import ModelFileError, load_world_model, read_metadata
from ojepa_ros.core.mpc import LOW_LEVEL_ONLY
from ojepa_ros.core.world_model import WorldModel
from ojepa_ros.paths import config_file
from ojepa_ros.train.dataset import EpisodeDataset, split_episodes
from ojepa_ros.train.episode_files import find_episodes
from ojepa_ros.train.evaluate import Scenario, actor_params, evaluate, monitor_config
from ojepa_ros.train.probes import effective_rank, fit_linear, pose_r_squared, pose_targets
from ojepa_ros.train.trainer import encode_episodes

STEPS = (1, 4, 16)
PROBE_TARGETS = ("x", "y", "yaw")


@torch.no_grad()
def prediction_ratios(model: WorldModel, encoded: list[torch.Tensor], dataset: EpisodeDataset,
                      stride: int = 4) -> dict[str, float]:
    """sum |pred_k - s_k|^2 / sum |s_0 - s_k|^2 over rollouts started every `stride` frames (k in STEPS), and the
    same for level 2 after 1 and 2 jumps of level2_k steps."""
    horizon, k2 = max(STEPS), model.cfg.level2_k
    err, copy = dict.fromkeys(STEPS, 0.0), dict.fromkeys(STEPS, 0.0)
    err2, copy2 = dict.fromkeys((1, 2), 0.0), dict.fromkeys((1, 2), 0.0)
    steps = torch.arange(horizon)
    for ep, s in zip(dataset.episodes, encoded):
        starts = torch.arange(0, len(ep["actions"]) - horizon + 1, stride)
        actions = ep["actions"][starts[:, None] + steps]
        predicted = model.rollout(s[starts], actions)
        for k in STEPS:
            err[k] += (predicted[:, k - 1] - s[starts + k]).square().sum().item()
            copy[k] += (s[starts] - s[starts + k]).square().sum().item()
        jumps = min(2, horizon // k2)
        h0 = model.abstract(s[starts])
        h_pred = model.rollout2(h0, actions[:, :jumps * k2].reshape(len(starts), jumps, k2, -1))
        for j in range(1, jumps + 1):
            h_true = model.abstract(s[starts + j * k2])
            err2[j] += (h_pred[:, j - 1] - h_true).square().sum().item()
            copy2[j] += (h0 - h_true).square().sum().item()
    out = {f"pred_ratio_k{k}": err[k] / max(copy[k], 1e-12) for k in STEPS}
    out |= {f"level2_ratio_k{j * k2}": err2[j] / max(copy2[j], 1e-12) for j in (1, 2) if copy2[j]}
    return out


NEAR = 1.0  # m: returns nearer than this are what the robot may soon touch


@torch.no_grad()
def ranges_errors(model: WorldModel, states: torch.Tensor, dataset: EpisodeDataset) -> dict[str, float]:
    """Mean absolute error (m) of the forward ranges read from encoded states [N, D] against the scanner, over
    every sector and over the sectors where the scanner saw something within NEAR."""
    labels = torch.cat([ep["ranges"] for ep in dataset.episodes])
    known = torch.isfinite(labels).all(-1)
    if not bool(known.any()):
        return {"ranges_mae_m": math.nan, "near_ranges_mae_m": math.nan}
    error = (model.ranges(states[known]) - labels[known]).abs()
    near = labels[known] < NEAR
    return {"ranges_mae_m": error.mean().item(),
            "near_ranges_mae_m": error[near].mean().item() if bool(near.any()) else math.nan}


def mlp_probe_r2(train_x: torch.Tensor, train_y: torch.Tensor, val_x: torch.Tensor, val_y: torch.Tensor,
                 steps: int = 2000, seed: int = 0) -> dict[str, float]:
    """R^2 of a 2-layer MLP probe (128 units) trained on frozen features: what is there, if not linearly."""
    torch.manual_seed(seed)
    mean, std = train_x.mean(0), train_x.std(0).clamp_min(1e-6)
    probe = torch.nn.Sequential(torch.nn.Linear(train_x.shape[1], 128), torch.nn.SiLU(), torch.nn.Linear(128, 128),
                                torch.nn.SiLU(), torch.nn.Linear(128, train_y.shape[1]))
    optimizer = torch.optim.Adam(probe.parameters(), lr=3e-3)
    scheduler = torch.optim.lr_scheduler.CosineAnnealingLR(optimizer, steps)
    generator = torch.Generator().manual_seed(seed)
    with torch.enable_grad():
        for _ in range(steps):
            i = torch.randint(len(train_x), (512,), generator=generator)
            loss = (probe((train_x[i] - mean) / std) - train_y[i]).square().mean()
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
            scheduler.step()
    return pose_r_squared(probe((val_x - mean) / std), val_y)


@torch.no_grad()
def evaluate_world_model(path: Path, data: Path, plan_pairs: int = 0, params: dict | None = None,
                         heldout: Path | None = None) -> dict:
    """All figures of one model file on the episodes its training held out, or on `heldout`'s episodes (probes
    are then fitted on the training episodes and scored there)."""
    model = load_world_model(path)
    train_config = read_metadata(path).get("train_config", {})
    split = split_episodes(data, train_config.get("val_fraction", 0.1), train_config.get("seed", 0))
    if heldout is not None:
        split["val"] = find_episodes(heldout)
    train_set, val_set = EpisodeDataset(split["train"], max(STEPS)), EpisodeDataset(split["val"], max(STEPS))
    train_states, val_states = encode_episodes(model, train_set), encode_episodes(model, val_set)
    train_all, val_all = torch.cat(train_states), torch.cat(val_states)
    train_f, val_f = model.features(train_all), model.features(val_all)
    w, b = fit_linear(train_f, pose_targets(train_all))
    report = {
        "model": str(path), "kind": model.cfg.kind,
        "weights": train_config.get("weights", {}),
        "planning_parameters": model.planning_parameters(),
        "parameters": sum(p.numel() for p in model.parameters()),
        **prediction_ratios(model, val_states, val_set),
        **{f"linear_r2_{k}": v for k, v in pose_r_squared(val_f @ w + b, pose_targets(val_all)).items()},
        **{f"mlp_r2_{k}": v for k, v in mlp_probe_r2(train_f, pose_targets(train_all), val_f,
                                                     pose_targets(val_all)).items()},
        **ranges_errors(model, val_all, val_set),
        "feature_std": val_f.std(0).mean().item(),
        "feature_std_min": val_f.std(0).min().item(),
        "effective_rank": effective_rank(val_f),
        "feature_dim": val_f.shape[1],
        "val_episodes": len(split["val"]),
    }
    if plan_pairs:
        # The world model alone drives: the roadmap, Mode-1 and critic are built per model; baselines have none.
        low_level = {**(params or {}), **LOW_LEVEL_ONLY}
        closed_loop = evaluate(path, pairs=plan_pairs, scenario=Scenario("heldout", "same_room", obstacles=2),
                               params=low_level, monitor=monitor_config(config_file("agent.yaml")))
        report |= {"plan_success": closed_loop["success_rate"], "plan_time_s": closed_loop["mean_time_to_goal_s"],
                   "plan_collisions": closed_loop["collisions"],
                   "plan_contact_episodes": closed_loop["episodes_with_collision"]}
    return report


COLUMNS = [("model", "{}"), ("pred_ratio_k1", "{:.3f}"), ("pred_ratio_k4", "{:.3f}"), ("pred_ratio_k16", "{:.3f}"),
           ("level2_ratio_k8", "{:.3f}"), ("linear_r2_x", "{:.3f}"), ("linear_r2_y", "{:.3f}"),
           ("linear_r2_yaw", "{:.3f}"), ("mlp_r2_x", "{:.3f}"), ("mlp_r2_y", "{:.3f}"), ("mlp_r2_yaw", "{:.3f}"),
           ("ranges_mae_m", "{:.3f}"), ("near_ranges_mae_m", "{:.3f}"),
           ("feature_std", "{:.3f}"), ("effective_rank", "{:.1f}"), ("planning_parameters", "{}"),
           ("parameters", "{}"), ("plan_success", "{:.0%}"), ("plan_time_s", "{:.1f}"),
           ("plan_contact_episodes", "{}")]


def table(reports: dict[str, dict]) -> str:
    """A Markdown table, one row per model (columns a report lacks are left empty)."""
    header = "| " + " | ".join(name for name, _ in COLUMNS) + " |"
    lines = [header, "|" + "---|" * len(COLUMNS)]
    for label, r in reports.items():
        cells = [label] + [fmt.format(r[name]) if isinstance(r.get(name), (int, float)) and not (
            isinstance(r[name], float) and math.isnan(r[name])) else "" for name, fmt in COLUMNS[1:]]
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


def plot(reports: dict[str, dict], png: Path) -> None:
    """Prediction error vs k, probe R^2 and feature statistics side by side."""
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    labels = list(reports)
    fig, axes = plt.subplots(1, 3, figsize=(14, 4))
    for label, r in reports.items():
        axes[0].plot(STEPS, [r[f"pred_ratio_k{k}"] for k in STEPS], marker="o", label=label)
    axes[0].axhline(1.0, color="grey", linestyle="--", label="copy-last")
    axes[0].set(xlabel="k (steps of 0.1 s)", ylabel="error / copy-last error", title="k-step latent prediction",
                xscale="log", yscale="log")
    axes[0].legend()
    x = np.arange(len(labels))
    for i, target in enumerate(PROBE_TARGETS):
        axes[1].bar(x + (i - 1) * 0.25, [reports[m][f"linear_r2_{target}"] for m in labels], 0.25, label=target)
    axes[1].axhline(0.95, color="grey", linestyle="--")
    axes[1].set(xticks=x, xticklabels=labels, ylim=(min(0.0, *(reports[m]["linear_r2_x"] for m in labels)), 1.0),
                title="linear probe R^2 (image features)")
    axes[1].legend()
    axes[2].bar(x - 0.2, [reports[m]["feature_std"] for m in labels], 0.4, label="mean feature std")
    twin = axes[2].twinx()
    twin.bar(x + 0.2, [reports[m]["effective_rank"] for m in labels], 0.4, color="tab:orange", label="effective rank")
    axes[2].set(xticks=x, xticklabels=labels, title="collapse: std and effective rank")
    axes[2].legend(loc="upper left")
    twin.legend(loc="upper right")
    fig.tight_layout()
    png.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(png, dpi=100)
    plt.close(fig)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="ojepa eval-wm", description=__doc__.splitlines()[0])
    parser.add_argument("models", nargs="*", metavar="LABEL=PATH",
                        default=["ours=models/world_model.pt"],
                        help="models to compare (default: the shipped model), e.g. the baselines that "
                             "models/MODEL_CARD.md says how to train")
    parser.add_argument("--data", type=Path, default=Path("data/family"), help="the episodes the models were trained on")
    parser.add_argument("--heldout", type=Path, default=None,
                        help="score on these episodes (`ojepa collect --split heldout`) instead of the training's split")
    parser.add_argument("--plan-pairs", type=int, default=0, help="also run N same-room closed-loop episodes per model")
    parser.add_argument("--config", type=Path, default=config_file("agent.yaml"), help="actor settings for --plan-pairs")
    parser.add_argument("--png", type=Path, default=Path("runs/eval_wm.png"))
    parser.add_argument("--json", type=Path, help="also write every figure here")
    args = parser.parse_args(argv)
    torch.set_num_threads(2)
    reports = {}
    for item in args.models:
        label, sep, path = item.partition("=")
        label, path = (label, Path(path)) if sep else (Path(item).stem, Path(item))
        try:
            reports[label] = evaluate_world_model(path, args.data, args.plan_pairs, actor_params(args.config),
                                                  args.heldout)
        except (ModelFileError, FileNotFoundError) as err:
            print(f"ojepa eval-wm: {err}", file=sys.stderr)
            return 2
        print(f"{label}: " + ", ".join(f"{k}={v:.4g}" for k, v in reports[label].items() if isinstance(v, float)),
              flush=True)
    print(table(reports))
    plot(reports, args.png)
    print(f"plot: {args.png}")
    if args.json:
        args.json.write_text(json.dumps(reports, indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
