"""The node executables' entry point: installs quiet signal handling before anything heavy is imported.

Importing a node module loads torch, MuJoCo and rclpy, which takes seconds; a Ctrl-C in that time would
print a KeyboardInterrupt traceback per node (and `ros2 launch` sends one to every node at once). So the
console scripts and `ojepa agent --processes` start here: SIGINT or SIGTERM before the node spins ends the
process at once with nothing printed (there is nothing to stop yet: the signal's default action while the node's
module is imported, then os._exit with status 0); once it spins,
runtime.run_nodes turns them into an orderly stop, after which the process exits without the
interpreter's slow teardown.

`python -m ojepa_ros.nodes.entry NODE [--ros-args ...]` runs one node by name.
"""

from __future__ import annotations

import importlib
import os
import signal
import sys
import threading
from typing import Callable

LOWEST_NICE = 19  # a twin's imports yield the CPU to every node that runs
# Imported at the usual priority first: importing them starts OpenBLAS's worker threads, which do matrix work for
# the node later and would otherwise keep the lowest priority.
USUAL_PRIORITY_IMPORTS = ("numpy", "cv2")


def _exit_now(_signum, _frame) -> None:
    raise SystemExit(0)


def _exit_at_once(_signum, _frame) -> None:
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(0)


def exit_quietly_on_signals(at_once: bool = False) -> None:
    """Until the nodes spin: SIGINT and SIGTERM end the process quietly, with status 0 and no traceback.

    By SystemExit, so that the caller's `finally` blocks run (the runner's stop its children); `at_once`, for a
    process with nothing to undo before its nodes spin (a node executable), by os._exit: a SystemExit raised
    inside a finalizer or an import's lock callback is only printed ("Exception ignored in ...") and start-up goes
    on, deaf to the signal. Also undoes an inherited "ignore SIGINT" (a shell's background job), so Ctrl-C always
    works.
    """
    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, _exit_at_once if at_once else _exit_now)


def _node_module(name: str):
    from ojepa_ros import graph

    spec = next((s for s in graph.ALL_NODES if s.name == name), None)
    if spec is None:
        raise SystemExit(f"unknown node {name!r}; one of {_node_names()}")
    return importlib.import_module(spec.module)


# What a node's module imports only when it configures, by node (a node that loads the world model: the model code).
WARM_IMPORTS = {"sim_node": ("ojepa_ros.sim.nav_env", "ojepa_ros.sim.world_family")}


def _import_heavy(name: str):
    """Import node `name`'s module (returned) and what it imports only when it configures (torch: seconds of C
    calls)."""
    from ojepa_ros import graph

    module = _node_module(name)
    for extra in WARM_IMPORTS.get(name, ("ojepa_ros.core.model_io",) if name in graph.MODEL_USERS else ()):
        importlib.import_module(extra)
    return module


def _at_lowest_priority(work: Callable[[], object]) -> None:
    """Run `work` on a thread of its own at nice 19, and wait for it (its exception is raised here).

    A twin's imports take seconds of CPU, and the supervisor starts every node's twin at once while the robot
    drives: at the nodes' priority they took the actor's planning past its deadline for the first seconds of every
    run. Linux gives each thread its own nice value, and a thread inherits its creator's: this thread lowers only
    its own, so the process's main thread, and every thread it starts later (the middleware's, the node's), keep
    theirs, which an unprivileged process could not raise back."""
    failure: list[BaseException] = []

    def run() -> None:
        try:
            if hasattr(os, "setpriority"):
                os.setpriority(os.PRIO_PROCESS, threading.get_native_id(), LOWEST_NICE)
            work()
        except BaseException as err:  # re-raised on the caller's thread
            failure.append(err)

    worker = threading.Thread(target=run, name="twin imports", daemon=True)
    worker.start()
    worker.join()
    if failure:
        raise failure[0]


def prepare(argv: list[str]) -> None:
    """Get the node `argv[0]` names ready to run (ojepa_ros.standby calls this): import its module, and what it
    imports only when it configures (WARM_IMPORTS; for a node that loads the world model, torch and the model code),
    at the lowest CPU priority (but for USUAL_PRIORITY_IMPORTS); then start the middleware with the node's
    arguments and its DDS participant (runtime.start_participant), so the graph has discovered this process before
    the node is created. A restart then waits for none of it."""
    if not argv:
        return
    for name in USUAL_PRIORITY_IMPORTS:
        importlib.import_module(name)
    _at_lowest_priority(lambda: _import_heavy(argv[0]))
    from ojepa_ros.nodes.runtime import init_middleware, start_participant

    init_middleware(argv[1:])
    start_participant()


def run(name: str, args: list[str] | None = None) -> None:
    """Run the node `name` of ojepa_ros.graph (its module's main()).

    While its module is imported, with what it imports only when it configures (torch and the model code),
    SIGINT and SIGTERM keep their default action: the kernel ends the process at once, with nothing printed. A
    Python handler would wait for the import's C calls, which hold the GIL (loading torch's libraries takes
    seconds when ten node processes start on two cores; the configure step's import held a perception_node deaf
    to SIGINT and SIGTERM until launch's SIGKILL at 10 s); the price is that launch reports an exit status of -2
    for a Ctrl-C in that window."""
    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, signal.SIG_DFL)
    module = _import_heavy(name)
    exit_quietly_on_signals(at_once=True)
    module.main(args)
    # The node has stopped, its last messages sent and the middleware shut down. Tearing down the
    # interpreter (torch, MuJoCo, DDS threads) takes ~0.7 s more per process alone, and 4-5 s when the
    # seven nodes do it at once on two busy cores, past the 2 s a Ctrl-C should take: skip it.
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(0)


def _node_names() -> list[str]:
    from ojepa_ros import graph

    return [s.name for s in graph.ALL_NODES]


def __getattr__(name: str):
    """`from ojepa_ros.nodes.entry import sim_node` (what setup.py's console scripts do) gives a main() for
    every node of ojepa_ros.graph, so a node added there needs no change here."""
    if name in _node_names():
        def main() -> None:
            run(name)
        main.__name__ = name
        return main
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def main() -> None:
    """`python -m ojepa_ros.nodes.entry NODE [--ros-args ...]` (and ojepa_ros.standby's hand-over)."""
    if len(sys.argv) < 2:
        raise SystemExit("usage: python -m ojepa_ros.nodes.entry NODE [--ros-args ...]")
    run(sys.argv[1], sys.argv[2:])


if __name__ == "__main__":
    main()
