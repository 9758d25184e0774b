"""Supervision with real processes: a killed node process is respawned with bounded retries, children die
with their parent even when it is killed with SIGKILL, and a restarted actor gets its goal back."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
import threading
import time

import pytest
from geometry_msgs.msg import PoseStamped
from rclpy.parameter import Parameter
from std_msgs.msg import String

from ojepa_ros.supervisor import Supervisor

SLEEPER = [sys.executable, "-c", "import time; time.sleep(60)"]


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    with open(f"/proc/{pid}/stat") as f:  # a zombie is dead too
        return f.read().split(")")[-1].split()[0] != "Z"


def test_a_killed_child_is_respawned_with_backoff_and_given_up_on_when_it_keeps_dying():
    lines: list[str] = []
    supervisor = Supervisor({"sleeper": SLEEPER, "crasher": [sys.executable, "-c", "raise SystemExit(3)"]},
                            log=lines.append, max_restarts=3, window_s=60.0, backoff_s=0.1, max_backoff_s=0.4)
    supervisor.start()
    try:
        first = supervisor.children["sleeper"].process
        first.send_signal(signal.SIGKILL)
        first.wait()
        supervisor.poll()  # one look, with the death already known: the first restart is immediate, no delay
        assert supervisor.children["sleeper"].process is not first
        assert "sleeper exited (-9); restarting" in lines, lines  # said with no "in ... s"
        deadline = time.monotonic() + 10.0
        while not supervisor.children["crasher"].given_up and time.monotonic() < deadline:
            supervisor.poll()
            time.sleep(0.01)
        crasher = supervisor.children["crasher"]
        assert crasher.given_up and len(crasher.restarts) == 3
        gaps = [b - a for a, b in zip(crasher.restarts, list(crasher.restarts)[1:])]
        assert gaps[0] >= 0.1 - 0.02 and gaps[1] >= 0.2 - 0.02  # back-off doubles
        assert any("not restarting" in line for line in lines)
    finally:
        supervisor.stop(timeout=5.0)
    assert supervisor.children["sleeper"].process.poll() is not None


def test_a_child_that_had_run_stably_is_restarted_at_once_every_time():
    """Back-off is for crash loops: a node killed again after it had been working restarts without delay."""
    lines: list[str] = []
    supervisor = Supervisor({"sleeper": SLEEPER}, log=lines.append, backoff_s=5.0, stable_s=0.3)
    supervisor.start()
    try:
        for kill in range(3):
            time.sleep(0.4)  # longer than stable_s
            process = supervisor.children["sleeper"].process
            process.send_signal(signal.SIGKILL)
            process.wait()
            supervisor.poll()
            assert supervisor.children["sleeper"].process is not process and supervisor.respawned == kill + 1
        assert lines == ["sleeper exited (-9); restarting"] * 3
        process = supervisor.children["sleeper"].process
        process.send_signal(signal.SIGKILL)  # at once this time: a quick death waits for the back-off
        process.wait()
        supervisor.poll()
        assert supervisor.children["sleeper"].process is process and lines[-1].endswith("restarting in 4.00 s")
    finally:
        supervisor.stop(timeout=5.0)


def test_children_die_with_a_runner_killed_by_sigkill(tmp_path):
    """Found on main: kill -9 of the runner left its 7 node processes driving, unsupervised."""
    script = textwrap.dedent(f"""
        import sys, time
        from ojepa_ros.supervisor import Supervisor
        s = Supervisor({{"a": {SLEEPER!r}, "b": {SLEEPER!r}}})
        s.start()
        print(" ".join(str(c.process.pid) for c in s.children.values()), flush=True)
        time.sleep(60)
    """)
    runner = subprocess.Popen([sys.executable, "-c", script], stdout=subprocess.PIPE, text=True)
    pids = [int(p) for p in runner.stdout.readline().split()]
    assert len(pids) == 2 and all(_alive(p) for p in pids)
    runner.send_signal(signal.SIGKILL)
    runner.wait()
    deadline = time.monotonic() + 3.0
    while any(_alive(p) for p in pids) and time.monotonic() < deadline:
        time.sleep(0.02)
    assert not any(_alive(p) for p in pids), "a child outlived its runner"


def test_a_restarted_actor_process_gets_the_active_goal_back(graph, tiny_model_path):
    """Found on main: a restarted actor was idle, its goal lost."""
    from ojepa_ros.nodes.configurator_node import ConfiguratorNode

    configurator = graph.add(ConfiguratorNode())
    statuses = graph.collect(String, "/ojepa/actor_status")
    command = [sys.executable, "-m", "ojepa_ros.nodes.actor_node", "--ros-args",
               "-p", f"model_path:={tiny_model_path}", "-p", "num_samples:=32", "-p", "horizon:=4",
               "-p", "autostart:=true"]  # no lifecycle manager here: the actor brings itself up, after a restart too
    supervisor = Supervisor({"actor_node": command}, log=lambda line: None)
    supervisor.start()
    try:
        graph.wait_for(lambda: configurator._param_clients["actor_node"].service_is_ready(), 60.0, "the actor")
        configurator.set_goal(5.0, 5.0)
        graph.wait_for(lambda: statuses and statuses[-1].data.startswith("stale"), 10.0,
                       "the actor to take the goal (stale: no inputs here)")
        supervisor.children["actor_node"].process.send_signal(signal.SIGKILL)
        count = len(statuses)
        deadline = time.monotonic() + 60.0
        while time.monotonic() < deadline and not (len(statuses) > count and statuses[-1].data.startswith("stale")
                                                     and supervisor.respawned):
            supervisor.poll()
            time.sleep(0.05)
        assert supervisor.respawned == 1
        assert configurator.restores >= 1 and statuses[-1].data.startswith("stale"), [s.data for s in statuses[-5:]]
    finally:
        supervisor.stop()


def test_the_agent_defaults_to_localhost_discovery_unless_told_otherwise(monkeypatch):
    from ojepa_ros.runner import discovery_environment

    monkeypatch.delenv("ROS_AUTOMATIC_DISCOVERY_RANGE", raising=False)
    monkeypatch.setenv("ROS_DOMAIN_ID", "42")
    assert discovery_environment() == {"ROS_AUTOMATIC_DISCOVERY_RANGE": "LOCALHOST", "ROS_DOMAIN_ID": "42"}
    monkeypatch.setenv("ROS_AUTOMATIC_DISCOVERY_RANGE", "SUBNET")
    assert discovery_environment()["ROS_AUTOMATIC_DISCOVERY_RANGE"] == "SUBNET"


def test_a_goal_set_before_the_actor_is_up_reaches_it_when_it_is(graph, tiny_model_path):
    """Found with bench/faults.py: goals sent just after a configurator restart were dropped ('not available')
    while the actor's parameter service was being discovered."""
    from ojepa_ros.nodes.actor_node import ActorNode
    from ojepa_ros.nodes.configurator_node import ConfiguratorNode

    configurator = graph.add(ConfiguratorNode())
    configurator.set_goal(4.0, 5.0)
    time.sleep(0.5)
    actor = graph.add(ActorNode(parameter_overrides=[Parameter("model_path", value=str(tiny_model_path))]))
    graph.wait_for(lambda: actor.p["goal_active"] and (actor.p["goal_x"], actor.p["goal_y"]) == (4.0, 5.0), 10.0,
                   "the goal to reach the actor")


