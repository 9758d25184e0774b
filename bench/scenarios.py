"""Closed-loop figures of the perceiving agent: one `ojepa eval` per scenario, side by side in one table.

Every scenario drives held-out layouts (or the four-room world, named) with obstacles and movers the
evaluation places itself, so nothing here was seen in training. Runs `--jobs` scenarios at once, each on
one thread; `--only NAME ...` picks rows, `--set KEY=VALUE` overrides the actor for every row. The collision
monitor sits between the actor and the base, as deployed, unless `--monitor off` (the planner alone).

    python bench/scenarios.py --pairs 50 --jobs 2 [--only obstacles black_camera] [--model M] [--monitor off]
"""

from __future__ import annotations

import argparse
import tempfile
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from eval_job import run_eval

# name: (ojepa eval arguments, target the issue sets)
SCENARIOS: dict[str, tuple[list[str], str]] = {
    "same_room": (["--worlds", "heldout", "--mode", "same_room"], "-"),
    "obstacles": (["--worlds", "heldout", "--mode", "same_room", "--obstacles", "2"],
                  ">= 95 % success, contact in <= 2 % of episodes"),
    "black_camera": (["--worlds", "heldout", "--mode", "same_room", "--obstacles", "2", "--camera", "black"],
                     "fails clearly"),
    "cross_room": (["--worlds", "four_rooms", "--mode", "cross_room", "--obstacles", "2"],
                   ">= 95 % success, <= 1 % of steps in contact"),
    # K = 8 draws of z per candidate at 128 candidates: the rollout budget of 1024 plain candidates
    "moving_mean": (["--worlds", "heldout", "--mode", "same_room", "--moving-obstacles", "1", "--set",
                     "num_samples=128", "--set", "latent_draws=8", "--set", "risk=mean"],
                    ">= 90 % success with no contact"),
    "moving_worst": (["--worlds", "heldout", "--mode", "same_room", "--moving-obstacles", "1", "--set",
                      "num_samples=128", "--set", "latent_draws=8", "--set", "risk=worst"],
                     "fewer contacts than mean z"),
    "image_goal": (["--worlds", "heldout", "--mode", "same_room", "--goal", "image"], ">= 90 % success"),
}


def run(name: str, args: argparse.Namespace, out_dir: Path) -> dict:
    arguments = ["--pairs", str(args.pairs), "--seed", str(args.seed), "--max-steps", str(args.max_steps),
                 *SCENARIOS[name][0]]
    if args.model:
        arguments += ["--model", str(args.model)]
    arguments += ["--monitor", args.monitor]
    for item in args.set:
        arguments += ["--set", item]
    return run_eval(name, arguments, out_dir)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--pairs", type=int, default=50)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--max-steps", type=int, default=600, help="0.1 s control steps per episode")
    parser.add_argument("--jobs", type=int, default=2)
    parser.add_argument("--only", nargs="+", choices=list(SCENARIOS), default=list(SCENARIOS))
    parser.add_argument("--model", type=Path, default=None, help="world model (default: the shipped one)")
    parser.add_argument("--set", action="append", default=[], metavar="KEY=VALUE", help="actor override, every row")
    parser.add_argument("--monitor", choices=("on", "off"), default="on",
                        help="the collision monitor between actor and base (on, as deployed) or not")
    parser.add_argument("--out", type=Path, default=None, help="folder for each scenario's full JSON report")
    args = parser.parse_args()
    out_dir = args.out or Path(tempfile.mkdtemp(prefix="ojepa_scenarios_"))
    out_dir.mkdir(parents=True, exist_ok=True)
    with ThreadPoolExecutor(args.jobs) as pool:
        reports = dict(zip(args.only, pool.map(lambda name: run(name, args, out_dir), args.only)))
    print(f"{args.pairs} pairs per row, seed {args.seed}, {args.max_steps / 10:.0f} s limit, model "
          f"{args.model or 'shipped'}, collision monitor {args.monitor} {' '.join(args.set)} (reports: {out_dir})")
    print("| scenario | success | episodes with contact | steps in contact | mean time to goal s | plan ms p50 "
          "| target |")
    print("|---|---|---|---|---|---|---|")
    for name, r in reports.items():
        print(f"| {name} | {r['success_rate']:.0%} | {r['episodes_with_collision']}/{r['pairs']} "
              f"| {100 * r['contact_step_fraction']:.2f} % | {r['mean_time_to_goal_s']:.1f} "
              f"| {r['plan_ms_median']:.1f} | {SCENARIOS[name][1]} |")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
