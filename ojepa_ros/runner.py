"""`ojepa agent`: the pip-only stand-in for `ros2 launch ojepa_ros agent.launch.py`.

Starts the node graph of ojepa_ros.graph with config/agent.yaml, composed in one process (default,
one shared world-model engine) or one process per node (`--processes`), watches it with the monitor
node, and stops everything (robot included) on Ctrl-C, on reaching the goal, or after --duration.
With `--processes`, a node process that dies is restarted (ojepa_ros.supervisor: bounded retries with
back-off; by default a standby twin that has done its imports takes over), and every node process dies with the
runner, even a runner killed with SIGKILL.
"""

from __future__ import annotations

import argparse
import importlib
import os
import sys
import tempfile
import time
from pathlib import Path

import yaml

from ojepa_ros import graph
from ojepa_ros.paths import config_file
from ojepa_ros.supervisor import Supervisor


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--sim", choices=graph.SIM_CHOICES, default="rooms",
                        help="embedded simulator to start (none: drive Gazebo or a robot on the same topics)")
    parser.add_argument("--config", type=Path, default=None, help="parameters file (default: config/agent.yaml)")
    parser.add_argument("--model", default="", help="world model checkpoint (default: models/world_model.pt)")
    parser.add_argument("--task", default="", help="task file in config/tasks/ to apply at start-up, e.g. demo")
    parser.add_argument("--processes", action="store_true", help="one process per node instead of one process")
    parser.add_argument("--standby", action=argparse.BooleanOptionalAction, default=True,
                        help="with --processes: keep a started twin of each node process, its imports done, to take "
                             "over when it dies (default; restarts skip python, rclpy and torch start-up; twice the "
                             "processes: --no-standby for one each)")
    parser.add_argument("--use-sim-time", nargs="?", const="true", default="auto", choices=("auto", "true", "false"),
                        help="nodes run on /clock (auto, the default: when an embedded simulator runs; bare flag: true)")
    parser.add_argument("--stamped-cmd-vel", nargs="?", const="true", default=None, choices=("true", "false"),
                        help="velocity commands as geometry_msgs/TwistStamped (bare flag: true) or Twist (false); "
                             "default: as the parameters file says (config/agent.yaml: Twist)")
    parser.add_argument("--namespace", default="", help="namespace of every node and topic, e.g. robot1")
    parser.add_argument("--remap", action="append", default=[], metavar="NAME:=TOPIC",
                        help="rename one of the robot's topics (" + ", ".join(graph.ROBOT_TOPICS) + ") for every node, "
                             "e.g. odom:=/wheel/odometry; repeatable (ros2 launch: the <name>_topic arguments)")
    parser.add_argument("--log-level", default="info", choices=graph.LOG_LEVELS, help="log level of every node")
    parser.add_argument("--duration", type=float, default=0.0, help="stop after this many seconds (0: never)")
    parser.add_argument("--until-reached", action="store_true", help="stop once the actor reports the goal reached")
    parser.add_argument("--topdown", type=Path, default=Path("runs/agent_topdown.png"),
                        help="where to save a top-down picture of the run (rooms world only)")
    parser.add_argument("--quiet", action="store_true", help="no progress lines")


def _params_files(args: argparse.Namespace) -> tuple[list[str], list[str]]:
    """The ROS arguments that hand every node its parameters, and the temporary files among them (for the caller
    to remove once the nodes have started and stopped)."""
    config = args.config or config_file()
    extra = {name: {"ros__parameters": values}
             for name, values in graph.overrides(
                 args.sim, args.model, args.task, use_sim_time=graph.use_sim_time(args.sim, args.use_sim_time),
                 stamped_cmd_vel=None if args.stamped_cmd_vel is None else args.stamped_cmd_vel == "true").items()}
    remaps = [graph.topic_remap(*rule.partition(":=")[::2], f"--remap {rule} (NAME:=TOPIC)")  # (name, topic)
              for rule in args.remap] + graph.clock_remaps(args.sim)
    files = graph.ros_arguments(args.namespace, args.log_level, remaps)
    temporary = []
    docs = [extra] if extra else []
    if args.namespace:  # `node:` sections reach /ns/node only as `/**/node:`
        docs = [graph.anywhere(yaml.safe_load(Path(config).read_text()))] + [graph.anywhere(d) for d in docs]
    else:
        files += ["--params-file", str(config)]
    for doc in docs:
        handle = tempfile.NamedTemporaryFile("w", suffix=".yaml", prefix="ojepa_params_", delete=False)
        yaml.safe_dump(doc, handle)
        handle.close()
        temporary.append(handle.name)  # the nodes read it at start-up; none outlives this process
        files += ["--params-file", handle.name]
    return files, temporary


