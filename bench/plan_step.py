"""Milliseconds per MPC step on the shipped world model, per planner, and our MPPI against pytorch-mppi 0.9.1.

    nice -n 5 python bench/plan_step.py [--quick] [--repeats 15] [--scenes 4] [--model PATH] [--onnx]

Prints tables, asserts nothing. Start states are camera image + odometry encoded at random free poses of
the rooms world, each with a goal in the same room.
Table 1: MpcPolicy.act (plan + cost breakdown + limiter), warm-started, per planner x samples x horizon x
torch threads: median and p90 ms after 2 warm-up steps (fewer repeats when a step takes seconds); with
--onnx, MPPI and CEM again with their rollouts on onnxruntime (CPU provider, as many threads as torch).
Table 1b: the same for the policy exactly as config/agent.yaml ships it (hierarchy, critic, Mode-1 warm start),
over the table-2 start states, with no plan deadline.
Table 2: the same world model, Objective and budget (samples, horizon, one iteration, lambda, noise sigma,
bounds, zero initial plan) through our MPPI and pytorch_mppi.MPPI (our cost as its terminal cost), from the
same start states, `--steps` warm-started commands each: ms per command, throughput ratio (their ms / our
ms), and our Objective's cost of each one's final plan, mean over the start states (lower is better). The
floor column times the work no MPPI over this model can skip: one batched rollout of the same budget plus
its cost, nothing else; their ms / floor bounds the ratio any implementation could reach on this model.
Table 3: one cold-start MPPI iteration per budget with and without the Mode-1 plan (models/*.mode1.pt) as a
candidate start: how many samples Mode-1 saves Mode-2.
Table 4: time to equal cost. pytorch-mppi with 1024 samples plans one command from a cold start; the cost its
plan reaches is the bar. Our policy as shipped (config/agent.yaml's planner, budget and Mode-1 warm start; the
flat low level, as in the other tables; no plan deadline, so that a busy host times Mode-2 rather than
handing the step to Mode-1) then plans from the same cold start, step after warm-started step,
until its plan costs no more than that: the ms it took, beside pytorch-mppi's, both under the cost our policy
built at its first step (goal or local-route target, perceived obstacles).
"""

from __future__ import annotations

import argparse
import os
import time
from pathlib import Path
from typing import Callable

import numpy as np
import torch
from pytorch_mppi import MPPI as TheirMPPI

from ojepa_ros.core.costs import CostContext
from ojepa_ros.core.mode1 import load_mode1, mode1_beside
from ojepa_ros.core.model_io import ModelFileError, load_world_model
from ojepa_ros.core.mpc import (DEFAULTS, GRADIENT_FREE, LOW_LEVEL_ONLY, PRECISIONS, MpcPolicy, keep_freed_memory,
                                make_planner)
from ojepa_ros.core.onnx_runtime import OrtWorldModel, onnx_dir_for, read_manifest
from ojepa_ros.core.planners import rollout
from ojepa_ros.core.odometry import proprio_from_odom
from ojepa_ros.core.world_model import WorldModel, WorldModelConfig
from ojepa_ros.paths import config_file, default_model
from ojepa_ros.sim.nav_env import NavEnvConfig, RoomsNavEnv
from ojepa_ros.train.evaluate import actor_params, sample_pairs

PLANNERS = ("mppi", "cem", "gradient", "mppi_gradient")
BUDGET_S = 12.0  # per table cell: slow cells get fewer repeats (at least 3)


def load(path: str) -> tuple[WorldModel, str]:
    """The world model, or (while the shipped file predates this code) an untrained one of the default size:
    timings depend on the sizes only, the cost comparison then only on the shared landscape."""
    try:
        return load_world_model(path), path
    except ModelFileError as err:
        torch.manual_seed(0)
        return WorldModel(WorldModelConfig()).eval(), f"UNTRAINED default-size model ({err})"


def scenes(model: WorldModel, n: int, seed: int = 0) -> list[tuple[torch.Tensor, tuple[float, float]]]:
    size = model.cfg.image_size
    env = RoomsNavEnv(NavEnvConfig(image_width=size, image_height=size))
    out = []
    try:
        for start, goal in sample_pairs(env.layout, np.random.default_rng(seed), n, "same_room"):
            env.set_pose(*start)
            image = torch.from_numpy(env.camera_image().copy())[None]
            with torch.no_grad():
                out.append((model.encode(image, torch.from_numpy(proprio_from_odom(env.odometry()))[None])[0], goal))
    finally:
        env.close()
    return out


