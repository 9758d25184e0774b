"""Closed-loop evaluation: the MPC actor drives the embedded world from start/goal pairs of a scenario.

A scenario names the worlds (held-out layouts by default, training ones, or one world by name), same-room or
cross-room pairs, obstacles dropped on the path and boxes sliding across it (placed by the evaluation's own
seeded generator, so never seen in training), the goal as a pose or as the camera image at the goal, and the
camera as it is or blacked out (the ablation that shows what the camera is for). Each control step encodes
the camera image + odometry with the world model and plans with MpcPolicy, exactly as the actor node does,
so the figures describe the shipped agent, not a privileged oracle. The embedded world waits for the planner,
so by default the evaluation sets plan_deadline to 0 (no Mode-1 fallback): its figures then do not depend
on how busy the host is; `--real-time` keeps the configured deadline, as the actor node runs it.
"""

from __future__ import annotations

import argparse
import json
import math
import sys
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, Callable, Mapping, Sequence

import cv2
import numpy as np
import torch
import yaml

from ojepa_ros.core.collision_monitor import MonitorConfig, MonitorGate, scan_points
from ojepa_ros.core.model_io import ModelFileError, load_world_model
from ojepa_ros.core.mpc import DEFAULTS, MpcPolicy, PolicyStep
from ojepa_ros.core.onnx_runtime import OnnxModelError, OrtWorldModel, TensorrtOptions, onnx_dir_for
from ojepa_ros.core.roadmap import RoadmapFileError
from ojepa_ros.core.odometry import proprio_from_odom
from ojepa_ros.core.world_model import WorldModel
from ojepa_ros.paths import config_file, default_model
from ojepa_ros.sim.nav_env import NavEnvConfig, RoomsNavEnv
from ojepa_ros.sim.rooms_world import RoomsLayout, sample_free_pose
from ojepa_ros.sim.world_family import SPLITS, mover_across, obstacles_on_path, split_seeds, world

MODES = ("same_room", "cross_room")
MIN_PAIR_DISTANCE = 1.0  # m: closer goals would be reached by drifting
OBSTACLE_PAIR_DISTANCE = 2.5  # m: with obstacles or movers, room for them between start and goal
GOALS = ("pose", "image")
CAMERAS = ("normal", "black")
ROADMAP_WORLD = "four_rooms"  # the shipped roadmap's world: elsewhere the actor plans without its high level


@dataclass(frozen=True)
class Scenario:
    """What the pairs are driven in: see the module docstring. worlds: "train", "heldout" or a world name."""

    worlds: str = "heldout"
    mode: str = "same_room"
    obstacles: int = 0
    moving_obstacles: int = 0
    goal: str = "pose"
    camera: str = "normal"

    def __post_init__(self) -> None:
        if self.mode not in MODES or self.goal not in GOALS or self.camera not in CAMERAS:
            raise ValueError(f"mode must be one of {MODES}, goal one of {GOALS}, camera one of {CAMERAS}")
        if self.obstacles < 0 or self.moving_obstacles < 0:
            raise ValueError("obstacles and moving_obstacles must be >= 0")
        if self.worlds not in SPLITS:
            world(self.worlds)  # raises for an unknown name

    @property
    def has_roadmap(self) -> bool:
        return self.worlds == ROADMAP_WORLD


@dataclass(frozen=True)
class Trial:
    """One start/goal pair in its world, with what the scenario dropped into it."""

    world: str
    layout: RoomsLayout
    start: tuple[float, float, float]
    goal: tuple[float, float]


def sample_pairs(layout: RoomsLayout, rng: np.random.Generator, pairs: int, mode: str,
                 min_distance: float = MIN_PAIR_DISTANCE) -> list[tuple[tuple[float, float, float], tuple[float, float]]]:
    """(start pose, goal xy) pairs in free space; same_room: one room, cross_room: two different rooms."""
    if mode not in MODES:
        raise ValueError(f"mode must be one of {MODES}, got {mode!r}")
    n_rooms = len(layout.rooms)
    if mode == "cross_room" and n_rooms < 2:
        raise ValueError(f"world {layout.name!r} has one room: no cross-room pairs")
    out = []
    while len(out) < pairs:
        room = int(rng.integers(n_rooms))
        goal_room = room if mode == "same_room" else (room + int(rng.integers(1, n_rooms))) % n_rooms
        start = sample_free_pose(layout, rng, room=room)
        gx, gy, _ = sample_free_pose(layout, rng, room=goal_room)
        if math.hypot(gx - start[0], gy - start[1]) >= min_distance:
            out.append((start, (gx, gy)))
    return out


