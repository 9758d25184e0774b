"""NavigateToPose figures, not a pass/fail test: a real ActionClient against `ojepa agent` (composed graph, the
shipped model, the embedded world), N rounds of:

  reach    a goal 1 m away with a yaw: time to the result, feedback period, the heading it ends at
  cancel   a goal in the next room, cancelled while driving, each after the request: cancel answered; the stop's
           first command (the first /cmd_vel slower than the one before it from which every command only slows
           down to zero), against the actor's control tick (0.1 s at 10 Hz); the first command of that ramp below
           the speed at the request (later when the robot was still speeding up, since the ramp is at the comfort
           deceleration); the first zero /cmd_vel

    python bench/navigate.py [--rounds N] [--processes]

`--processes` runs each node in a process of its own, as `ros2 launch` does; without it the nodes share one
process (and its interpreter lock), as plain `ojepa agent` does.
"""

from __future__ import annotations

import argparse
import math
import os
import random
import signal
import subprocess
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "test"))
import conftest  # noqa: E402,F401 - the tests' helpers; it sets a ROS_DOMAIN_ID of its own on import
from test_navigator import FAR, NEAR, Client, until, wait  # noqa: E402

os.environ["ROS_DOMAIN_ID"] = str(random.SystemRandom().randint(101, 200))  # our own graph, for every process
os.environ.setdefault("ROS_AUTOMATIC_DISCOVERY_RANGE", "LOCALHOST")

import numpy as np  # noqa: E402
import rclpy  # noqa: E402
from action_msgs.msg import GoalStatus  # noqa: E402
from geometry_msgs.msg import Twist  # noqa: E402

from ojepa_ros.nodes.runtime import NodeSpinner  # noqa: E402

GOAL_YAW = 1.0  # rad; the straight line from the start to NEAR points at 0.29 rad


class TimedClient(Client):
    """The tests' client, with the arrival time (monotonic s) of every /cmd_vel."""

    def __init__(self, spinner) -> None:
        super().__init__(spinner)
        self.timed: list[tuple[float, float, float]] = []
        self.node.create_subscription(Twist, "/cmd_vel", lambda m: self.timed.append(
            (time.monotonic(), m.linear.x, m.angular.z)), 50)

    def heading(self) -> float:
        q = self.odoms[-1].pose.pose.orientation
        return 2.0 * math.atan2(q.z, q.w)


def reach(client: TimedClient) -> tuple[float, float, float]:
    """(s to the succeeded result, median s between feedback messages, |heading error| rad at the end)."""
    start = time.monotonic()
    handle, feedback = client.go(*NEAR, yaw=GOAL_YAW)
    result = wait(handle.get_result_async(), 60.0, "the goal's result")
    took = time.monotonic() - start
    if result.status != GoalStatus.STATUS_SUCCEEDED:
        raise RuntimeError(f"goal ended with status {result.status}: {result.result.error_msg}")
    stamps = [f.navigation_time.sec + f.navigation_time.nanosec * 1e-9 for f in feedback]
    error = client.heading() - GOAL_YAW
    return took, float(np.median(np.diff(stamps))), abs(math.atan2(math.sin(error), math.cos(error)))


def stop_ramp(speeds: list[float]) -> tuple[int, int]:
    """In `speeds` (forward /cmd_vel, the first one sent before the request, ending in a zero): the index of the
    stop's first command, slower than the one before it, from which every command only slows down, and of the zero."""
    end = speeds.index(0.0, 1)
    start = end
    while start > 1 and speeds[start - 1] >= speeds[start] and speeds[start - 1] <= speeds[start - 2]:
        start -= 1
    while start < end and speeds[start] >= speeds[start - 1]:  # a command held level is not the stop yet
        start += 1
    return start, end


def cancel(client: TimedClient) -> tuple[float, float, float, float]:
    """(s to the cancel answer, to the stop's first command, to the first command of its ramp below the speed at
    the request, to the first zero /cmd_vel), from the request."""
    handle, _ = client.go(*FAR)
    until(lambda: client.timed and client.timed[-1][1] > 0.3, 30.0, "the robot to drive at speed")
    asked = time.monotonic()
    speed = client.timed[-1][1]
    answer = handle.cancel_goal_async()
    until(answer.done, 5.0, "the cancel answer")
    answered = time.monotonic() - asked
    until(lambda: client.timed[-1][1] == 0.0 and client.timed[-1][2] == 0.0, 10.0, "a zero /cmd_vel")
    timed = list(client.timed)
    first = next(i for i, (t, _, _) in enumerate(timed) if t >= asked) - 1  # the last command before the request
    after = [(t - asked, v) for t, v, _ in timed[first:]]
    start, end = stop_ramp([v for _, v in after])
    below = next(i for i in range(start, end + 1) if after[i][1] < speed - 1e-6)
    return answered, after[start][0], after[below][0], after[end][0]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--processes", action="store_true", help="a process per node, as ros2 launch runs them")
    args = parser.parse_args()
    home = Path(os.environ.get("TMPDIR", "/tmp")) / f"ojepa_navigate_{os.getpid()}"
    agent = subprocess.Popen([sys.executable, "-m", "ojepa_ros.cli", "agent", "--quiet",
                              *(["--processes"] if args.processes else [])], cwd=home.parent,
                             stdout=subprocess.DEVNULL, stderr=subprocess.STDOUT, start_new_session=True,
                             env=dict(os.environ, ROS_HOME=str(home)))
    rclpy.init()
    spinner = NodeSpinner()
    client = TimedClient(spinner)
    reached, cancelled = [], []
    try:
        if not client.action.wait_for_server(timeout_sec=120.0):
            raise RuntimeError("no navigate_to_pose server")
        until(lambda: len(client.odoms) > 10, 60.0, "odometry")
        for i in range(args.rounds):
            client.back_to_start()
            reached.append(reach(client))
            client.back_to_start()
            cancelled.append(cancel(client))
            print(f"round {i + 1}: reached in {reached[-1][0]:.1f} s, feedback every {reached[-1][1]:.2f} s, heading "
                  f"off by {reached[-1][2]:.3f} rad; cancel answered {cancelled[-1][0] * 1e3:.0f} ms, stop from "
                  f"{cancelled[-1][1] * 1e3:.0f} ms, below the speed at the request {cancelled[-1][2] * 1e3:.0f} ms, "
                  f"zero {cancelled[-1][3] * 1e3:.0f} ms", flush=True)
    finally:
        os.killpg(agent.pid, signal.SIGINT)
        agent.wait(timeout=30)
        spinner.stop()
    r, c = np.array(reached), np.array(cancelled)
    layout = "a process per node" if args.processes else "one process"
    print(f"\n{args.rounds} rounds, {layout}, load average {os.getloadavg()[0]:.1f}: median (max)")
    print(f"  reach: {np.median(r[:, 0]):.1f} s ({r[:, 0].max():.1f}); feedback period {np.median(r[:, 1]):.2f} s "
          f"({r[:, 1].max():.2f}); final heading error {np.median(r[:, 2]):.3f} rad ({r[:, 2].max():.3f})")
    ms = [f"{np.median(c[:, k]) * 1e3:.0f} ms ({c[:, k].max() * 1e3:.0f})" for k in range(4)]
    print(f"  cancel: answered {ms[0]}; stop from {ms[1]}; below the speed at the request {ms[2]}; "
          f"zero /cmd_vel {ms[3]}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
