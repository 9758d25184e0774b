"""Closed-loop evaluation: the MPC actor drives the embedded rooms world from random start/goal pairs.

Each control step encodes the camera image + odometry with the world model and plans with MpcPolicy,
exactly as the actor node does, so the figures describe the shipped agent, not a privileged oracle.
"""

from __future__ import annotations

import argparse
import json
import math
import sys
from pathlib import Path
from typing import Any, Callable, Mapping

import numpy as np
import torch
import yaml

from ojepa_ros.core.model_io import ModelFileError, load_world_model
from ojepa_ros.core.mpc import MpcPolicy, PolicyStep
from ojepa_ros.core.onnx_runtime import OnnxModelError, OrtWorldModel, onnx_dir_for
from ojepa_ros.core.roadmap import RoadmapFileError
from ojepa_ros.core.odometry import proprio_from_odom
from ojepa_ros.core.world_model import WorldModel
from ojepa_ros.paths import config_file, default_model
from ojepa_ros.sim.nav_env import NavEnvConfig, RoomsNavEnv
from ojepa_ros.sim.rooms_world import RoomsLayout, sample_free_pose

MODES = ("same_room", "cross_room")
MIN_PAIR_DISTANCE = 1.0  # m: closer goals would be reached by drifting


def sample_pairs(layout: RoomsLayout, rng: np.random.Generator, pairs: int,
                 mode: str) -> list[tuple[tuple[float, float, float], tuple[float, float]]]:
    """(start pose, goal xy) pairs in free space; same_room: one room, cross_room: two different rooms."""
    if mode not in MODES:
        raise ValueError(f"mode must be one of {MODES}, got {mode!r}")
    n_rooms = len(layout.rooms)
    out = []
    while len(out) < pairs:
        room = int(rng.integers(n_rooms))
        goal_room = room if mode == "same_room" else (room + int(rng.integers(1, n_rooms))) % n_rooms
        start = sample_free_pose(layout, rng, room=room)
        gx, gy, _ = sample_free_pose(layout, rng, room=goal_room)
        if math.hypot(gx - start[0], gy - start[1]) >= MIN_PAIR_DISTANCE:
            out.append((start, (gx, gy)))
    return out


def actor_params(path: Path) -> dict[str, Any]:
    """actor_node's ROS parameters from an agent.yaml, so evaluation runs the configured agent."""
    return yaml.safe_load(path.read_text())["actor_node"]["ros__parameters"]


def rooms_env(model: WorldModel, max_steps: int) -> RoomsNavEnv:
    """The embedded rooms world with the camera and control step the model was trained on."""
    size = model.cfg.image_size
    return RoomsNavEnv(NavEnvConfig(image_width=size, image_height=size, control_dt=model.cfg.dt,
                                    max_steps=max_steps))


StepHook = Callable[[torch.Tensor, dict[str, np.ndarray], PolicyStep], None]


@torch.no_grad()
def drive(model: WorldModel, env: RoomsNavEnv, policy: MpcPolicy, start: tuple[float, float, float],
          goal: tuple[float, float], max_steps: int, seed: int, on_step: StepHook | None = None) -> dict[str, Any]:
    """One closed-loop episode from `start` to `goal`; `on_step(state, obs, step)` sees every command before it
    is executed (DAgger records the student's states through it)."""
    obs, info = env.reset(seed=seed, options={"start": start, "goal": goal})
    policy.reset()
    policy.set_goal(goal)
    steps, collisions, success, mode1_steps, plan_ms = 0, 0, False, 0, []
    while steps < max_steps and not success:
        proprio = torch.from_numpy(proprio_from_odom(obs["odom"]))[None]
        state = model.encode(torch.from_numpy(obs["image"])[None], proprio)[0]
        out = policy.act(state, obs["odom"][3:5], odom_xy=obs["odom"][:2], dt=env.config.control_dt)
        if on_step is not None:
            on_step(state, obs, out)
        if out.source == "mode1":
            mode1_steps += 1
        elif out.status == "ok":
            plan_ms.append(out.plan_ms)
        obs, _, success, _, info = env.step(out.command)
        steps += 1
        collisions += int(info["collision"])
    return {"start": list(start), "goal": list(goal), "success": bool(success), "steps": steps,
            "collision_steps": collisions, "final_distance_m": float(info["distance_to_goal"]),
            "mode1_steps": mode1_steps, "plan_ms": plan_ms}


