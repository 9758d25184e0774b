"""`ojepa distill`: train the Mode-1 policy on Mode-2 plans made from states in the robot's memory, then on
states the policy reaches itself (DAgger).

Teacher data: frames of recorded episodes (collect .npz or memory_node MCAP), each paired with a target: in
hindsight where the robot really was 1-3 s later (targets it could reach, like the high level's subgoals), or
a random point up to 3 m away (goals in the open). Mode-2 (the actor's low level, flat, as configured in
agent.yaml, with `--teacher-iterations` MPPI iterations from a cold start) plans from each; the student
regresses those plans. A student trained on recorded frames alone meets states no recording holds once its
own small errors compound (stalled before a doorway, say), and there it has never been told what to do; so
each `--dagger-rounds` round drives the current student through the actor's route (Mode-1 alone) from random
start/goal pairs, has Mode-2 label the states it visited toward the subgoal it had, and refits on all labels
so far (Ross et al., 2011). Held-out recorded frames measure how close it gets.
"""

from __future__ import annotations

import argparse
import itertools
import math
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np
import torch
from tqdm import tqdm

from ojepa_ros.core.mode1 import Mode1Config, Mode1Policy, relative_target, save_mode1
from ojepa_ros.core.mpc import DEFAULTS, LOW_LEVEL_ONLY, MpcPolicy, PolicyStep
from ojepa_ros.core.roadmap import RoadmapFileError
from ojepa_ros.core.world_model import WorldModel
from ojepa_ros.paths import config_file
from ojepa_ros.train.encoded import INPUT_ERRORS, add_input_args, encoded_episodes, open_inputs
from ojepa_ros.train.evaluate import MODES, actor_params, drive, rooms_env, sample_pairs

HINDSIGHT_STEPS = (10, 30)  # control steps ahead of a frame where its hindsight target is taken
RANDOM_TARGET_FRACTION = 0.3
MAX_RANDOM_TARGET = 3.0  # m
DAGGER_MAX_STEPS = 300  # per student drive (30 s): a stall beyond that adds near copies of the same state
DAGGER_EVERY = 3  # keep every 3rd visited state
DAGGER_SEED = 1000  # the student's pairs are drawn apart from `ojepa eval`'s (seed 0)


def memory_frames(model: WorldModel, files: list[Path], samples: int,
                  rng: np.random.Generator) -> dict[str, torch.Tensor]:
    """{"states" [N, D], "targets" [N, 2] (odometry frame), "velocities" [N, 2]} from recorded frames."""
    frames, targets, velocities = [], [], []
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
            velocities.append(odom[t, 3:5].float())
    order = rng.permutation(len(frames))[:samples]
    return {"states": torch.stack(frames)[order], "targets": torch.stack(targets)[order],
            "velocities": torch.stack(velocities)[order]}