def test_a_restarted_configurator_adopts_the_goal_the_actor_drives_to(graph, tiny_model_path):
    """A configurator that restarts must not forget the goal (a later actor restart would lose it) nor replace
    it with its start-up task's goal."""
    from rclpy.qos import DurabilityPolicy, QoSProfile

    from ojepa_ros.nodes.actor_node import ActorNode
    from ojepa_ros.nodes.configurator_node import ConfiguratorNode

    actor = graph.add(ActorNode(parameter_overrides=[Parameter("model_path", value=str(tiny_model_path))]))
    first = graph.add(ConfiguratorNode())
    first.set_goal(4.0, 5.0)
    graph.wait_for(lambda: actor.p["goal_active"], 10.0, "the goal on the actor")
    first.destroy_node()  # "killed"
    graph.nodes.remove(first)
    goals = graph.collect(PoseStamped, "/ojepa/goal", QoSProfile(depth=1, durability=DurabilityPolicy.TRANSIENT_LOCAL))
    second = graph.add(ConfiguratorNode(parameter_overrides=[Parameter("task", value="demo")]))
    graph.wait_for(lambda: second.active_goal == (4.0, 5.0, None), 10.0, "the second configurator to adopt the goal")
    graph.wait_for(lambda: goals and (goals[-1].pose.position.x, goals[-1].pose.position.y) == (4.0, 5.0), 5.0,
                   "the adopted goal on /ojepa/goal")
    time.sleep(1.0)  # the start-up task (demo) is applied without its goal
    assert (actor.p["goal_x"], actor.p["goal_y"]) == (4.0, 5.0) and actor.p["goal_active"]


