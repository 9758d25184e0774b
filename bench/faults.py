"""Fault figures, not a pass/fail test: the issue's target table, measured through the real ROS graph and real
processes on this machine. Sections (default all):

  kill     `ojepa agent --processes --task cross_room`; each node in turn killed with SIGKILL while the robot
           drives, once every node has a ready standby twin: when the node's process is back, when a managed
           node is active again, when the robot drives again, goal kept, contacts
  memory   a memory_node process killed with SIGKILL at random times mid-episode: seconds of messages lost,
           readable by rosbags (Reader, AnyReader) and mcap afterwards
  stale    the actor (shipped model) driving, then its inputs stop: first braking command after the watchdog
           timeout, time and distance to standstill against the safe-stop ramp's
  fuzz     `ojepa agent --processes --no-standby` driving between rooms while test/test_fuzz.py's strategies send
           malformed messages on every topic a node subscribes to (/cmd_vel aside: it goes to the base, no node of
           ours after it): nodes that died (a new pid), /cmd_vel from the collision monitor outside the robot's
           limits or not finite, contacts (rising edges of sim_node's own /collision, the fuzzer's left out)
  load     the agent (composed, or a process per node with --processes), camera at 100 Hz (sim 20 Hz + 80 Hz of
           extra frames) and goals at 50 Hz: the actor's control rate

    python bench/faults.py [--only kill memory stale fuzz load] [--runs N] [--examples N] [--load-seconds S]
                           [--processes]

The kill and load sections drive the embedded robot, whose sim_node publishes the scan the collision
monitor reads.
"""

from __future__ import annotations

import argparse
import math
import os
import random
import signal
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "test"))
import conftest  # noqa: E402,F401 - the tests' helpers; it sets a ROS_DOMAIN_ID of its own on import

os.environ["ROS_DOMAIN_ID"] = str(random.SystemRandom().randint(101, 200))  # our own graph, for every process
os.environ.setdefault("ROS_AUTOMATIC_DISCOVERY_RANGE", "LOCALHOST")

import numpy as np  # noqa: E402
import rclpy  # noqa: E402
from diagnostic_msgs.msg import DiagnosticArray  # noqa: E402
from lifecycle_msgs.msg import TransitionEvent  # noqa: E402
from geometry_msgs.msg import PoseStamped, Twist  # noqa: E402
from nav_msgs.msg import Odometry  # noqa: E402
from ojepa_interfaces.msg import State  # noqa: E402
from rclpy.node import Node  # noqa: E402
from rclpy.qos import DurabilityPolicy, QoSProfile  # noqa: E402
from sensor_msgs.msg import Image  # noqa: E402
from std_msgs.msg import Bool, String  # noqa: E402

from ojepa_ros.graph import MANAGED  # noqa: E402
from ojepa_ros.graph import nodes as graph_nodes  # noqa: E402
from ojepa_ros.nodes.runtime import NodeSpinner  # noqa: E402

LATCHED = QoSProfile(depth=1, durability=DurabilityPolicy.TRANSIENT_LOCAL)
GAP = 0.3  # s without /cmd_vel that counts as stopped
HOLD = 1.0  # s of driving without a stop that count as driving again after a kill
NODES = tuple(spec.name for spec in graph_nodes("rooms"))  # each killed in turn


