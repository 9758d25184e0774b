"""Ctrl-C as a terminal sends it: SIGINT to the whole process group of `ojepa agent --processes` (the runner and
its node processes and their standby twins, as `ros2 launch` and its nodes get it). Every node process must be gone
within 2 s, nothing may print a traceback, and the robot must be left with a zero command."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time

import pytest

from geometry_msgs.msg import Twist

from ojepa_ros.graph import nodes as graph_nodes
from ojepa_ros.standby import TWIN_COMMS

STOP_WITHIN_S = 2.0  # the target for a Ctrl-C
PROBLEMS = ("Traceback", "KeyboardInterrupt", "escalating")


def _start_agent(*args: str, cwd) -> subprocess.Popen:
    # A process group of its own, as a terminal's foreground job; SIGINT reset to its default in case the
    # test runs from a shell's background job (which ignores it), as a terminal user's agent would not.
    return subprocess.Popen([sys.executable, "-m", "ojepa_ros.cli", "agent", "--processes", "--quiet", *args],
                            cwd=cwd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                            start_new_session=True, env=dict(os.environ, ROS_HOME=str(cwd)),
                            preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL))


def _group(pgid: int) -> set[int]:
    """Live (non-zombie) processes of the process group."""
    members = set()
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/stat") as handle:
                fields = handle.read().rsplit(")", 1)[1].split()
        except OSError:
            continue
        if int(fields[2]) == pgid and fields[0] != "Z":
            members.add(int(entry))
    return members


def _comm(pid: int) -> str:
    try:
        with open(f"/proc/{pid}/comm") as handle:
            return handle.read().strip()
    except OSError:
        return ""


def _ctrl_c(agent: subprocess.Popen) -> tuple[float, float]:
    """SIGINT to the agent's process group. Returns the seconds until its node processes were all gone, and
    until the runner was too (it then still prints its summary and draws the top-down picture, as `ros2
    launch` itself outlives its nodes); 30 s at most."""
    nodes = _group(agent.pid) - {agent.pid}
    start = time.monotonic()
    os.killpg(agent.pid, signal.SIGINT)
    nodes_gone, late = None, ""
    while _group(agent.pid) and time.monotonic() - start < 30.0:
        if nodes_gone is None and not nodes & _group(agent.pid):
            nodes_gone = time.monotonic() - start
        if not late and nodes_gone is None and time.monotonic() - start > STOP_WITHIN_S:
            late = "; ".join(_describe(pid) for pid in nodes & _group(agent.pid))
            print(f"still running {STOP_WITHIN_S:g} s after SIGINT: {late}")
        time.sleep(0.02)
    everything = time.monotonic() - start
    return (everything if nodes_gone is None else nodes_gone), everything


def _describe(pid: int) -> str:
    """A process's command line and where each of its threads waits in the kernel (for a stop that lingers)."""
    try:
        with open(f"/proc/{pid}/cmdline", "rb") as handle:
            argv = handle.read().replace(b"\0", b" ").decode(errors="replace").strip()
        waits = []
        for tid in sorted(os.listdir(f"/proc/{pid}/task")):
            with open(f"/proc/{pid}/task/{tid}/wchan") as handle:
                waits.append(handle.read().strip() or "running")
    except OSError:
        return f"{pid} (gone)"
    return f"{pid} {argv} [threads waiting in: {', '.join(waits)}]"


def test_ctrl_c_while_driving_stops_every_node_within_2_s_with_a_zero_command(graph, tmp_path):
    agent = _start_agent("--task", "demo", "--duration", "120", cwd=tmp_path)
    try:
        cmds = graph.collect(Twist, "/cmd_vel")
        graph.wait_for(lambda: any(abs(c.linear.x) > 0.05 for c in cmds), 90.0, "the robot to drive")
        running = [pid for pid in _group(agent.pid) if _comm(pid) not in TWIN_COMMS]
        assert len(running) == 1 + len(graph_nodes("rooms")), "expected the runner and its node processes"
        took, runner_took = _ctrl_c(agent)
    finally:
        if agent.poll() is None:
            os.killpg(agent.pid, signal.SIGKILL)
        out, _ = agent.communicate(timeout=30)
    print(f"node processes gone {took:.2f} s after SIGINT, the runner {runner_took:.2f} s")
    assert took <= STOP_WITHIN_S, f"node processes left {took:.2f} s after SIGINT:\n{out}"
    assert runner_took <= 10.0, out
    assert agent.returncode == 0, out
    assert not [p for p in PROBLEMS if p in out], out
    time.sleep(0.2)  # the probe's last messages
    assert abs(cmds[-1].linear.x) < 1e-9 and abs(cmds[-1].angular.z) < 1e-9, "the last command was not zero"