def scenario_trials(scenario: Scenario, pairs: int, seed: int) -> list[Trial]:
    """`pairs` trials, reproducible from seed: a world per trial (drawn from the split, or the named one), a pair
    in it, then the obstacles and movers on that pair's path; a pair whose path has no room for them is redrawn."""
    rng = np.random.default_rng([seed, 0x5EE])
    far = OBSTACLE_PAIR_DISTANCE if scenario.obstacles or scenario.moving_obstacles else MIN_PAIR_DISTANCE
    trials = []
    while len(trials) < pairs:
        name = (f"seed_{int(rng.choice(split_seeds(scenario.worlds)))}" if scenario.worlds in SPLITS
                else scenario.worlds)
        layout = world(name)
        for _ in range(50):
            start, goal = sample_pairs(layout, rng, 1, scenario.mode, far)[0]
            placed = obstacles_on_path(layout, start[:2], goal, scenario.obstacles, rng)
            if len(placed) == scenario.obstacles:
                break
        else:
            continue  # this world has no room for them: draw another
        movers = tuple(mover_across(layout.with_obstacles(placed), start[:2], goal, rng, name=f"mover_{k}",
                                    fraction=(k + 1) / (scenario.moving_obstacles + 1))
                       for k in range(scenario.moving_obstacles))
        trials.append(Trial(name, layout.with_obstacles(placed, movers), start, goal))
    return trials


def actor_params(path: Path) -> dict[str, Any]:
    """actor_node's ROS parameters from an agent.yaml, so evaluation runs the configured agent."""
    return yaml.safe_load(path.read_text())["actor_node"]["ros__parameters"]


def monitor_config(path: Path) -> MonitorConfig:
    """collision_monitor_node's geometry from an agent.yaml (its timeouts are the node's own business)."""
    node = yaml.safe_load(path.read_text()).get("collision_monitor_node", {}).get("ros__parameters", {})
    return MonitorConfig(**{k: float(v) for k, v in node.items() if k in MonitorConfig.__dataclass_fields__})


def rooms_env(model: WorldModel, max_steps: int) -> RoomsNavEnv:
    """The embedded rooms world with the camera and control step the model was trained on."""
    size = model.cfg.image_size
    return RoomsNavEnv(NavEnvConfig(image_width=size, image_height=size, control_dt=model.cfg.dt,
                                    max_steps=max_steps))


def goal_heading(start: Sequence[float], goal: Sequence[float]) -> float:
    """Where an image goal's camera faces: along start -> goal (rad)."""
    return math.atan2(goal[1] - start[1], goal[0] - start[0])


def view_state(model: WorldModel, env: RoomsNavEnv, x: float, y: float, yaw: float) -> torch.Tensor:
    """The state [D] the model encodes from the camera image at pose (x, y, yaw), standing still."""
    odom = torch.from_numpy(proprio_from_odom(np.array([x, y, yaw, 0.0, 0.0])))[None]
    return model.encode(torch.from_numpy(env.image_at(x, y, yaw))[None], odom)[0]


StepHook = Callable[[torch.Tensor, dict[str, np.ndarray], PolicyStep], None]