def student_frames(model: WorldModel, model_path: Path, params: dict[str, Any], student: Mode1Policy,
                   pairs: int, seed: int) -> tuple[dict[str, torch.Tensor], float]:
    """The states the student reaches driving alone (the actor's route, Mode-1 commanding) from `pairs` random
    start/goal pairs, half across rooms, with the target it had at each (its subgoal, or the goal); and the
    share of pairs it reached. Every DAGGER_EVERY-th step is kept: neighbours are near copies."""
    frames: dict[str, list[torch.Tensor]] = {"states": [], "targets": [], "velocities": []}
    env = rooms_env(model, DAGGER_MAX_STEPS)
    policy = MpcPolicy.from_files(model, model_path, {**params, "mode1": "alone", "weight_critic": 0.0}, seed=seed,
                                  mode1=student)
    tick = itertools.count()

    def record(state: torch.Tensor, obs: dict[str, np.ndarray], step: PolicyStep) -> None:
        if step.status != "ok" or next(tick) % DAGGER_EVERY:
            return
        frames["states"].append(state)
        frames["targets"].append(policy.goal if step.subgoal is None else torch.from_numpy(step.subgoal).float())
        frames["velocities"].append(torch.from_numpy(obs["odom"][3:5]).float())

    rng = np.random.default_rng(seed)
    reached = []
    try:
        for mode in MODES:
            for start, goal in sample_pairs(env.layout, rng, pairs // 2, mode):
                reached.append(drive(model, env, policy, start, goal, DAGGER_MAX_STEPS, seed, record)["success"])
    finally:
        env.close()
    return {k: torch.stack(v) for k, v in frames.items()}, float(np.mean(reached))


def label(model: WorldModel, params: dict[str, Any], frames: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """frames plus "plans" [N, T, 2]: Mode-2's plan from each state toward its target, at its velocity."""
    teacher = MpcPolicy.from_config(model, {**params, **LOW_LEVEL_ONLY}, seed=0)
    plans = []
    for state, target, velocity in tqdm(zip(frames["states"], frames["targets"], frames["velocities"]),
                                        total=len(frames["states"]), desc="Mode-2 teacher", unit="plan",
                                        mininterval=5.0):
        teacher.set_goal(target.tolist())
        teacher.planner.reset()
        teacher.act(state, velocity.tolist())
        plans.append(teacher.planner.plan.clone())
    return {**frames, "plans": torch.stack(plans)}


def fit(model: WorldModel, data: dict[str, torch.Tensor], high: tuple[float, float], steps: int, seed: int,
        n_val: int) -> tuple[Mode1Policy, dict[str, float]]:
    """Regress the teacher's plans (MSE in units of the bounds, first actions weighted up: they are executed);
    the first n_val rows are held out."""
    torch.manual_seed(seed)
    rel = relative_target(model.pose(data["states"]), data["targets"])
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
    parser.add_argument("--samples", type=int, default=4000, help="teacher plans on recorded frames")
    parser.add_argument("--teacher-iterations", type=int, default=3, help="MPPI iterations per teacher plan")
    parser.add_argument("--steps", type=int, default=3000, help="student optimiser steps per fit")
    parser.add_argument("--dagger-rounds", type=int, default=3, help="rounds of labelling the student's own states")
    parser.add_argument("--dagger-pairs", type=int, default=40, help="start/goal pairs the student drives per round")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)
    if min(args.samples, args.teacher_iterations, args.steps) < 1 or args.dagger_rounds < 0 or args.dagger_pairs < 2:
        parser.error("--samples, --teacher-iterations and --steps must be >= 1, --dagger-rounds >= 0, "
                     "--dagger-pairs >= 2")
    params = {**DEFAULTS, **actor_params(args.config), "iterations": args.teacher_iterations}
    try:
        model, files = open_inputs(args)
        if args.dagger_rounds:  # the student drives the actor's route: a missing roadmap fails now, not in an hour
            MpcPolicy.from_files(model, args.model, {**params, "mode1": "none", "weight_critic": 0.0})
    except (*INPUT_ERRORS, RoadmapFileError) as err:
        print(f"ojepa distill: {err}", file=sys.stderr)
        return 2
    high = (float(params["max_linear_velocity"]), float(params["max_angular_velocity"]))
    start = time.perf_counter()
    data = label(model, params, memory_frames(model, files, args.samples, np.random.default_rng(args.seed)))
    n_val = max(1, len(data["states"]) // 10)  # held-out recorded frames; every student state goes to training
    policy, metrics = fit(model, data, high, args.steps, args.seed, n_val)
    reached = []
    for round_ in range(args.dagger_rounds):
        visited, success = student_frames(model, args.model, params, policy, args.dagger_pairs,
                                          seed=DAGGER_SEED + 100 * args.seed + round_)
        reached.append(round(success, 3))
        labelled = label(model, params, visited)
        data = {k: torch.cat((data[k], labelled[k])) for k in data}
        print(f"ojepa distill: DAgger round {round_ + 1}: the student reached {success:.0%} of "
              f"{args.dagger_pairs} pairs; {len(visited['states'])} of its states labelled", flush=True)
        policy, metrics = fit(model, data, high, args.steps, args.seed, n_val)
    total_s = time.perf_counter() - start
    save_mode1(policy, args.out, {"model": str(args.model), "episodes": len(files), "samples": len(data["states"]),
                                  "memory_samples": args.samples, "dagger_rounds": args.dagger_rounds,
                                  "dagger_pairs": args.dagger_pairs, "dagger_reached": reached,
                                  "teacher": f"{params['planner']} {params['num_samples']}x{params['horizon']} "
                                             f"x{args.teacher_iterations} iterations",
                                  "steps": args.steps, "seed": args.seed, "total_s": round(total_s, 1),
                                  **{k: round(v, 4) for k, v in metrics.items()}})
    print(f"ojepa distill: {len(data['states'])} Mode-2 plans, {args.dagger_rounds} DAgger rounds, "
          f"{total_s:.0f} s; held-out first action MAE v {metrics['val_first_action_mae_v']:.3f} m/s, "
          f"w {metrics['val_first_action_mae_w']:.3f} rad/s (predicting the mean: {metrics['mean_action_mae_v']:.3f}, "
          f"{metrics['mean_action_mae_w']:.3f}) -> {args.out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