class Watcher(Node):
    """Listens to the robot side of the graph: commands, status, goal, contacts, odometry, diagnostics."""

    def __init__(self) -> None:
        super().__init__(f"faults_watcher_{os.getpid()}")
        self.cmds: list[tuple[float, float, float]] = []
        self.statuses: list[tuple[float, str]] = []
        self.goals: list[tuple[float, float]] = []
        self.contacts = 0
        self.rates: list[float] = []
        self.activations: list[tuple[float, str]] = []  # (when, managed node) it reached active
        self.create_subscription(Twist, "/cmd_vel", lambda m: self.cmds.append((self.now(), m.linear.x, m.angular.z)), 50)
        self.create_subscription(String, "/ojepa/actor_status", lambda m: self.statuses.append((self.now(), m.data)), 50)
        self.create_subscription(PoseStamped, "/ojepa/goal",
                                 lambda m: self.goals.append((m.pose.position.x, m.pose.position.y)), LATCHED)
        self.create_subscription(Bool, "/collision", self._on_collision, 50)
        self.create_subscription(DiagnosticArray, "/diagnostics", self._on_diag, 10)
        for name in MANAGED:
            self.create_subscription(TransitionEvent, f"/{name}/transition_event",
                                     lambda m, n=name: self._on_transition(n, m), 10)

    def now(self) -> float:
        return self.get_clock().now().nanoseconds * 1e-9

    def _on_transition(self, name: str, msg: TransitionEvent) -> None:
        if msg.goal_state.label == "active":
            self.activations.append((self.now(), name))

    def _on_collision(self, msg: Bool) -> None:
        self.contacts += int(msg.data)

    def _on_diag(self, msg: DiagnosticArray) -> None:
        for status in msg.status:
            if status.name == "actor_node: control":
                self.rates += [float(kv.value) for kv in status.values if kv.key == "control_rate_hz"]

    def driving_since(self, t: float) -> float | None:
        """The first time at or after t when the actor is active and the base is told to move."""
        for when, v, _ in list(self.cmds):
            if when >= t and abs(v) > 0.05 and self.status_at(when) == "active":
                return when
        return None

    def steady_since(self, t: float, hold: float = HOLD) -> float | None:
        """The start of the first stretch, at or after t, in which the actor is active and the base is told to move
        for `hold` s without a stop (a command gap over GAP s, a zero command or the actor not active): the robot
        drives again for good, not for a command or two that a late input let out before the stop."""
        start, previous = None, t
        for when, v, w in list(self.cmds):
            if when < t:
                continue
            if when - previous > GAP or (v == 0.0 and w == 0.0) or self.status_at(when) != "active":
                start = None
            elif start is None and abs(v) > 0.05:
                start = when
            if start is not None and when - start >= hold:
                return start
            previous = when
        return None

    def status_at(self, t: float) -> str:
        latest = [s for when, s in list(self.statuses) if when <= t]
        return latest[-1] if latest else ""


def agent_process(*args: str) -> subprocess.Popen:
    """`ojepa agent` in a session of its own; its nodes' log lines (wall-clock stamped) go to a file, named on
    stdout, so a full pipe never blocks a node and the time a restart took can be read from them."""
    log = tempfile.NamedTemporaryFile("w", prefix="faults_agent_", suffix=".log", delete=False)
    print(f"  agent log: {log.name}", flush=True)
    return subprocess.Popen([sys.executable, "-m", "ojepa_ros.cli", "agent", "--quiet", *args],
                            stdout=log, stderr=subprocess.STDOUT, text=True, start_new_session=True)


def runner_children(runner: int, name: str) -> list[tuple[int, str]]:
    """(pid, comm) of the runner's live child processes for node `name` (`-m ojepa_ros.nodes.entry NAME`, or
    `-m ojepa_ros.nodes.NAME`): the node's process and its standby twin."""
    found = []
    for pid in map(int, filter(str.isdigit, os.listdir("/proc"))):
        try:
            cmdline = Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")
            stat = Path(f"/proc/{pid}/stat").read_text()
            comm = Path(f"/proc/{pid}/comm").read_text().strip()
        except OSError:
            continue
        parent = int(stat.rsplit(")", 1)[1].split()[1])
        if parent != runner or stat.rsplit(")", 1)[1].split()[0] == "Z":
            continue
        if f"ojepa_ros.nodes.{name}".encode() in cmdline or (b"ojepa_ros.nodes.entry" in cmdline
                                                             and name.encode() in cmdline):
            found.append((pid, comm))
    return found


def node_pid(runner: int, name: str) -> int | None:
    """The pid of the runner's child process running node `name`; a standby twin (named TWIN_COMMS) is not it."""
    from ojepa_ros.standby import TWIN_COMMS

    return next((pid for pid, comm in runner_children(runner, name) if comm not in TWIN_COMMS), None)


def twins_ready(runner: int) -> bool:
    """Every node of the graph has a standby twin ready to take over (named READY_COMM): the graph at rest."""
    from ojepa_ros.standby import READY_COMM

    return all(any(comm == READY_COMM for _, comm in runner_children(runner, name)) for name in NODES)


def wait(predicate, timeout: float) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(0.02)
    return False