def timed(step: Callable[[], object], repeats: int) -> np.ndarray:
    """ms of each of up to `repeats` calls after 2 warm-up calls, stopping early past BUDGET_S."""
    for _ in range(2):
        step()
    times: list[float] = []
    spent = time.perf_counter()
    while len(times) < repeats and (len(times) < 3 or time.perf_counter() - spent < BUDGET_S):
        start = time.perf_counter()
        step()
        times.append((time.perf_counter() - start) * 1e3)
    return np.asarray(times)


def threads_head(threads) -> str:
    """Column heads of the per-thread-count ms columns of tables 1 and 1b."""
    return " ".join(f"{f'{t} thread' + 's' * (t > 1):>24}" for t in threads)


def ms_cell(ms) -> str:
    """One table-1 cell: median / p90 ms (n timed steps)."""
    return f"{np.median(ms):>9.1f} / {np.percentile(ms, 90):>7.1f} ({len(ms):>2})"


def table_policy(model: WorldModel, scene, grid, threads, repeats: int, planners: list[str],
                 onnx_dir: Path | None) -> None:
    """With `onnx_dir` (exported graphs), MPPI and CEM are timed a second time with their rollouts on
    onnxruntime's CPU provider, given as many intra-op threads as torch."""
    state, goal = scene
    print("\n## 1. MpcPolicy.act, ms per MPC step: median / p90 (n repeats)")
    runs = [(name, False) for name in planners] + [(name, True) for name in planners
                                                    if onnx_dir is not None and name in GRADIENT_FREE]
    for name, on_onnx in runs:
        head = threads_head(threads)
        where = "onnxruntime CPU, threads as torch's" if on_onnx else "torch"
        print(f"\n{name} ({where})\n{'samples':>8} {'horizon':>8} {head}")
        for samples, horizon in grid:
            cells = []
            for t in threads:
                torch.set_num_threads(t)
                engine = OrtWorldModel(onnx_dir, "cpu", threads=t) if on_onnx else None
                policy = MpcPolicy.from_config(model, LOW_LEVEL_ONLY | {"planner": name, "num_samples": samples,
                                                                              "horizon": horizon}, seed=0,
                                               onnx=engine)
                policy.set_goal(goal)
                ms = timed(lambda: policy.act(state, (0.0, 0.0)), repeats)
                cells.append(ms_cell(ms))
            print(f"{samples:>8} {horizon:>8} {' '.join(f'{c:>24}' for c in cells)}", flush=True)