@torch.no_grad()
def drive(model: WorldModel, env: RoomsNavEnv, policy: MpcPolicy, start: tuple[float, float, float],
          goal: tuple[float, float], max_steps: int, seed: int, on_step: StepHook | None = None,
          camera: str = "normal", goal_as_image: bool = False, monitor: MonitorGate | None = None) -> dict[str, Any]:
    """One closed-loop episode from `start` to `goal`; `on_step(state, obs, step)` sees every command before it
    is executed (DAgger records the student's states through it). camera "black": every image is zeros.
    goal_as_image: the actor gets the camera image at the goal (facing along start -> goal), not its pose;
    success is still the robot within the goal tolerance of the goal position. monitor: the collision monitor
    between the actor and the base, as collision_monitor_node in the ROS graph (None: the actor's command
    drives the base unchecked); "monitor_stops" counts the steps it held a moving command back; "trajectory"
    holds the odometry position [x, y] before each step."""
    obs, info = env.reset(seed=seed, options={"start": start, "goal": goal})
    policy.reset()
    if monitor is not None:
        monitor.reset()
    monitor_stops = 0
    if goal_as_image:
        policy.set_goal_image(view_state(model, env, goal[0], goal[1], goal_heading(start, goal)))
    else:
        policy.set_goal(goal)
    steps, collisions, success, mode1_steps, plan_ms, recoveries, failed = 0, 0, False, 0, [], [], ""
    trajectory = []
    info = {**info, "collision": env.in_collision()}
    while steps < max_steps and not success:
        image = obs["image"] if camera == "normal" else np.zeros_like(obs["image"])
        proprio = torch.from_numpy(proprio_from_odom(obs["odom"]))[None]
        trajectory.append(obs["odom"][:2].tolist())
        state = model.encode(torch.from_numpy(image)[None], proprio)[0]
        scan = scan_points(obs["scan"], env.scan_angles[0], 2 * math.pi / env.config.scan_beams, 0.0,
                           env.config.scan_range)
        out = policy.act(state, obs["odom"][3:5], odom_xy=obs["odom"][:2], dt=env.config.control_dt,
                         contact=info["collision"], scan=scan)
        if on_step is not None:
            on_step(state, obs, out)
        if out.source == "mode1":
            mode1_steps += 1
        elif out.status == "ok" and out.source == "mode2":
            plan_ms.append(out.plan_ms)
        if out.status == "recovery" and "#" in out.recovery:  # a behaviour started ("<name> #n (why)")
            recoveries.append(out.recovery.split(" ", 1)[0])
        failed = failed or (out.recovery if out.status == "failed" else "")
        command = out.command
        if monitor is not None:
            monitor.bumper(info["collision"])
            command = np.asarray(monitor.gate(out.command, scan).command)
            monitor_stops += int(abs(command[0]) < abs(out.command[0]) - 1e-9)
        obs, _, success, _, info = env.step(command)
        steps += 1
        collisions += int(info["collision"])
    return {"start": list(start), "goal": list(goal), "success": bool(success), "steps": steps,
            "collision_steps": collisions, "final_distance_m": float(info["distance_to_goal"]),
            "mode1_steps": mode1_steps, "plan_ms": plan_ms, "recoveries": recoveries, "failed": failed,
            "monitor_stops": monitor_stops, "trajectory": trajectory}