def test_a_standby_twin_takes_over_a_dead_node_without_starting_python_again(tmp_path):
    """The twin has done its imports ahead of need: the handover is a word on its stdin."""
    marker = tmp_path / "ran"
    module = tmp_path / "fake_node.py"
    module.write_text(textwrap.dedent(f"""
        import os, sys, time
        def main():
            open({str(marker)!r}, "a").write(f"{{os.getpid()}} {{' '.join(sys.argv[1:])}}\\n")
            time.sleep(60)
        if __name__ == "__main__":
            main()
    """))
    env = {**os.environ, "PYTHONPATH": f"{tmp_path}:{os.environ.get('PYTHONPATH', '')}"}
    supervisor = Supervisor({"fake": [sys.executable, "-m", "fake_node", "--flag"]}, log=lambda line: None,
                            standby=True, standby_delay=0.0, env=env)
    supervisor.start()
    try:
        supervisor.poll()
        child = supervisor.children["fake"]
        twin = child.standby
        assert twin is not None
        time.sleep(1.0)  # its imports are done
        assert marker.read_text().count("\n") == 1  # the twin waits; only the first one ran main()
        child.process.send_signal(signal.SIGKILL)
        child.process.wait()
        supervisor.poll()
        assert child.process is twin and supervisor.handovers == 1
        deadline = time.monotonic() + 5.0
        while marker.read_text().count("\n") < 2 and time.monotonic() < deadline:
            time.sleep(0.01)
        lines = marker.read_text().splitlines()
        assert len(lines) == 2 and lines[1] == f"{twin.pid} --flag"  # the twin's own process ran main(): no new python
        supervisor.poll()
        assert child.standby is not None and child.standby is not twin  # a new twin for the next time
    finally:
        supervisor.stop(timeout=5.0)
    assert all(p.poll() is not None for p in (child.process, child.standby))


def test_a_standby_twin_is_in_the_dds_graph_before_it_runs_its_node(graph):
    """The twin's DDS participant exists while it waits (a hidden placeholder node), so a handover does not wait for
    the graph to discover a new participant; the placeholder never takes the node's name, and goes once the node runs."""
    from rclpy.node import Node

    from ojepa_ros.standby import READY_COMM

    probe = graph.add(Node(f"standby_probe_{os.getpid()}"))
    name = f"twin_configurator_{os.getpid()}"
    twin = subprocess.Popen([sys.executable, "-m", "ojepa_ros.standby", "ojepa_ros.nodes.entry", "configurator_node",
                             "--ros-args", "-r", f"__node:={name}"], stdin=subprocess.PIPE)
    placeholder = f"_standby_{twin.pid}"
    try:
        def nodes() -> set[str]:
            return {n for n, _ in probe.get_node_names_and_namespaces()}

        graph.wait_for(lambda: placeholder in nodes(), 60.0, "the waiting twin's placeholder node in the graph")
        with open(f"/proc/{twin.pid}/comm") as f:
            assert f.read().strip() == READY_COMM
        assert name not in nodes()  # only the placeholder: the node itself waits for the word
        twin.stdin.write(b"go\n")
        twin.stdin.flush()
        graph.wait_for(lambda: name in nodes() and placeholder not in nodes(), 30.0,
                       "the node in the graph and the placeholder gone")
    finally:
        twin.send_signal(signal.SIGINT)
        twin.wait(timeout=10)


