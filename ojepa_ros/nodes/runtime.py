"""Spinning nodes and shutting them down so the robot is left stopped (Ctrl-C safe)."""

from __future__ import annotations

import faulthandler
import os
import signal
import sys
import threading
import time
from typing import Callable

import rclpy
from rclpy.node import Node
from rclpy.signals import SignalHandlerOptions

from ojepa_ros.nodes.lifecycle import ManagedNode
from ojepa_ros.nodes.spin_thread import SpinThread

# A stop that takes longer than this is stuck: the process then prints every thread's stack (what hung) and
# exits with status 1, rather than wait for `ros2 launch` to escalate to SIGTERM and SIGKILL (5 s and 15 s).
STOP_DEADLINE_S = float(os.environ.get("OJEPA_STOP_DEADLINE", "1.5"))
FINAL_MESSAGES_S = 0.1  # after the nodes' stop(): time for their final commands to leave


class NodeSpinner:
    """Spins each node added in a thread of its own (nodes/spin_thread.py).

    One thread per node keeps the nodes concurrent (the simulator steps while the actor plans). Within a
    node, callbacks run one at a time in the order their events arrived, so inputs that arrive during a
    planning step are handled before the next control tick. rclpy's MultiThreadedExecutor rebuilds a wait
    set in Python on every wake-up: in the 7-node graph it took ~125 % of the 2 cores measured here against
    ~30 % for EventsExecutors, and the actor's planning got the difference back (median step 86 -> 45 ms).
    """

    def __init__(self) -> None:
        self._runs: list[SpinThread] = []

    def add(self, node: Node) -> Node:
        self._runs.append(SpinThread(node, f"spin {node.get_name()}"))
        return node

    def alive(self) -> bool:
        return all(run.alive() for run in self._runs)

    def stop(self) -> None:
        """Stop spinning (the nodes stay valid: their stop() may still publish); then call shutdown()."""
        for run in self._runs:
            run.stop()

    def shutdown(self) -> None:
        for run in self._runs:
            run.release()


def _one_torch_thread() -> None:
    torch = sys.modules.get("torch")
    if torch is not None:
        torch.set_num_threads(int(os.environ.get("OJEPA_TORCH_THREADS", "1")))


def init_middleware(args: list[str] | None = None) -> None:
    """rclpy.init with the node's command line, without rclpy's signal handlers (run_nodes says why)."""
    rclpy.init(args=args, signal_handler_options=SignalHandlerOptions.NO)


_placeholder: Node | None = None  # a standby process's hidden node, holding its DDS participant until the real one


def start_participant() -> None:
    """Create this process's DDS participant now (a standby process, before the node it will run exists).

    rmw_fastrtps creates a context's participant with its first node, not in rclpy.init; a handover would then wait
    for the whole graph to discover a new participant (measured: 1.0-2.9 s from the node's creation to the lifecycle
    manager's first answered get_state, load 10). A hidden node (no services, no /rosout), named apart from the
    process's node (the command line's remaps are not applied to it), makes the participant here; run_nodes drops
    it once the real nodes exist, the participant staying theirs."""
    global _placeholder
    _placeholder = rclpy.create_node(f"_standby_{os.getpid()}", use_global_arguments=False, enable_rosout=False,
                                     start_parameter_services=False)


def _drop_placeholder() -> None:
    global _placeholder
    if _placeholder is not None:
        _placeholder.destroy_node()
        _placeholder = None


def run_nodes(nodes: Callable[[], list[Node]], args: list[str] | None = None,
              until: Callable[[], bool] | None = None, own_process: bool = False) -> None:
    """Create the nodes in one process and spin them until SIGINT/SIGTERM or `until()`; then each node's
    `stop()` runs. A managed node with `autostart: true` is configured and activated before it spins; the others
    wait for the lifecycle manager (or `ros2 lifecycle set`).

    rclpy's own signal handler is not installed, so on Ctrl-C the context is still valid when the actor
    publishes its final zero command. Once the nodes spin, SIGINT and SIGTERM only ask for that stop: a
    second Ctrl-C (a terminal's reaches `ros2 launch` and every node, then launch sends its own) cannot cut
    the stop short with a KeyboardInterrupt. Before that, a signal ends the process quietly (see entry.py).

    The stop has STOP_DEADLINE_S: a node's stop() still running then prints every thread's stack and exits 1.
    `own_process` (a node executable, whose process ends once this returns, entry.py; `ojepa agent`, cli.py):
    the middleware's teardown is skipped. Destroying each publisher, service and client sends a DDS goodbye per
    endpoint while holding the GIL; under real `ros2 launch` with ten node processes doing it at once on two busy
    cores (load 14) it ran past the deadline in six of them (their stacks in rclpy's destroy_service /
    destroy_publisher, status 1), and `ojepa agent --processes`' own monitor node did too once its node
    processes had gone. Nothing the robot needs is left by then (zero command sent, episode closed); peers drop
    the process's DDS participant when its lease runs out, as after a crash.
    """
    # Several nodes call torch from executor threads at once; one intra-op thread each avoids
    # OpenMP oversubscription, which costs far more than it gains on a 2-4 core robot computer. Only where
    # torch is used: a node without it (configurator, memory, collision monitor, sim) starts ~1 s sooner
    # without importing it, which is what a restart after a crash waits for.
    _one_torch_thread()
    # The planner makes hundreds of short torch calls per step, each giving up and retaking the GIL;
    # with the default 5 ms switch interval every retake can wait behind the sim and message threads.
    sys.setswitchinterval(float(os.environ.get("OJEPA_SWITCH_INTERVAL", "0.0005")))
    if not rclpy.ok():  # else a standby process started it ahead (init_middleware)
        init_middleware(args)
    created = nodes()
    _drop_placeholder()  # a standby process's: its participant is the nodes' now
    for node in created:
        if isinstance(node, ManagedNode):
            node.autostart()
    _one_torch_thread()  # again: a node may have loaded torch while it was created or configured (a model)
    stop_requested = threading.Event()
    if threading.current_thread() is threading.main_thread():
        for sig in (signal.SIGINT, signal.SIGTERM):
            signal.signal(sig, lambda _signum, _frame: stop_requested.set())
    spinner = NodeSpinner()
    for node in created:
        spinner.add(node)
    try:
        while spinner.alive() and not stop_requested.is_set() and not (until is not None and until()):
            stop_requested.wait(0.05)
    except KeyboardInterrupt:  # a caller in another thread, or one that set SIGINT back to Python's default
        pass
    finally:
        faulthandler.dump_traceback_later(STOP_DEADLINE_S, exit=True)
        spinner.stop()
        for node in created:
            stop = getattr(node, "stop", None)
            if stop is not None:
                stop()
        time.sleep(FINAL_MESSAGES_S)  # let the final commands leave before the middleware goes away
        if not own_process:
            spinner.shutdown()
            for node in created:
                node.destroy_node()
            rclpy.try_shutdown()
        faulthandler.cancel_dump_traceback_later()


def run_node(factory: Callable[[], Node], args: list[str] | None = None) -> None:
    """One node in a process of its own (a node executable's main())."""
    run_nodes(lambda: [factory()], args, own_process=True)