@torch.no_grad()
def evaluate(model_path: str | Path, pairs: int = 20, scenario: Scenario = Scenario(), seed: int = 0,
             max_steps: int = 600, params: Mapping[str, Any] | None = None,
             monitor: MonitorConfig | None = None, pictures: Path | None = None) -> dict[str, Any]:
    """Success rate, time to goal, contacts and planning time over `pairs` closed-loop episodes of `scenario`,
    with the collision monitor `monitor` between the actor and the base (None: without one). With `pictures`,
    a top-down view of each failed pair's run is written there (`<mode>_<pair>_<world>.png`).

    Outside the roadmap's world the actor plans without its high level (a roadmap is one world's experience)."""
    model = load_world_model(model_path)
    env = rooms_env(model, max_steps)
    params = dict(params or {})
    if not scenario.has_roadmap:
        params["hierarchical"] = False
    onnx = None
    if params.get("backend", "torch") == "onnxruntime":  # as actor_node: rollouts on the exported graphs
        onnx = OrtWorldModel(params.get("onnx_dir") or onnx_dir_for(model_path), params.get("onnx_providers", "auto"),
                             threads=torch.get_num_threads(), tensorrt=TensorrtOptions.from_params(params))
    policy = MpcPolicy.from_files(model, model_path, params, seed=seed, onnx=onnx)
    gate = None if monitor is None else MonitorGate(monitor)
    dt = env.config.control_dt
    episodes = []
    try:
        for i, trial in enumerate(scenario_trials(scenario, pairs, seed)):
            env.set_layout(trial.layout)
            episode = drive(model, env, policy, trial.start, trial.goal, max_steps, seed, camera=scenario.camera,
                            goal_as_image=scenario.goal == "image", monitor=gate)
            trajectory = np.asarray(episode.pop("trajectory"))
            if pictures is not None and not episode["success"]:
                save_topdown(env, trajectory, trial.goal, pictures / f"{scenario.mode}_{i:03d}_{trial.world}.png")
            episode["world"] = trial.world
            episode["plan_ms_median"] = float(np.median(episode["plan_ms"])) if episode["plan_ms"] else float("nan")
            episodes.append(episode)
    finally:
        env.close()
    plan_ms = [ms for e in episodes for ms in e.pop("plan_ms")]
    mode1_steps = sum(e.pop("mode1_steps") for e in episodes)
    times = [e["steps"] * dt for e in episodes if e["success"]]
    steps = sum(e["steps"] for e in episodes)
    return {
        "scenario": asdict(scenario), "mode": scenario.mode, "pairs": pairs, "seed": seed,
        "high_level": bool(params.get("hierarchical", True)), "collision_monitor": monitor is not None,
        "plan_deadline": float(params.get("plan_deadline", DEFAULTS["plan_deadline"])),
        "success_rate": float(np.mean([e["success"] for e in episodes])),
        "mean_time_to_goal_s": float(np.mean(times)) if times else float("nan"),
        "collisions": int(sum(e["collision_steps"] for e in episodes)),
        "contact_step_fraction": sum(e["collision_steps"] for e in episodes) / max(steps, 1),
        "episodes_with_collision": int(sum(e["collision_steps"] > 0 for e in episodes)),
        "mean_final_distance_m": float(np.mean([e["final_distance_m"] for e in episodes])),
        "mode1_commands": mode1_steps,  # Mode-1 alone, or Mode-2 past its deadline
        "recoveries": int(sum(len(e["recoveries"]) for e in episodes)),  # recovery behaviours started
        "goals_failed_stuck": int(sum(bool(e["failed"]) for e in episodes)),
        "monitor_stops": int(sum(e["monitor_stops"] for e in episodes)),
        "plan_ms_median": float(np.median(plan_ms)) if plan_ms else float("nan"),
        "plan_ms_p99": float(np.percentile(plan_ms, 99)) if plan_ms else float("nan"),
        "episodes": episodes,
    }


def save_topdown(env: RoomsNavEnv, trajectory: np.ndarray, goal: tuple[float, float], path: Path) -> None:
    """The whole floor from above as the episode left it: obstacles, the robot, its path and the goal."""
    path.parent.mkdir(parents=True, exist_ok=True)
    picture = env.render_topdown(512, trajectory=trajectory, goal=goal)
    cv2.imwrite(str(path), cv2.cvtColor(picture, cv2.COLOR_RGB2BGR))


def print_report(report: dict[str, Any], per_pair: bool) -> None:
    """The table `ojepa eval` prints: one row per pair (with per_pair), then the total."""
    sc = report["scenario"]
    print(f"# worlds={sc['worlds']} mode={sc['mode']} obstacles={sc['obstacles']} moving={sc['moving_obstacles']} "
          f"goal={sc['goal']} camera={sc['camera']} high_level={'on' if report['high_level'] else 'off'} "
          f"plan_deadline={report['plan_deadline']:g} s "
          f"collision_monitor={'on' if report.get('collision_monitor') else 'off'}")
    print(f"{'pair':<6} {'world':<11} {'success':>8} {'time s':>7} {'contact':>8} {'final m':>8} {'plan ms':>8} "
          f"{'recov':>6}")
    if per_pair:
        for i, e in enumerate(report["episodes"]):
            time_s = f"{e['steps'] * 0.1:.1f}" if e["success"] else "-"
            print(f"{i:<6} {e['world']:<11} {'yes' if e['success'] else 'no':>8} {time_s:>7} {e['collision_steps']:>8} "
                  f"{e['final_distance_m']:>8.2f} {e['plan_ms_median']:>8.1f} {len(e['recoveries']):>6}"
                  + (f"  {e['failed']}" if e["failed"] else ""))
    print(f"{'total':<6} {report['pairs']:<11} {report['success_rate']:>8.0%} {report['mean_time_to_goal_s']:>7.1f} "
          f"{report['collisions']:>8} {report['mean_final_distance_m']:>8.2f} {report['plan_ms_median']:>8.1f}")
    print(f"  episodes with contact: {report['episodes_with_collision']}/{report['pairs']}, steps in contact: "
          f"{100 * report['contact_step_fraction']:.2f} %, plan ms p99: {report['plan_ms_p99']:.1f}, "
          f"Mode-1 commands: {report['mode1_commands']}, recoveries: {report['recoveries']} "
          f"({report['goals_failed_stuck']} goals given up stuck), commands the monitor held back: "
          f"{report.get('monitor_stops', 0)}")