def table_shipped(model: WorldModel, model_path: str, shipped: dict, scenes_, threads, repeats: int) -> None:
    """Table 1b: MpcPolicy.act as the actor runs it (config/agent.yaml: hierarchy, critic, Mode-1 warm start,
    perceived-obstacle costs), without the plan deadline so that Mode-2's own time is what is timed."""
    print("\n## 1b. the shipped policy (config/agent.yaml as the actor runs it, plan_deadline 0), ms per MPC "
          "step: median / p90 (n repeats), over the table-2 start states")
    print(f"{'':>17} {threads_head(threads)}")
    cells = []
    for t in threads:
        torch.set_num_threads(t)
        policy = MpcPolicy.from_files(model, model_path, {**shipped, "plan_deadline": 0.0}, seed=0)
        ms = []
        for state, goal in scenes_:
            policy.reset()
            policy.set_goal(goal)
            ms.extend(timed(lambda: policy.act(state, (0.0, 0.0)), max(3, repeats // len(scenes_))))
        cells.append(ms_cell(ms))
    print(f"{'as shipped':>17} {' '.join(f'{c:>24}' for c in cells)}", flush=True)


def compare_mppi(model: WorldModel, scenes_, samples: int, horizon: int, steps: int,
                 precision: str) -> tuple[list, list, list, list, list]:
    """Per start state: ms of every command and the final plan's cost (float32 model), ours and theirs, and ms of
    the floor (rollout + cost of `samples` fixed random plans). Both plan with the model in `precision` (the peer
    gets the same bf16 copy: the fair comparison of planners)."""
    p = {**DEFAULTS, **LOW_LEVEL_ONLY, "planner": "mppi", "num_samples": samples, "horizon": horizon,
         "iterations": 1}
    high = [float(p["max_linear_velocity"]), float(p["max_angular_velocity"])]
    sigma = torch.tensor([float(p["noise_sigma_linear"]), float(p["noise_sigma_angular"])])
    objective = MpcPolicy.from_config(model, p).objective
    planning = model.with_rollout_dtype(PRECISIONS[precision])
    ours_ms, theirs_ms, ours_cost, theirs_cost, floor_ms = [], [], [], [], []
    for state, goal in scenes_:
        def cost(s: torch.Tensor, a: torch.Tensor, m: WorldModel = planning, goal=goal) -> torch.Tensor:
            ctx = CostContext(m.pose, m.clearance, torch.tensor(goal, dtype=torch.float32), torch.zeros(2))
            return objective.total(s, a, ctx)

        ours = make_planner(p, planning.next, cost, high, 0, seed=0)
        theirs = TheirMPPI(lambda s, a: planning.next(s, a), lambda s, a: s.new_zeros(s.shape[0]),
                           nx=state.shape[0], noise_sigma=torch.diag(sigma ** 2), num_samples=samples,
                           horizon=horizon, lambda_=float(p["temperature"]), u_min=-torch.tensor(high),
                           u_max=torch.tensor(high), U_init=torch.zeros(horizon, 2),
                           terminal_state_cost=lambda s, a: cost(s[0], a[0]))
        torch.manual_seed(0)  # pytorch-mppi draws from the global generator
        plans = (torch.rand(samples, horizon, 2) * 2 - 1) * torch.tensor(high)
        for i in range(steps + 1):  # the first command of each is warm-up
            start = time.perf_counter()
            ours.command(state)
            mid = time.perf_counter()
            with torch.no_grad():  # as any user would call it: no autograd graph through the model
                theirs.command(state)
                end = time.perf_counter()
                cost(rollout(planning.next, state[None], plans), plans)
            if i:
                ours_ms.append((mid - start) * 1e3)
                theirs_ms.append((end - mid) * 1e3)
                floor_ms.append((time.perf_counter() - end) * 1e3)
        with torch.no_grad():
            for plan, out in ((ours.plan, ours_cost), (theirs.U, theirs_cost)):
                out.append(float(cost(rollout(model.next, state[None], plan[None]), plan[None], model)[0]))
    return ours_ms, theirs_ms, ours_cost, theirs_cost, floor_ms


def table_compare(model: WorldModel, scenes_, grid, threads, steps: int, precisions: list[str]) -> None:
    print(f"\n## 2. our MPPI vs pytorch-mppi 0.9.1, same model/cost/budget, {len(scenes_)} start states x {steps} "
          "commands: ms per command median (p90), throughput ratio = their ms / our ms, final plan cost (mean, "
          "float32 model). Both plan with the model copy in the given precision (WorldModel.with_rollout_dtype). "
          "floor ms: one rollout + cost of the same budget alone; their ms / floor ms = the largest ratio any "
          "MPPI on this model could reach")
    print(f"{'threads':>7} {'precision':>9} {'samples':>8} {'horizon':>8} {'ours ms':>16} {'theirs ms':>16} "
          f"{'ratio':>6} {'ours cost':>10} {'theirs cost':>12} {'floor ms':>9} {'theirs/floor':>12}")
    for t in threads:
        torch.set_num_threads(t)
        for precision in precisions:
            for samples, horizon in grid:
                compare_row(model, scenes_, t, precision, samples, horizon, steps)


def compare_row(model: WorldModel, scenes_, t: int, precision: str, samples: int, horizon: int, steps: int) -> None:
    ours_ms, theirs_ms, ours_cost, theirs_cost, floor_ms = compare_mppi(model, scenes_, samples, horizon, steps,
                                                                        precision)
    o, th, fl = np.median(ours_ms), np.median(theirs_ms), np.median(floor_ms)
    print(f"{t:>7} {precision:>9} {samples:>8} {horizon:>8} {o:>8.1f} ({np.percentile(ours_ms, 90):>5.1f}) "
          f"{th:>8.1f} ({np.percentile(theirs_ms, 90):>5.1f}) {th / o:>6.2f} {np.mean(ours_cost):>10.3f} "
          f"{np.mean(theirs_cost):>12.3f} {fl:>9.1f} {th / fl:>12.2f}", flush=True)


def table_mode1(model: WorldModel, model_path: str, scenes_, budgets: list[int]) -> None:
    """Cold-start Mode-2 (one MPPI iteration, no warm start: a new goal or subgoal) with and without Mode-1's
    plan as a candidate start: the Objective's cost of the plan each returns, mean over the scenes."""
    mode1 = load_mode1(mode1_beside(model_path), model.cfg.embed_dim)
    print(f"\n## 3. Mode-1 as Mode-2's start: plan cost after one cold-start MPPI iteration, mean over {len(scenes_)} "
          "start states (lower is better); Mode-1 alone costs (samples 0)")
    print(f"{'samples':>8} {'Mode-2 alone':>13} {'Mode-1 start':>13} {'ms alone':>9} {'ms with':>8}")
    base = LOW_LEVEL_ONLY | {"planner": "mppi", "iterations": 1}
    for samples in budgets:
        row = []
        for use in ("none", "warm_start"):
            policy = MpcPolicy.from_config(model, base | {"num_samples": samples, "mode1": use}, seed=0,
                                           mode1=mode1 if use != "none" else None)
            costs, ms = [], []
            for state, goal in scenes_:
                policy.reset()
                policy.set_goal(goal)
                start = time.perf_counter()
                step = policy.act(state, (0.0, 0.0))
                ms.append((time.perf_counter() - start) * 1e3)
                costs.append(sum(step.cost_terms.values()))
            row.append((np.mean(costs), np.median(ms)))
        print(f"{samples:>8} {row[0][0]:>13.3f} {row[1][0]:>13.3f} {row[0][1]:>9.1f} {row[1][1]:>8.1f}", flush=True)
    alone = MpcPolicy.from_config(model, base | {"mode1": "alone"}, seed=0, mode1=mode1)
    costs = []
    for state, goal in scenes_:
        alone.reset()
        alone.set_goal(goal)
        costs.append(sum(alone.act(state, (0.0, 0.0)).cost_terms.values()))
    print(f"{0:>8} {'':>13} {np.mean(costs):>13.3f}   (Mode-1 alone)")


def time_to_cost(model: WorldModel, model_path: str, state: torch.Tensor, goal, max_steps: int,
                 their_samples: int = 1024) -> tuple[float, float, float, float]:
    """(our ms to reach the bar, or inf; pytorch-mppi's ms; the bar; our best cost) for one start state."""
    shipped = {**actor_params(config_file("agent.yaml")), "hierarchical": False, "plan_deadline": 0.0}
    policy = MpcPolicy.from_files(model, model_path, shipped, seed=0)
    policy.set_goal(goal)
    spent, ours = 0.0, []
    for _ in range(max_steps):
        start = time.perf_counter()
        step = policy.act(state, (0.0, 0.0))
        spent += (time.perf_counter() - start) * 1e3
        plan = policy.planner.plan if step.source == "mode2" else None
        ours.append((spent, plan))
    ctx = policy._ctx  # the cost the shipped policy plans under: both planners are scored with it
    objective = policy.objective

    def cost(s: torch.Tensor, a: torch.Tensor) -> torch.Tensor:
        return objective.total(s, a, ctx)

    high = policy.limiter.max_velocity.tolist()
    sigma = torch.tensor([float(shipped["noise_sigma_linear"]), float(shipped["noise_sigma_angular"])])
    horizon = policy.planner.horizon
    theirs = TheirMPPI(lambda s, a: model.next(s, a), lambda s, a: s.new_zeros(s.shape[0]), nx=state.shape[0],
                       noise_sigma=torch.diag(sigma ** 2), num_samples=their_samples, horizon=horizon,
                       lambda_=float(shipped["temperature"]), u_min=-torch.tensor(high), u_max=torch.tensor(high),
                       U_init=torch.zeros(horizon, 2), terminal_state_cost=lambda s, a: cost(s[0], a[0]))
    torch.manual_seed(0)
    with torch.no_grad():
        start = time.perf_counter()
        theirs.command(state)
        their_ms = (time.perf_counter() - start) * 1e3

        def plan_cost(plan: torch.Tensor) -> float:
            return float(cost(rollout(model.next, state[None], plan[None]), plan[None])[0])

        bar = plan_cost(theirs.U)
        costs = [(ms, plan_cost(plan)) for ms, plan in ours if plan is not None]
    reached = [ms for ms, c in costs if c <= bar]
    return (reached[0] if reached else float("inf")), their_ms, bar, min((c for _, c in costs), default=float("nan"))


def table_time_to_cost(model: WorldModel, model_path: str, scenes_, threads, max_steps: int) -> None:
    print(f"\n## 4. time to equal cost, {len(scenes_)} start states: ms for our shipped policy (Mode-1 start "
          "included, warm-started steps from a cold start, at most "
          f"{max_steps}) to reach the cost of pytorch-mppi's 1024-sample plan, and pytorch-mppi's ms for it; "
          "ratio = theirs / ours (median over the start states that reach it)")
    print(f"{'threads':>7} {'ours ms':>8} {'theirs ms':>10} {'ratio':>6} {'reached':>8} {'bar cost':>9} "
          f"{'our best':>9}")
    for t in threads:
        torch.set_num_threads(t)
        rows = [time_to_cost(model, model_path, state, goal, max_steps) for state, goal in scenes_]
        ours, theirs, bars, best = (np.asarray(col, dtype=float) for col in zip(*rows))
        ok = np.isfinite(ours)
        ratio = np.median(theirs[ok] / ours[ok]) if ok.any() else float("nan")
        print(f"{t:>7} {np.median(ours[ok]) if ok.any() else float('inf'):>8.1f} {np.median(theirs):>10.1f} "
              f"{ratio:>6.2f} {f'{ok.sum()}/{len(ok)}':>8} {np.mean(bars):>9.3f} {np.mean(best):>9.3f}", flush=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="table 1 on samples {256, shipped, 1024} x the "
                                                             "shipped horizon, fewer repeats")
    parser.add_argument("--planners", nargs="+", default=list(PLANNERS), choices=PLANNERS, help="table 1 rows")
    parser.add_argument("--repeats", type=int, default=15, help="timed MPC steps per table-1 cell")
    parser.add_argument("--scenes", type=int, default=4, help="start states for table 2")
    parser.add_argument("--steps", type=int, default=5, help="warm-started commands per start state in table 2")
    parser.add_argument("--threads", type=int, nargs="+", default=[1, 2])
    parser.add_argument("--model", default=str(default_model()))
    parser.add_argument("--precision", nargs="+", default=list(PRECISIONS), choices=list(PRECISIONS),
                        help="the planning model's precision(s) in table 2 (both planners)")
    parser.add_argument("--skip-table-1", action="store_true")
    parser.add_argument("--only-time-to-cost", action="store_true", help="table 4 alone")
    parser.add_argument("--cost-scenes", type=int, default=12, help="start states for table 4 (0: skip it)")
    parser.add_argument("--cost-steps", type=int, default=10, help="most warm-started steps of ours in table 4")
    parser.add_argument("--onnx", action="store_true", help="table 1 again for MPPI and CEM with rollouts on "
                        "onnxruntime (CPU), from the model's exported folder (`ojepa export`)")
    parser.add_argument("--mode1-scenes", type=int, default=24, help="start states for table 3 (0: skip it)")
    args = parser.parse_args()
    shipped = actor_params(config_file("agent.yaml"))
    budget = (int(shipped["num_samples"]), int(shipped["horizon"]))  # the budget the actor plans with
    samples = sorted({256, budget[0], 1024}) if args.quick else sorted({256, budget[0], 1024, 4096})
    horizons = (budget[1],) if args.quick else sorted({8, budget[1], 32})
    repeats = min(args.repeats, 8) if args.quick else args.repeats
    grid = [(n, h) for h in horizons for n in samples]
    compare_grid = sorted({(256, budget[1]), budget, (1024, budget[1])})  # pytorch-mppi is slow to repeat
    keep_freed_memory()  # what MpcPolicy does in the actor: both implementations run under it
    model, described = load(args.model)
    all_scenes = scenes(model, args.scenes)
    print(f"# plan_step: torch {torch.__version__}, {os.cpu_count()} CPUs, load average "
          f"{' '.join(f'{x:.1f}' for x in os.getloadavg())}, OMP_WAIT_POLICY={os.environ.get('OMP_WAIT_POLICY', '')}")
    print(f"# model: {described}")
    print(f"# shipped budget (config/agent.yaml): {budget[0]} samples x {budget[1]} steps, "
          f"{shipped['iterations']} iteration(s), planner {shipped['planner']}")
    if args.only_time_to_cost:
        table_time_to_cost(model, args.model, scenes(model, args.cost_scenes, seed=2), args.threads, args.cost_steps)
        return
    if not args.skip_table_1:
        onnx_dir = onnx_dir_for(args.model) if args.onnx else None
        if onnx_dir is not None:
            read_manifest(onnx_dir)  # a missing or broken export fails now, not after the torch rows
        table_policy(model, all_scenes[0], grid, args.threads, repeats, args.planners, onnx_dir)
        table_shipped(model, args.model, shipped, all_scenes, args.threads, repeats)
    table_compare(model, all_scenes, compare_grid, args.threads, args.steps, args.precision)
    if args.mode1_scenes:
        torch.set_num_threads(1)
        table_mode1(model, args.model, scenes(model, args.mode1_scenes, seed=1), [32, 64, 128, 256, 512, 1024])
    if args.cost_scenes:
        table_time_to_cost(model, args.model, scenes(model, args.cost_scenes, seed=2), args.threads, args.cost_steps)


if __name__ == "__main__":
    main()
