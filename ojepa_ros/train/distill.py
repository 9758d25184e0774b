"""`ojepa distill`: train the Mode-1 policy on Mode-2 plans made from states in the robot's memory.

Teacher data: frames of recorded episodes (collect .npz or memory_node MCAP), each paired with a target: in
hindsight where the robot really was 1-3 s later (targets it could reach, like the high level's subgoals), or
a random point up to 3 m away (goals in the open). Mode-2 (the actor's low level, flat, as configured in
agent.yaml, with `--teacher-iterations` MPPI iterations from a cold start) plans from each; the student
regresses those plans. Held-out frames measure how close it gets.
"""

from __future__ import annotations

import argparse
import math
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np
import torch
from tqdm import tqdm

from ojepa_ros.core.mode1 import Mode1Config, Mode1Policy, relative_target, save_mode1
from ojepa_ros.core.mpc import DEFAULTS, LOW_LEVEL_ONLY, MpcPolicy
from ojepa_ros.core.world_model import WorldModel
from ojepa_ros.paths import config_file
from ojepa_ros.train.encoded import INPUT_ERRORS, add_input_args, encoded_episodes, open_inputs
from ojepa_ros.train.evaluate import actor_params

HINDSIGHT_STEPS = (10, 30)  # control steps ahead of a frame where its hindsight target is taken
RANDOM_TARGET_FRACTION = 0.3
MAX_RANDOM_TARGET = 3.0  # m


def teacher_data(model: WorldModel, files: list[Path], samples: int, params: dict[str, Any],
                 rng: np.random.Generator) -> dict[str, torch.Tensor]:
    """{"states" [N, D], "targets" [N, 2] (odometry frame), "plans" [N, T, 2]} from Mode-2 on memory frames."""
    frames, targets = [], []
    for states, ep in encoded_episodes(model, files):
        odom = ep["odom"]
        usable = len(states) - HINDSIGHT_STEPS[1]
        if usable <= 0:
            continue
        for t in rng.choice(usable, size=min(usable, max(1, samples // len(files) + 1)), replace=False):
            if rng.random() < RANDOM_TARGET_FRACTION:
                angle, dist = rng.uniform(-math.pi, math.pi), rng.uniform(0.3, MAX_RANDOM_TARGET)
                target = odom[t, :2] + dist * torch.tensor([math.cos(angle), math.sin(angle)])
            else:
                target = odom[t + int(rng.integers(*HINDSIGHT_STEPS)), :2]
            frames.append(states[t])
            targets.append(target.float())
    order = rng.permutation(len(frames))[:samples]
    states, targets = torch.stack(frames)[order], torch.stack(targets)[order]
    teacher = MpcPolicy.from_config(model, {**params, **LOW_LEVEL_ONLY}, seed=0)
    plans = []
    for state, target in tqdm(zip(states, targets), total=len(states), desc="Mode-2 teacher", unit="plan",
                              mininterval=5.0):
        teacher.set_goal(target.tolist())
        teacher.planner.reset()
        teacher.act(state, (0.0, 0.0))
        plans.append(teacher.planner.plan.clone())
    return {"states": states, "targets": targets, "plans": torch.stack(plans)}


def fit(model: WorldModel, data: dict[str, torch.Tensor], high: tuple[float, float], steps: int, seed: int,
        val_fraction: float = 0.1) -> tuple[Mode1Policy, dict[str, float]]:
    """Regress the teacher's plans (MSE in units of the bounds, first actions weighted up: they are executed)."""
    torch.manual_seed(seed)
    rel = relative_target(model.pose(data["states"]), data["targets"])
    n_val = max(1, int(len(rel) * val_fraction))
    split = {"val": slice(0, n_val), "train": slice(n_val, None)}
    policy = Mode1Policy(Mode1Config(state_dim=model.cfg.embed_dim, horizon=data["plans"].shape[1],
                                     action_high=high))
    scale = torch.tensor(high)
    weight = torch.linspace(2.0, 0.5, data["plans"].shape[1])[None, :, None]

    def loss(part: slice) -> torch.Tensor:
        pred = policy(data["states"][part], rel[part])
        return (((pred - data["plans"][part]) / scale).square() * weight).mean()

    opt = torch.optim.AdamW(policy.parameters(), lr=1e-3, weight_decay=1e-4)
    sched = torch.optim.lr_scheduler.CosineAnnealingLR(opt, steps)
    train_idx = torch.arange(len(rel))[split["train"]]
    for _ in range(steps):
        batch = train_idx[torch.randint(len(train_idx), (256,))]
        opt.zero_grad()
        loss(batch).backward()
        opt.step()
        sched.step()
    policy.eval().requires_grad_(False)
    with torch.no_grad():
        pred = policy(data["states"][split["val"]], rel[split["val"]])
        first_err = (pred[:, 0] - data["plans"][split["val"], 0]).abs().mean(0)
        baseline = (data["plans"][split["train"], 0].mean(0) - data["plans"][split["val"], 0]).abs().mean(0)
        metrics = {"val_loss": float(loss(split["val"])), "train_loss": float(loss(split["train"])),
                   "val_first_action_mae_v": float(first_err[0]), "val_first_action_mae_w": float(first_err[1]),
                   "mean_action_mae_v": float(baseline[0]), "mean_action_mae_w": float(baseline[1])}
    return policy, metrics


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="ojepa distill", description=__doc__.splitlines()[0])
    add_input_args(parser, "Mode-1 policy file to write (.pt)")
    parser.add_argument("--config", type=Path, default=config_file("agent.yaml"), help="the teacher's settings")
    parser.add_argument("--samples", type=int, default=4000, help="teacher plans")
    parser.add_argument("--teacher-iterations", type=int, default=3, help="MPPI iterations per teacher plan")
    parser.add_argument("--steps", type=int, default=3000, help="student optimiser steps")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)
    if min(args.samples, args.teacher_iterations, args.steps) < 1:
        parser.error("--samples, --teacher-iterations and --steps must be >= 1")
    try:
        model, files = open_inputs(args)
    except INPUT_ERRORS as err:
        print(f"ojepa distill: {err}", file=sys.stderr)
        return 2
    params = {**DEFAULTS, **actor_params(args.config), "iterations": args.teacher_iterations}
    high = (float(params["max_linear_velocity"]), float(params["max_angular_velocity"]))
    start = time.perf_counter()
    data = teacher_data(model, files, args.samples, params, np.random.default_rng(args.seed))
    teacher_s = time.perf_counter() - start
    policy, metrics = fit(model, data, high, args.steps, args.seed)
    save_mode1(policy, args.out, {"model": str(args.model), "episodes": len(files), "samples": len(data["states"]),
                                  "teacher": f"{params['planner']} {params['num_samples']}x{params['horizon']} "
                                             f"x{args.teacher_iterations} iterations",
                                  "steps": args.steps, "seed": args.seed, "teacher_s": round(teacher_s, 1),
                                  **{k: round(v, 4) for k, v in metrics.items()}})
    print(f"ojepa distill: {len(data['states'])} Mode-2 plans in {teacher_s:.0f} s; held-out first action MAE "
          f"v {metrics['val_first_action_mae_v']:.3f} m/s, w {metrics['val_first_action_mae_w']:.3f} rad/s "
          f"(predicting the mean: {metrics['mean_action_mae_v']:.3f}, {metrics['mean_action_mae_w']:.3f}) "
          f"-> {args.out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