TWIN = [sys.executable, "-m", "ojepa_ros.standby", "ojepa_ros.nodes.entry", "actor_node"]


def _comm(pid: int) -> str:
    with open(f"/proc/{pid}/comm") as f:
        return f.read().strip()


@pytest.fixture(scope="module")
def twin_prepare_s() -> float:
    """How long a twin of the actor takes here to import and start the middleware (1-6 s, by load)."""
    from ojepa_ros.standby import READY_COMM

    start = time.monotonic()
    twin = subprocess.Popen(TWIN, stdin=subprocess.PIPE)
    try:
        while _comm(twin.pid) != READY_COMM:
            assert time.monotonic() - start < 60.0 and twin.poll() is None, "the twin never got ready"
            time.sleep(0.02)
        return time.monotonic() - start
    finally:
        twin.stdin.close()
        twin.wait(timeout=10)


def _thread_nice(pid: int) -> dict[int, tuple[str, int]]:
    """Each thread's name and nice value (/proc/PID/task/TID/comm and stat's field 19); a thread that ended
    meanwhile is left out."""
    values = {}
    for tid in os.listdir(f"/proc/{pid}/task"):
        try:
            with open(f"/proc/{pid}/task/{tid}/comm") as f:
                name = f.read().strip()
            with open(f"/proc/{pid}/task/{tid}/stat") as f:
                values[int(tid)] = (name, int(f.read().rsplit(")", 1)[1].split()[16]))
        except (FileNotFoundError, ProcessLookupError):
            continue
    return values


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="per-thread nice values are Linux's")
def test_a_twin_imports_at_the_lowest_priority_and_keeps_the_usual_one_for_its_node():
    """A twin's imports yield the CPU to the running nodes (nice 19, their thread alone); once ready, the thread
    that will run the node and the middleware's threads (started after the imports, by that thread) have the
    priority the twin was started with. Threads that libraries start while imported keep nice 19 (idle ones here:
    the tracing listeners, an onnxruntime waiter); OpenBLAS's workers are imported first at the usual priority."""
    from ojepa_ros.nodes.entry import LOWEST_NICE
    from ojepa_ros.standby import READY_COMM

    usual = os.getpriority(os.PRIO_PROCESS, 0)
    twin = subprocess.Popen(TWIN, stdin=subprocess.PIPE)
    seen: set[int] = set()
    try:
        start = time.monotonic()
        while _comm(twin.pid) != READY_COMM:
            assert time.monotonic() - start < 60.0 and twin.poll() is None, "the twin never got ready"
            seen.update(nice for _, nice in _thread_nice(twin.pid).values())
            time.sleep(0.01)
        ready = _thread_nice(twin.pid)
    finally:
        twin.stdin.close()
        twin.wait(timeout=10)
    assert LOWEST_NICE in seen, f"no thread of the preparing twin ran at nice {LOWEST_NICE}: {sorted(seen)}"
    middleware = {tid: nice for tid, (name, nice) in ready.items() if name.startswith("dds.")}
    assert middleware and set(middleware.values()) == {usual}, ready
    assert ready[twin.pid][1] == usual, ready  # the main thread, which runs the node after "go"