def stop_agent(agent: subprocess.Popen, graph) -> None:
    """Ctrl-C to the agent's process group (SIGKILL if it has not ended in 30 s), then the watching graph."""
    os.killpg(agent.pid, signal.SIGINT)
    try:
        agent.communicate(timeout=30)
    except subprocess.TimeoutExpired:
        os.killpg(agent.pid, signal.SIGKILL)
    graph.close()


def kill_section(runs: int, standby: bool = True) -> list[str]:
    from conftest import Graph

    graph = Graph()
    watcher = graph.add(Watcher())
    rows = []
    results: dict[str, list[tuple[float | None, float | None, bool, int]]] = {n: [] for n in NODES}
    active_again: dict[str, list[float]] = {n: [] for n in NODES}  # managed nodes: kill to active again
    reached_goal: dict[str, int] = dict.fromkeys(NODES, 0)  # trials that reached the goal before driving 1 s
    goal_pub = graph.add(Node(f"faults_goals_{os.getpid()}")).create_publisher(PoseStamped, "/goal_pose", 10)
    goals = [(6.0, 2.0), (6.0, 6.0), (2.0, 6.0), (2.0, 2.0)]
    agent = agent_process("--processes", "--duration", "3600", *([] if standby else ["--no-standby"]))
    try:
        if not wait(lambda: any(s == "idle" for _, s in watcher.statuses), 90.0):
            return ["kill: the agent did not come up"]
        trial = 0
        for run in range(runs):
            for name in NODES:
                goal = goals[trial % len(goals)]
                trial += 1
                # Each kill hits a graph at rest: the twin the last handover started (standby_delay later, then its
                # imports: 2-5 s of CPU on these cores) has finished starting, and does not starve this trial.
                rested = time.monotonic()
                if standby and not wait(lambda: twins_ready(agent.pid), 60.0):
                    print("  not every node has a ready twin after 60 s; killing all the same", flush=True)
                rested = time.monotonic() - rested
                msg = PoseStamped()
                msg.header.frame_id = "odom"
                msg.pose.position.x, msg.pose.position.y = goal
                msg.pose.orientation.w = 1.0
                start = watcher.now()
                goal_pub.publish(msg)
                # The goal is in force once the configurator has published it (a restarted one may still be
                # discovering the publisher) and the robot drives after that.
                if not wait(lambda: goal_pub.publish(msg) or (bool(watcher.goals) and tuple(watcher.goals[-1]) == goal
                                                             and watcher.driving_since(start) is not None), 30.0):
                    results[name].append((None, None, False, 0))
                    continue
                time.sleep(1.0)
                pid = node_pid(agent.pid, name)
                contacts = watcher.contacts
                killed = watcher.now()
                os.kill(pid, signal.SIGKILL)
                print(f"  {killed:.3f} kill -9 {name} (pid {pid})", flush=True)
                back = driving = None
                if wait(lambda: (p := node_pid(agent.pid, name)) is not None and p != pid, 30.0):
                    back = watcher.now() - killed  # the new process runs (its start-up still ahead)
                # Driving again: the start of HOLD s of driving without a stop, after the kill (a node the control
                # loop does not wait for, memory, may never interrupt it: then about 0).
                time.sleep(0.5)  # a stop the kill causes comes within the watchdog's timeout
                def reached() -> bool:  # since the kill: a reached goal is followed by `idle` within ~20 ms
                    return any(s == "reached" for when, s in list(watcher.statuses) if when >= killed)

                if wait(lambda: watcher.steady_since(killed) is not None or reached(), 30.0) and not reached():
                    driving = watcher.steady_since(killed) - killed
                reached_goal[name] += int(driving is None and reached())
                active = next((when - killed for when, n in list(watcher.activations) if n == name and when >= killed),
                              None)
                if active is not None:
                    active_again[name].append(active)
                # Kept: the trial's goal still in force, driven to again or reached (the robot may have been near it).
                kept = (driving is not None or reached()) and (
                    not watcher.goals or tuple(np.round(watcher.goals[-1], 3)) == goal)
                results[name].append((back, driving, kept, watcher.contacts - contacts))
                print(f"  kill -9 {name} (twins ready after {rested:.1f} s): respawned after "
                      f"{back if back is None else round(back, 2)} s, "
                      + (f"active again after {active:.2f} s, " if active is not None else "")
                      + f"status {watcher.status_at(watcher.now())!r}, "
                      f"driving again after {driving if driving is None else round(driving, 2)} s, goal kept {kept} "
                      f"(latest /ojepa/goal {watcher.goals[-1:] }), contacts {watcher.contacts - contacts}", flush=True)
    finally:
        stop_agent(agent, graph)
    for name, trials in results.items():
        backs = [b for b, *_ in trials if b is not None]
        drives = [d for _, d, *_ in trials if d is not None]
        rows.append(f"| kill -9 {name} while driving{'' if standby else ' (--no-standby)'} | respawned: "
                    f"{_span(backs)} s; " + (f"active again: {_span(active_again[name])} s; " if name in MANAGED
                                            else "") + f"driving again: {_span(drives)} s"
                    + (f" ({reached_goal[name]} reached the goal first)" if reached_goal[name] else "") + "; goal kept "
                    f"{sum(k for *_, k, _ in trials)}/{len(trials)}; contacts {sum(c for *_, c in trials)} | "
                    f"`python bench/faults.py --only kill --runs {runs}{'' if standby else ' --no-standby'}` |")
    return rows