def _commands(specs: list[graph.NodeSpec], params: list[str]) -> dict[str, list[str]]:
    """Each node's process command line: through nodes/entry.py (quiet on a signal during start-up)."""
    return {spec.name: [sys.executable, "-m", "ojepa_ros.nodes.entry", spec.name, "--ros-args",
                        "-r", f"__node:={spec.name}", *spec.remap_args(), *params]
            for spec in specs}


DISCOVERY_DEFAULTS = {"ROS_AUTOMATIC_DISCOVERY_RANGE": "LOCALHOST"}  # unless the environment says otherwise


def discovery_environment() -> dict[str, str]:
    """The DDS discovery settings the agent runs with: localhost only by default (a peer elsewhere on the
    subnet cannot see the robot's topics or set its parameters), the domain id as ROS_DOMAIN_ID says (0 if
    unset). Applied to this process's environment, which every node process inherits."""
    for key, value in DISCOVERY_DEFAULTS.items():
        os.environ.setdefault(key, value)
    return {key: os.environ.get(key, "0") for key in ("ROS_AUTOMATIC_DISCOVERY_RANGE", "ROS_DOMAIN_ID")}


def run_agent(args: argparse.Namespace) -> int:
    from ojepa_ros.nodes.entry import exit_quietly_on_signals

    exit_quietly_on_signals()  # a Ctrl-C while torch and rclpy load: no traceback (the children's finally stops them)
    discovery = discovery_environment()  # before rclpy.init and before any node process starts
    if not args.quiet:
        print("[ojepa agent] DDS discovery: " + ", ".join(f"{k}={v}" for k, v in discovery.items()), flush=True)
    specs = graph.nodes(args.sim)
    params, temporary = _params_files(args)
    supervisor = Supervisor(_commands(specs, params), log=lambda line: print(f"[ojepa agent] {line}", flush=True),
                            standby=args.standby)
    if args.processes:
        supervisor.start()
    monitor: list[MonitorNode] = []

    def create() -> list:
        monitor.append(MonitorNode(verbose=not args.quiet))
        if args.processes:
            return monitor
        classes = [getattr(importlib.import_module(s.module), s.cls) for s in specs]
        return monitor + [cls(cli_args=["--ros-args", *s.remap_args()]) if s.remaps else cls()
                          for s, cls in zip(specs, classes)]

    started = time.monotonic()

    def done() -> bool:
        if args.processes:
            supervisor.poll()
        if args.duration and time.monotonic() - started > args.duration:
            return True
        return bool(args.until_reached and monitor and monitor[0].reached_after is not None)

    try:
        from ojepa_ros.nodes.monitor_node import MonitorNode  # rclpy and torch load while the children do
        from ojepa_ros.nodes.runtime import run_nodes

        # This process ends right after the summary (cli.py), so the middleware teardown is skipped as in a node
        # executable (runtime.run_nodes); with --processes it would also wait on node processes already gone.
        run_nodes(create, ["--ros-args", *params], until=done, own_process=True)
    finally:
        supervisor.stop()
        for path in temporary:
            os.unlink(path)
    return _summarise(monitor[0], args) if monitor else 1


def _summarise(monitor, args: argparse.Namespace) -> int:
    reached = monitor.reached_after is not None
    print(f"goal: {monitor.goal}  reached: {reached}"
          + (f" in {monitor.reached_after:.1f} s" if reached else "")
          + f"  final distance: {monitor.distance_to_goal():.2f} m  collision ticks: {monitor.collisions}")
    if monitor.actor_stats:
        print("actor: " + "  ".join(f"{k}={v}" for k, v in monitor.actor_stats.items()))
    if args.sim == "rooms" and monitor.trajectory:
        _save_topdown(monitor, args.topdown)
    return 0 if (reached or not args.until_reached) else 1


def _save_topdown(monitor, path: Path) -> None:
    import cv2
    import numpy as np

    from ojepa_ros.sim.nav_env import RoomsNavEnv

    env = RoomsNavEnv()
    trajectory = np.asarray(monitor.trajectory)
    heading = trajectory[-1] - trajectory[max(0, len(trajectory) - 10)]
    env.set_pose(*trajectory[-1], float(np.arctan2(heading[1], heading[0])))
    picture = env.render_topdown(512, trajectory=trajectory, goal=monitor.goal)
    env.close()
    path.parent.mkdir(parents=True, exist_ok=True)
    cv2.imwrite(str(path), cv2.cvtColor(picture, cv2.COLOR_RGB2BGR))
    print(f"top-down view of the run: {path}")