@pytest.mark.parametrize("fraction", [0.1, 0.4, 0.7])
def test_a_twin_stopped_while_it_prepares_exits_quietly(twin_prepare_s, fraction):
    """Ctrl-C reaches every twin at once, some still importing torch or starting the middleware: each exits 0 at
    once with nothing printed (a KeyboardInterrupt traceback per twin is what `ojepa agent` used to show). The load
    here varies: a twin already ready when signalled is tried again with half the delay."""
    from ojepa_ros.standby import STANDBY_COMM

    delay = fraction * twin_prepare_s
    for _ in range(4):
        twin = subprocess.Popen(TWIN, stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
        try:
            time.sleep(delay)
            preparing = _comm(twin.pid) == STANDBY_COMM
            twin.send_signal(signal.SIGINT)
            out, err = twin.communicate(timeout=10)
        finally:
            if twin.poll() is None:
                twin.kill()
        assert twin.returncode == 0 and not err and not out, err.decode()
        if preparing:
            break
        delay /= 2
    assert preparing, "every twin had finished preparing before the signal"


def test_stop_kills_a_twin_held_in_its_import_at_once_and_a_node_deaf_to_sigint_at_the_timeout(tmp_path):
    """A twin has nothing to stop, so one that cannot act on SIGINT (held in a C call; here its import ignores it)
    is killed after the short grace; a node deaf to it is killed at the timeout and named in the log."""
    (tmp_path / "deaf_node.py").write_text(textwrap.dedent("""
        import signal, time
        signal.signal(signal.SIGINT, signal.SIG_IGN)
        time.sleep(60)  # at import: a twin of this module never gets ready
        def main():
            pass
    """))
    env = {**os.environ, "PYTHONPATH": f"{tmp_path}:{os.environ.get('PYTHONPATH', '')}"}
    lines: list[str] = []
    supervisor = Supervisor({"deaf": [sys.executable, "-m", "deaf_node"]}, log=lines.append, standby=True,
                            standby_delay=0.0, env=env)
    supervisor.start()
    supervisor.poll()
    child = supervisor.children["deaf"]
    assert child.standby is not None
    time.sleep(1.0)  # both import the module, and ignore SIGINT from there
    start = time.monotonic()
    supervisor.stop(timeout=3.0, twin_grace=0.5)
    took = time.monotonic() - start
    assert child.standby.returncode == -signal.SIGKILL and child.process.returncode == -signal.SIGKILL
    assert 3.0 <= took < 5.0
    assert len(lines) == 1 and lines[0].startswith(f"deaf (pid {child.process.pid}) still ran 3."), lines


def test_a_configurator_whose_goal_question_goes_unanswered_asks_again(graph):
    """Found in the one-process-per-node agent: Fast DDS can drop a service's response when the client's reply
    reader is not yet matched on the server's side ("failed to send response (timeout)"). A configurator that
    waited for its first get_parameters answer never applied its start-up task."""
    from rclpy.callback_groups import ReentrantCallbackGroup
    from rclpy.executors import SingleThreadedExecutor
    from rclpy.node import Node
    from rclpy.task import Future
    from rcl_interfaces.msg import ParameterType, ParameterValue, SetParametersResult
    from rcl_interfaces.srv import GetParameters, SetParameters

    from ojepa_ros.nodes.configurator_node import ConfiguratorNode

    planner = Node("actor_node", start_parameter_services=False)
    asked, received = [], {}

    async def get_parameters(request, response):
        asked.append(time.monotonic())
        if len(asked) == 1:
            await Future()  # this answer is lost
        response.values = [ParameterValue(type=ParameterType.PARAMETER_BOOL, bool_value=False)
                           if n in ("goal_active", "goal_yaw_active") else
                           ParameterValue(type=ParameterType.PARAMETER_DOUBLE, double_value=0.0)
                           for n in request.names]
        return response

    def set_parameters(request, response):
        received.update({p.name: p.value for p in request.parameters})
        response.results = [SetParametersResult(successful=True) for _ in request.parameters]
        return response

    group = ReentrantCallbackGroup()  # the held first question must not hold the later ones
    planner.create_service(GetParameters, "~/get_parameters", get_parameters, callback_group=group)
    planner.create_service(SetParameters, "~/set_parameters", set_parameters, callback_group=group)
    executor = SingleThreadedExecutor()  # runs the coroutine callback; the agent's EventsExecutor is not needed
    executor.add_node(planner)
    spinning = threading.Event()
    spinning.set()

    def spin() -> None:
        while spinning.is_set():
            executor.spin_once(timeout_sec=0.05)

    spinner = threading.Thread(target=spin, daemon=True)
    spinner.start()
    try:
        graph.add(ConfiguratorNode(parameter_overrides=[Parameter("task", value="same_room"),
                                                        Parameter("managed_nodes", value=["actor_node"])]))
        graph.wait_for(lambda: "goal_x" in received, 15.0, "the start-up task's goal on the planner node")
        assert len(asked) >= 2
        assert received["goal_x"].double_value == 3.0 and received["goal_active"].bool_value
    finally:
        spinning.clear()
        spinner.join(timeout=2.0)
        executor.shutdown()
        planner.destroy_node()