def _span(values: list[float]) -> str:
    if not values:
        return "never"
    return f"{min(values):.2f}" if len(values) == 1 else f"{min(values):.2f}-{max(values):.2f} (median {np.median(values):.2f})"


def memory_section(runs: int) -> list[str]:
    from conftest import Graph
    from test_memory_crash import _readers_agree

    from ojepa_ros.core.episodes import read_episode

    graph = Graph()
    feeder = graph.add(Node(f"faults_memory_feeder_{os.getpid()}"))
    goal_pub = feeder.create_publisher(PoseStamped, "/ojepa/goal", LATCHED)
    state_pub = feeder.create_publisher(State, "/ojepa/state", 50)
    lost, readable = [], 0
    rng = random.Random(0)
    try:
        for run in range(runs):
            out = Path(tempfile.mkdtemp(prefix="faults_memory_"))
            memory = subprocess.Popen([sys.executable, "-m", "ojepa_ros.nodes.memory_node", "--ros-args",
                                       "-p", f"output_dir:={out}", "-p", "autostart:=true"],  # no lifecycle manager
                                      stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
            wait(lambda: state_pub.get_subscription_count() > 0 and goal_pub.get_subscription_count() > 0, 60.0)
            goal = PoseStamped()
            goal.pose.position.x = float(run)
            goal_pub.publish(goal)
            wait(lambda: any(p.is_dir() for p in out.iterdir()), 10.0)
            duration, sent, start = rng.uniform(0.3, 5.0), 0, time.monotonic()
            while time.monotonic() - start < duration:
                state_pub.publish(State(data=[float(sent)]))
                sent += 1
                time.sleep(0.02)
            memory.send_signal(signal.SIGKILL)
            memory.wait()
            (episode,) = [p for p in out.iterdir() if p.is_dir()]
            kept = [int(m.data[0]) for t, _, m in read_episode(episode) if t == "/ojepa/state"]
            lost.append((sent - len(kept)) * 0.02)
            try:
                readable += int(_readers_agree(episode) == kept)
            except Exception as err:  # noqa: BLE001 - a figure, not a test: count it
                print(f"  run {run}: unreadable ({err})")
            print(f"  memory kill -9 after {duration:.2f} s: {sent} sent, {len(kept)} kept, "
                  f"{lost[-1]:.2f} s lost", flush=True)
    finally:
        graph.close()
    return [f"| memory_node kill -9 at random times (0.3-5 s into an episode, 50 Hz messages), {runs} runs | "
            f"lost {min(lost):.2f}-{max(lost):.2f} s (median {np.median(lost):.2f}); readable by rosbags Reader, "
            f"AnyReader and mcap {readable}/{runs} | `python bench/faults.py --only memory --runs {runs}` |"]


def stale_section(runs: int) -> list[str]:
    from conftest import Graph

    from ojepa_ros.core.model_io import load_world_model
    from ojepa_ros.nodes.actor_node import ActorNode
    from ojepa_ros.nodes.convert import state_message, yaw_to_quaternion
    from ojepa_ros.paths import default_model

    dim = load_world_model(default_model()).cfg.embed_dim
    graph = Graph()
    actor = graph.add(ActorNode())
    robot = graph.add(Node(f"faults_robot_{os.getpid()}"))
    odom_pub = robot.create_publisher(Odometry, "/odom", 10)
    state_pub = robot.create_publisher(State, "/ojepa/state", 10)
    cmds: list[tuple[float, float, float]] = []
    robot.create_subscription(Twist, "/cmd_vel", lambda m: cmds.append((now(), m.linear.x, m.angular.z)), 50)

    def now() -> float:
        return robot.get_clock().now().nanoseconds * 1e-9

    timeout = actor.get_parameter("watchdog_timeout").value
    decel = actor.get_parameter("safe_stop_deceleration").value
    firsts, stops, distances, allowed = [], [], [], []
    rng = np.random.default_rng(0)
    try:
        for run in range(runs):
            from rclpy.parameter import Parameter

            actor.set_parameters([Parameter("goal_x", value=6.0), Parameter("goal_y", value=2.0 + 0.01 * run),
                                  Parameter("goal_active", value=True)])
            state = rng.normal(0, 1, dim).astype(np.float32)
            last = 0.0
            start = time.monotonic()
            while time.monotonic() - start < 15.0:
                stamp = robot.get_clock().now()
                odom = Odometry()
                odom.header.stamp, odom.header.frame_id = stamp.to_msg(), "odom"
                odom.pose.pose.position.x = odom.pose.pose.position.y = 2.0
                odom.pose.pose.orientation = yaw_to_quaternion(0.0)
                odom_pub.publish(odom)
                state_pub.publish(state_message(state, stamp.nanoseconds))
                last = stamp.nanoseconds * 1e-9
                time.sleep(0.05)
                if len(cmds) > 5 and abs(cmds[-1][1]) > 0.15 and time.monotonic() - start > 2.0:
                    break
            stale_at = last + timeout
            wait(lambda: cmds and cmds[-1][0] > stale_at and cmds[-1][1:] == (0.0, 0.0), 5.0)
            c = np.array(cmds)
            i = int(np.searchsorted(c[:, 0], stale_at))
            before = c[i - 1]
            after = c[i:]
            braking = np.flatnonzero((np.abs(after[:, 1]) < abs(before[1]) - 1e-9) | (after[:, 1] == 0))
            zero = np.flatnonzero((after[:, 1] == 0) & (after[:, 2] == 0))
            if not len(braking) or not len(zero):
                continue
            firsts.append(after[braking[0], 0] - stale_at)
            stops.append(after[zero[0], 0] - stale_at)
            ramp = np.vstack([before, after[: zero[0] + 1]])
            ramp[0, 0] = stale_at  # distance from the timeout on, as the safe-stop distance below is reckoned
            distances.append(float(np.sum(np.abs(ramp[:-1, 1]) * np.diff(ramp[:, 0]))))
            fastest = float(np.abs(ramp[:, 1]).max())  # a command planned before the timeout may still go out
            allowed.append(fastest * firsts[-1] + fastest ** 2 / (2 * decel))
            print(f"  stale run {run}: v {before[1]:.2f} m/s, first braking command {1e3 * firsts[-1]:.0f} ms after "
                  f"the timeout, zero after {1e3 * stops[-1]:.0f} ms, {distances[-1]:.3f} m commanded "
                  f"(safe-stop distance {allowed[-1]:.3f} m)", flush=True)
            actor.set_parameters([Parameter("goal_active", value=False)])
            time.sleep(0.5)
            cmds.clear()
    finally:
        graph.close()
    ms = np.array(firsts) * 1e3
    return [f"| inputs stale (watchdog {timeout} s, safe stop {decel} m/s^2), {len(ms)} runs | first braking command "
            f"{ms.min():.0f}-{ms.max():.0f} ms after the timeout (median {np.median(ms):.0f}); zero after "
            f"{1e3 * min(stops):.0f}-{1e3 * max(stops):.0f} ms; commanded distance {min(distances):.3f}-"
            f"{max(distances):.3f} m against the safe-stop distance {min(allowed):.3f}-{max(allowed):.3f} m | "
            f"`python bench/faults.py --only stale --runs {runs}` |"]


class FromNode:
    """Messages on `topic` from the publishers of node `name` alone (another publisher on the topic, a fuzzer, is
    left out), each kept as (receipt time, message). Its node needs an executor that passes message info (rclpy's
    EventsExecutor, the Graph's, does not): fuzz_section spins it on a SingleThreadedExecutor."""

    def __init__(self, node: Node, msg_type, topic: str, name: str) -> None:
        self.node, self.topic, self.name = node, topic, name
        self.messages: list[tuple[float, object]] = []
        self._gids: set[bytes] = set()  # the node's publishers on the topic, looked up again on a miss
        self._looked = -math.inf
        node.create_subscription(msg_type, topic, self._on_message, 50)

    def _on_message(self, msg, info) -> None:
        gid = bytes((info.get("publisher_gid") or {}).get("data", b""))[:16]
        if gid not in self._gids and time.monotonic() - self._looked > 0.5:
            self._looked = time.monotonic()
            self._gids = {bytes(e.endpoint_gid)[:16] for e in self.node.get_publishers_info_by_topic(self.topic)
                          if e.node_name == self.name}
        if gid in self._gids:
            self.messages.append((time.monotonic(), msg))


def fuzz_section(examples: int) -> list[str]:
    from conftest import Graph
    from hypothesis import HealthCheck, given, settings
    from hypothesis import strategies as st
    from test_fuzz import STRATEGIES

    from rclpy.executors import SingleThreadedExecutor

    from ojepa_ros.core.safety import ROBOT_LIMITS

    graph = Graph()
    watcher = graph.add(Watcher())
    fuzzer = graph.add(Node(f"faults_fuzzer_{os.getpid()}"))
    origin = Node(f"faults_origin_{os.getpid()}")
    bumper = FromNode(origin, Bool, "/collision", "sim_node")
    base = FromNode(origin, Twist, "/cmd_vel", "collision_monitor_node")
    executor = SingleThreadedExecutor()
    executor.add_node(origin)
    spinning = threading.Event()
    spinning.set()

    def spin() -> None:
        while spinning.is_set():
            executor.spin_once(timeout_sec=0.1)

    spinner = threading.Thread(target=spin)
    spinner.start()
    goal_pub = fuzzer.create_publisher(PoseStamped, "/goal_pose", 10)
    publishers: dict[str, object] = {}
    limits = np.array([ROBOT_LIMITS.linear_velocity, ROBOT_LIMITS.angular_velocity]) + 1e-9
    goals = [(6.0, 6.0), (2.0, 2.0), (2.0, 6.0), (6.0, 2.0)]
    rows = []
    agent = agent_process("--processes", "--no-standby", "--duration", "3600")
    try:
        if not wait(lambda: any(s == "idle" for _, s in watcher.statuses), 90.0):
            return ["| fuzz | the agent did not come up | |"]
        for number, topic in enumerate(t for t in STRATEGIES if t != "/cmd_vel"):
            goal = PoseStamped()
            goal.header.frame_id = "odom"
            goal.pose.position.x, goal.pose.position.y = goals[number % len(goals)]
            goal.pose.orientation.w = 1.0
            start = watcher.now()
            driving = wait(lambda: goal_pub.publish(goal) or watcher.driving_since(start) is not None, 30.0)
            pids = {name: node_pid(agent.pid, name) for name in NODES}
            first_bump, first_cmd = len(bumper.messages), len(base.messages)

            @settings(max_examples=examples, deadline=None, derandomize=True, database=None,
                      suppress_health_check=list(HealthCheck))
            @given(msg=STRATEGIES[topic], burst=st.sampled_from([1, 1, 1, 50]))
            def fuzz(msg, burst):
                if topic not in publishers:
                    publishers[topic] = fuzzer.create_publisher(type(msg), topic, LATCHED if topic == "/ojepa/goal"
                                                                else 10)
                    time.sleep(0.3)  # discovery
                for _ in range(burst):
                    publishers[topic].publish(msg)
                time.sleep(0.02)

            fuzz()
            time.sleep(0.5)
            died = [name for name, pid in pids.items() if node_pid(agent.pid, name) != pid]
            touches = [bool(m.data) for _, m in bumper.messages[first_bump:]]
            contacts = sum(1 for a, b in zip([False, *touches], touches) if b and not a)
            commands = np.array([(m.linear.x, m.angular.z) for _, m in base.messages[first_cmd:]]).reshape(-1, 2)
            violations = int(np.sum(~np.isfinite(commands).all(1) | (np.abs(np.nan_to_num(commands, nan=np.inf))
                                                                        > limits).any(1)))
            print(f"  {topic}: {examples} examples, driving before {driving}, {len(commands)} /cmd_vel and "
                  f"{len(touches)} of sim_node's /collision heard, died {died or 'none'}, limit violations "
                  f"{violations}, contacts {contacts}", flush=True)
            rows.append(f"| fuzz {topic}, {examples} examples while driving | nodes died: {', '.join(died) or 'none'}; "
                        f"/cmd_vel outside limits or not finite: {violations} of {len(commands)}; contacts "
                        f"{contacts} | `python bench/faults.py --only fuzz --examples {examples}` |")
    finally:
        stop_agent(agent, graph)
        spinning.clear()
        spinner.join()
        executor.shutdown(timeout_sec=1.0)
        origin.destroy_node()
    return rows


def load_section(seconds: float, processes: bool) -> list[str]:
    from conftest import Graph

    from ojepa_ros.nodes.convert import rgb_to_image

    graph = Graph()
    watcher = graph.add(Watcher())
    talker = graph.add(Node(f"faults_load_{os.getpid()}"))
    image_pub = talker.create_publisher(Image, "/camera/image_raw", 10)
    goal_pub = talker.create_publisher(PoseStamped, "/goal_pose", 10)
    rgb = np.random.default_rng(0).integers(0, 255, (64, 64, 3), dtype=np.uint8)
    layout = ["--processes", "--no-standby"] if processes else []
    agent = agent_process(*layout, "--task", "cross_room", "--duration", str(seconds + 40))
    try:
        wait(lambda: any(s == "active" for _, s in watcher.statuses), 90.0)
        watcher.rates.clear()
        goal = PoseStamped()
        goal.header.frame_id = "odom"
        goal.pose.position.x, goal.pose.position.y = 2.0, 6.0  # the task's goal, again and again
        goal.pose.orientation.w = 1.0
        start, images, goals = time.monotonic(), 0, 0
        while time.monotonic() - start < seconds:
            t = time.monotonic() - start
            while images < t * 80:
                image_pub.publish(rgb_to_image(rgb, talker.get_clock().now().to_msg(), "camera_link"))
                images += 1
            while goals < t * 50:
                goal_pub.publish(goal)
                goals += 1
            time.sleep(0.002)
    finally:
        stop_agent(agent, graph)
    rates = np.array(watcher.rates[2:])  # each is the mean over the actor's last 200 ticks
    name = "a process per node" if processes else "composed"
    flag = " --processes" if processes else ""
    return [f"| camera 100 Hz (20 sim + 80 extra) + goals 50 Hz, {name}, {seconds:.0f} s | actor control rate "
            f"{rates.min():.2f}-{rates.max():.2f} Hz, median {np.median(rates):.2f} (1 Hz reports of the mean over "
            f"its last 200 ticks) | `python bench/faults.py --only load --load-seconds {seconds:g}{flag}` |"
            ] if rates.size else ["| load | no diagnostics received | |"]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--only", nargs="+", choices=("kill", "memory", "stale", "fuzz", "load"),
                        default=["kill", "memory", "stale", "fuzz", "load"])
    parser.add_argument("--examples", type=int, default=25, help="fuzz: malformed messages per topic")
    parser.add_argument("--runs", type=int, default=3, help="runs per node (kill), kills (memory), stops (stale)")
    parser.add_argument("--load-seconds", type=float, default=30.0)
    parser.add_argument("--processes", action="store_true",
                        help="load: a process per node, as ros2 launch runs them (without standby twins)")
    parser.add_argument("--no-standby", dest="standby", action="store_false",
                        help="kill: run the agent without its standby twins (--no-standby)")
    args = parser.parse_args()
    rclpy.init()
    rows = ["| what | figure | command |", "|---|---|---|"]
    try:
        for section in args.only:
            print(f"== {section}", flush=True)
            if section == "kill":
                rows += kill_section(args.runs, args.standby)
            elif section == "memory":
                rows += memory_section(args.runs)
            elif section == "stale":
                rows += stale_section(args.runs)
            elif section == "fuzz":
                rows += fuzz_section(args.examples)
            else:
                rows += load_section(args.load_seconds, args.processes)
    finally:
        rclpy.try_shutdown()
    print("\n".join(rows))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