def test_ctrl_c_during_start_up_exits_quietly(tmp_path):
    agent = _start_agent("--duration", "120", cwd=tmp_path)
    time.sleep(2.0)  # the node processes are importing torch, rclpy and MuJoCo
    assert len(_group(agent.pid)) == 1 + len(graph_nodes("rooms"))
    took, runner_took = _ctrl_c(agent)
    out, _ = agent.communicate(timeout=30)
    print(f"node processes gone {took:.2f} s after SIGINT, the runner {runner_took:.2f} s")
    assert took <= STOP_WITHIN_S and runner_took <= 10.0, out
    assert not [p for p in PROBLEMS if p in out], out


NODE_SCRIPT = """
import os
import time
from rclpy.node import Node
from ojepa_ros.nodes.entry import exit_quietly_on_signals
from ojepa_ros.nodes.runtime import run_node

class Probe(Node):
    def __init__(self):
        super().__init__("shutdown_probe_node")
        self._spinning = self.create_timer(0.01, self._say_spinning)

    def _say_spinning(self):  # once the executor runs callbacks: a Ctrl-C now meets the node's stop, not start-up
        self._spinning.cancel()
        print("spinning", flush=True)
{methods}

exit_quietly_on_signals(at_once=True)
run_node(Probe)
print("returned", flush=True)
os._exit(0)  # as entry.run ends a node executable
"""


def _ctrl_c_node(methods: str) -> tuple[int, float, str]:
    """Run a node process whose class has `methods` (indented source), Ctrl-C it once it spins: its exit status,
    how long it took, what it printed."""
    proc = subprocess.Popen([sys.executable, "-c", NODE_SCRIPT.format(methods=methods)], stdout=subprocess.PIPE,
                            stderr=subprocess.STDOUT, text=True, start_new_session=True,
                            preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL))
    assert proc.stdout.readline().strip() == "spinning"
    time.sleep(0.2)
    _, took = _ctrl_c(proc)
    out = proc.stdout.read()
    return proc.wait(), took, out


def test_a_stuck_stop_prints_its_stacks_and_exits_within_the_deadline():
    """Whatever hangs in a node's stop, the process is gone within STOP_DEADLINE_S, saying where it hung."""
    from ojepa_ros.nodes.runtime import STOP_DEADLINE_S

    status, took, out = _ctrl_c_node("""
    def stop(self):
        print("stopping", flush=True)
        time.sleep(30)  # a stop that never finishes""")
    assert status == 1 and took <= STOP_DEADLINE_S + 0.5, out
    assert "stopping" in out and "in stop" in out, out  # faulthandler's dump names the stuck frame


def test_a_node_process_ends_after_its_stop_without_waiting_for_the_middleware_teardown():
    """Once the node has stopped, its process ends at once with status 0 and nothing printed, however slow
    destroying its DDS entities would be: `ros2 launch` reports it finished cleanly."""
    from ojepa_ros.nodes.runtime import STOP_DEADLINE_S

    status, took, out = _ctrl_c_node("""
    def stop(self):
        print("stopped", flush=True)
    def destroy_node(self):
        print("destroying", flush=True)
        time.sleep(30)  # the middleware's teardown, as slow as it gets on busy cores""")
    assert status == 0 and took <= STOP_DEADLINE_S + 0.5, out  # the 30 s teardown never ran (0.5 s: a loaded host)
    assert out.split() == ["stopped", "returned"], out  # no stacks, no teardown


@pytest.mark.parametrize("node, heavy", [("perception_node", "torch"), ("sim_node", "ojepa_ros.sim.nav_env")])
def test_a_node_executable_imports_what_it_configures_with_before_it_handles_signals_in_python(node, heavy):
    """A Python signal handler cannot run while an import's C calls hold the GIL: what a node imports only when
    it configures (perception_node: torch) is imported while SIGINT and SIGTERM still end the process at once."""
    script = f"""
import os, sys
from ojepa_ros.nodes import entry
def handler_installed(at_once=False):
    print({heavy!r} in sys.modules, flush=True)
    os._exit(0)
entry.exit_quietly_on_signals = handler_installed
entry.run({node!r})
"""
    out = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=120)
    assert out.stdout.split() == ["True"], out.stdout + out.stderr