@torch.no_grad()
def evaluate(model_path: str | Path, pairs: int = 20, mode: str = "same_room", seed: int = 0,
             max_steps: int = 600, params: Mapping[str, Any] | None = None) -> dict[str, Any]:
    """Success rate, time to goal, collisions and planning time over `pairs` closed-loop episodes."""
    model = load_world_model(model_path)
    env = rooms_env(model, max_steps)
    params = params or {}
    onnx = None
    if params.get("backend", "torch") == "onnxruntime":  # as actor_node: rollouts on the exported graphs
        onnx = OrtWorldModel(params.get("onnx_dir") or onnx_dir_for(model_path), params.get("onnx_providers", "auto"),
                             threads=torch.get_num_threads())
    policy = MpcPolicy.from_files(model, model_path, params, seed=seed, onnx=onnx)
    dt = env.config.control_dt
    episodes = []
    try:
        for start, goal in sample_pairs(env.layout, np.random.default_rng(seed), pairs, mode):
            episodes.append(drive(model, env, policy, start, goal, max_steps, seed))
    finally:
        env.close()
    plan_ms = [ms for e in episodes for ms in e.pop("plan_ms")]
    mode1_steps = sum(e.pop("mode1_steps") for e in episodes)
    times = [e["steps"] * dt for e in episodes if e["success"]]
    return {
        "mode": mode, "pairs": pairs,
        "success_rate": float(np.mean([e["success"] for e in episodes])),
        "mean_time_to_goal_s": float(np.mean(times)) if times else float("nan"),
        "collisions": int(sum(e["collision_steps"] for e in episodes)),
        "episodes_with_collision": int(sum(e["collision_steps"] > 0 for e in episodes)),
        "mean_final_distance_m": float(np.mean([e["final_distance_m"] for e in episodes])),
        "mode1_commands": mode1_steps,  # Mode-1 alone, or Mode-2 past its deadline
        "plan_ms_median": float(np.median(plan_ms)) if plan_ms else float("nan"),
        "plan_ms_p99": float(np.percentile(plan_ms, 99)) if plan_ms else float("nan"),
        "episodes": episodes,
    }


def main(argv: list[str] | None = None) -> int:
    """`ojepa eval`: planner settings and cost weights come from actor_node in config/agent.yaml."""
    parser = argparse.ArgumentParser(prog="ojepa eval", description=__doc__.splitlines()[0])
    parser.add_argument("--model", type=Path, default=default_model())
    parser.add_argument("--config", type=Path, default=config_file("agent.yaml"))
    parser.add_argument("--pairs", type=int, default=20)
    parser.add_argument("--mode", choices=(*MODES, "both"), default="both")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--max-steps", type=int, default=600, help="control steps per episode (0.1 s each)")
    parser.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                        help="override an actor_node parameter, e.g. hierarchical=false or planner=cem (repeatable)")
    parser.add_argument("--json", type=Path, help="also write the full report (incl. every episode) here")
    args = parser.parse_args(argv)
    params = actor_params(args.config)
    for item in args.set:
        key, sep, value = item.partition("=")
        if not sep or key not in params:
            parser.error(f"--set {item!r}: expected KEY=VALUE with KEY an actor_node parameter")
        params[key] = yaml.safe_load(value)
    modes = MODES if args.mode == "both" else (args.mode,)
    try:
        reports = [evaluate(args.model, args.pairs, m, args.seed, args.max_steps, params) for m in modes]
    except (ModelFileError, RoadmapFileError, OnnxModelError, ValueError) as err:
        print(f"ojepa eval: {err}", file=sys.stderr)
        return 2
    print(f"{'mode':<11} {'pairs':>5} {'success':>8} {'time s':>7} {'collisions':>10} {'final m':>8} "
          f"{'plan ms p50':>11} {'p99':>6} {'mode1 cmds':>10}")
    for r in reports:
        print(f"{r['mode']:<11} {r['pairs']:>5} {r['success_rate']:>8.0%} {r['mean_time_to_goal_s']:>7.1f} "
              f"{r['collisions']:>10} {r['mean_final_distance_m']:>8.2f} {r['plan_ms_median']:>11.1f} "
              f"{r['plan_ms_p99']:>6.1f} {r['mode1_commands']:>10}")
    if args.json:
        args.json.write_text(json.dumps(reports, indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
