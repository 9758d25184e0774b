"""Closed-loop success and time-to-goal of actor variants over the same start/goal pairs (`ojepa eval` each).

Variants differ from config/agent.yaml's actor_node by the overrides below; every one runs the same pairs
(same seed), so rows compare planners, not luck. Runs `--jobs` variants at once, each on one thread.

    python bench/closed_loop.py --pairs 50 --mode cross_room --jobs 2 [--variants hierarchical flat ...]
"""

from __future__ import annotations

import argparse
import tempfile
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from eval_job import run_eval

VARIANTS: dict[str, list[str]] = {
    "hierarchical": [],  # the shipped agent: MPPI, roadmap subgoals, Mode-1 warm start, critic
    "flat": ["hierarchical=false"],
    "cem": ["planner=cem"],
    "gradient": ["planner=gradient", "num_samples=16"],
    "no_critic": ["weight_critic=0"],
    "mode1_alone": ["mode1=alone"],
    "no_mode1": ["mode1=none"],
    "no_mode1_128": ["mode1=none", "num_samples=128"],
    "mode1_128": ["num_samples=128"],
    "bfloat16": ["precision=bfloat16"],
    "onnxruntime": ["backend=onnxruntime"],
}


def run(name: str, pairs: int, mode: str, seed: int, max_steps: int, out_dir: Path) -> dict:
    arguments = ["--pairs", str(pairs), "--mode", mode, "--seed", str(seed), "--max-steps", str(max_steps)]
    for item in VARIANTS[name]:
        arguments += ["--set", item]
    return run_eval(name, arguments, out_dir)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--pairs", type=int, default=50)
    parser.add_argument("--mode", choices=("same_room", "cross_room"), default="cross_room")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--max-steps", type=int, default=600, help="0.1 s control steps per episode")
    parser.add_argument("--jobs", type=int, default=2)
    parser.add_argument("--variants", nargs="+", choices=list(VARIANTS), default=list(VARIANTS))
    parser.add_argument("--out", type=Path, default=None, help="folder for each variant's full JSON report")
    args = parser.parse_args()
    out_dir = args.out or Path(tempfile.mkdtemp(prefix="ojepa_closed_loop_"))
    out_dir.mkdir(parents=True, exist_ok=True)
    with ThreadPoolExecutor(args.jobs) as pool:
        reports = dict(zip(args.variants, pool.map(
            lambda v: run(v, args.pairs, args.mode, args.seed, args.max_steps, out_dir), args.variants)))
    print(f"{args.mode}, {args.pairs} pairs, seed {args.seed}, {args.max_steps / 10:.0f} s limit (reports: {out_dir})")
    print("| variant | overrides | success | mean time to goal s | collision steps | final distance m "
          "| plan ms p50 / p99 | Mode-1 commands |")
    print("|---|---|---|---|---|---|---|---|")
    for name, r in reports.items():
        print(f"| {name} | {' '.join(VARIANTS[name]) or '(shipped)'} | {r['success_rate']:.0%} "
              f"| {r['mean_time_to_goal_s']:.1f} | {r['collisions']} | {r['mean_final_distance_m']:.2f} "
              f"| {r['plan_ms_median']:.1f} / {r['plan_ms_p99']:.1f} | {r['mode1_commands']} |")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
