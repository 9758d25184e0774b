"""Camera-to-cmd_vel latency through the real ROS graph: `ojepa agent --task cross_room` in its own process(es),
observed over DDS from this one.

For every command: the actor's /ojepa/plan of the same tick is stamped with the tick's start, so the state it
planned from is the newest /ojepa/state received before then, and that state came from the newest camera
image received before it (perception publishes one state per image, in order). Latency = when /cmd_vel
arrived here - that image's header stamp (the sim stamps images when it renders them; one wall clock).
Also prints the control rate and the share of ticks Mode-1 answered. Figures, not a pass/fail test:

    python bench/latency.py [--seconds 40] [--processes] [--set actor_node.plan_deadline=0]
"""

from __future__ import annotations

import argparse
import bisect
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import rclpy
import yaml
from geometry_msgs.msg import Twist
from nav_msgs.msg import Path as PathMsg
from ojepa_interfaces.msg import State
from rclpy.node import Node
from sensor_msgs.msg import Image

from ojepa_ros.nodes.runtime import NodeSpinner
from ojepa_ros.paths import config_file


def seconds(stamp) -> float:
    return stamp.sec + stamp.nanosec * 1e-9


class Observer(Node):
    def __init__(self) -> None:
        super().__init__("latency_observer")
        self.images: list[tuple[float, float]] = []  # (received, header stamp)
        self.states: list[float] = []
        self.commands: list[float] = []
        self.plans: list[float] = []  # tick starts
        self.create_subscription(Image, "/camera/image_raw", self._image, 10)
        self.create_subscription(State, "/ojepa/state", lambda _: self.states.append(self._now()), 10)
        self.create_subscription(Twist, "/cmd_vel", lambda _: self.commands.append(self._now()), 10)
        self.create_subscription(PathMsg, "/ojepa/plan", lambda m: self.plans.append(seconds(m.header.stamp)), 10)

    def _now(self) -> float:
        return self.get_clock().now().nanoseconds * 1e-9

    def _image(self, msg: Image) -> None:
        self.images.append((self._now(), seconds(msg.header.stamp)))


def latencies(obs: Observer) -> tuple[np.ndarray, dict[str, float]]:
    """Camera-to-command seconds per planned command, and the stage medians."""
    image_rx = [t for t, _ in obs.images]
    out, to_state, state_age, tick_to_cmd = [], [], [], []
    for tick in obs.plans:
        s = bisect.bisect_left(obs.states, tick) - 1  # newest state before the tick
        c = bisect.bisect_left(obs.commands, tick)  # the command the tick published (first after it started)
        if s < 0 or c >= len(obs.commands):
            continue
        i = bisect.bisect_left(image_rx, obs.states[s]) - 1  # the image that state was encoded from
        if i < 0:
            continue
        stamp = obs.images[i][1]
        out.append(obs.commands[c] - stamp)
        to_state.append(obs.states[s] - stamp)
        state_age.append(tick - obs.states[s])
        tick_to_cmd.append(obs.commands[c] - tick)
    stages = {"camera->state": np.median(to_state), "state age at tick": np.median(state_age),
              "tick->cmd_vel": np.median(tick_to_cmd)}
    return np.asarray(out), {k: float(v) * 1e3 for k, v in stages.items()}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=40.0, help="how long to observe the driving agent")
    parser.add_argument("--task", default="cross_room", help="task file the agent drives (cross_room: ~30 s)")
    parser.add_argument("--processes", action="store_true", help="one process per node (default: composed)")
    parser.add_argument("--set", action="append", default=[], metavar="NODE.PARAM=VALUE",
                        help="override a parameter of config/agent.yaml, e.g. actor_node.num_samples=1024")
    args = parser.parse_args()
    config = yaml.safe_load(config_file().read_text())
    for item in args.set:
        key, _, value = item.partition("=")
        node, _, name = key.partition(".")
        config.setdefault(node, {"ros__parameters": {}})["ros__parameters"][name] = yaml.safe_load(value)
    with tempfile.NamedTemporaryFile("w", suffix=".yaml", delete=False) as handle:
        yaml.safe_dump(config, handle)
    cmd = [sys.executable, "-m", "ojepa_ros.cli", "agent", "--task", args.task, "--quiet", "--config", handle.name,
           "--duration", str(args.seconds + 8), "--topdown", str(Path(tempfile.gettempdir()) / "latency.png")]
    agent = subprocess.Popen(cmd + (["--processes"] if args.processes else []), stdout=subprocess.PIPE, text=True)
    rclpy.init()
    spinner = NodeSpinner()  # the agent's own executor: the observer takes as little of the CPU as it can
    obs = spinner.add(Observer())
    try:
        time.sleep(args.seconds)
    finally:
        summary = agent.communicate(timeout=120)[0]
        Path(handle.name).unlink()
    spinner.stop()
    spinner.shutdown()
    obs.destroy_node()
    rclpy.try_shutdown()
    lat, stages = latencies(obs)
    if not len(lat):
        print("no planned commands observed: did the agent start? its output:\n" + summary)
        return 1
    ms = lat * 1e3
    graph = "one process per node" if args.processes else "composed (one process)"
    print(f"camera -> /cmd_vel, {graph}, {len(ms)} planned commands over {args.seconds:.0f} s: "
          f"median {np.median(ms):.1f} ms, p99 {np.percentile(ms, 99):.1f} ms, max {ms.max():.1f} ms")
    print("  stage medians (ms): " + ", ".join(f"{k} {v:.1f}" for k, v in stages.items()))
    print("  agent: " + " ".join(line.strip() for line in summary.splitlines() if line.startswith(("goal", "actor"))))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