def main(argv: list[str] | None = None) -> int:
    """`ojepa eval`: planner settings and cost weights come from actor_node in config/agent.yaml."""
    parser = argparse.ArgumentParser(prog="ojepa eval", description=__doc__.splitlines()[0])
    parser.add_argument("--model", type=Path, default=default_model())
    parser.add_argument("--config", type=Path, default=config_file("agent.yaml"))
    parser.add_argument("--worlds", default="heldout",
                        help="heldout (default: layouts no training saw), train, or a world: four_rooms, seed_N")
    parser.add_argument("--pairs", type=int, default=20)
    parser.add_argument("--mode", choices=(*MODES, "both"), default="both")
    parser.add_argument("--obstacles", type=int, default=0, help="obstacles dropped on or beside each pair's path")
    parser.add_argument("--moving-obstacles", type=int, default=0, help="boxes sliding across each pair's path")
    parser.add_argument("--goal", choices=GOALS, default="pose", help="the goal as a pose, or as the image seen there")
    parser.add_argument("--camera", choices=CAMERAS, default="normal", help="black: the blind-camera ablation")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--max-steps", type=int, default=600, help="control steps per episode (0.1 s each)")
    parser.add_argument("--per-pair", action="store_true", help="print a row per pair, not just the total")
    parser.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                        help="override an actor_node parameter, e.g. hierarchical=false or planner=cem (repeatable)")
    parser.add_argument("--json", type=Path, help="also write the full report (incl. every episode) here")
    parser.add_argument("--pictures", type=Path, metavar="DIR",
                        help="write a top-down picture of each failed pair's run here")
    parser.add_argument("--monitor", choices=("on", "off"), default="on",
                        help="on (default, as deployed): the collision monitor (collision_monitor_node's settings "
                        "in --config) between the actor and the base; off: the actor's commands drive unchecked")
    parser.add_argument("--real-time", action="store_true", help="keep the configured plan_deadline (Mode-1 answers "
                        "when Mode-2 runs late on this host) instead of waiting for every Mode-2 plan")
    args = parser.parse_args(argv)
    params = actor_params(args.config)
    if not args.real_time:
        params["plan_deadline"] = 0.0
    for item in args.set:
        key, sep, value = item.partition("=")
        if not sep or key not in params:
            parser.error(f"--set {item!r}: expected KEY=VALUE with KEY an actor_node parameter")
        params[key] = yaml.safe_load(value)
    modes = MODES if args.mode == "both" else (args.mode,)
    try:
        scenarios = [Scenario(args.worlds, m, args.obstacles, args.moving_obstacles, args.goal, args.camera)
                     for m in modes]
        monitor = monitor_config(args.config) if args.monitor == "on" else None
        reports = [evaluate(args.model, args.pairs, sc, args.seed, args.max_steps, params, monitor, args.pictures)
                   for sc in scenarios]
    except (ModelFileError, RoadmapFileError, OnnxModelError, ValueError) as err:
        print(f"ojepa eval: {err}", file=sys.stderr)
        return 2
    for report in reports:
        print_report(report, args.per_pair)
    if args.json:
        args.json.write_text(json.dumps(reports, indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
