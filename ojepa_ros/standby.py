"""`python -m ojepa_ros.standby MODULE [ARGS…]`: a node process started ahead of need. It imports MODULE (the
slow part of starting a node here: rclpy, torch, MuJoCo; 1-4 s on a busy 2-core machine) and lets it prepare
(nodes/entry.py also starts the middleware and its DDS participant, so the graph has discovered it too), then waits
for a line `go` on stdin and only then runs MODULE.main() with ARGS as its command line. The supervisor keeps one per
node and hands over to it when the node dies (ojepa_ros.supervisor, `ojepa agent --processes`). End of input (the
supervisor gone or done with it) exits without starting anything. Until it runs the node, its process name (/proc/PID/comm, what `ps -o comm`
and `top` show) is STANDBY_COMM while it prepares and READY_COMM once it waits, so a twin is told from the node it may
become, and a ready one from one still starting.
"""

from __future__ import annotations

import ctypes
import importlib
import os
import signal
import sys

STANDBY_COMM = "ojepa-standby"
READY_COMM = "ojepa-ready"
TWIN_COMMS = (STANDBY_COMM, READY_COMM)
PR_SET_NAME = 15  # from <sys/prctl.h>
LEAVE_WITHIN_S = 1.0  # the most a twin that exits without a node spends saying goodbye to the graph


def set_process_name(name: str) -> None:
    """This process's name as the kernel shows it (at most 15 bytes); Linux only, a no-op elsewhere."""
    if sys.platform.startswith("linux"):
        ctypes.CDLL("libc.so.6").prctl(PR_SET_NAME, name.encode()[:15], 0, 0, 0)


def _leave() -> None:
    """Exit without a node: end the rclpy a prepare() may have started (nodes/entry.py does: its shutdown destroys
    the placeholder node, saying goodbye to the graph), then skip the interpreter's teardown of torch and DDS, which
    takes seconds when all twins do it at once on a Ctrl-C. The supervisor's SIGINT that follows the end of input
    is ignored from here: it would break the shutdown off with a KeyboardInterrupt traceback."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    rclpy = sys.modules.get("rclpy")
    if rclpy is not None:  # a goodbye held up in the middleware ends by SIGALRM's default action, silently
        signal.signal(signal.SIGALRM, signal.SIG_DFL)
        signal.setitimer(signal.ITIMER_REAL, LEAVE_WITHIN_S)
        rclpy.try_shutdown()
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(0)


def _exit_while_preparing(_signum, _frame) -> None:
    """SIGINT or SIGTERM while the imports and the middleware start (seconds, under load): exit 0 at once, with
    nothing printed and nothing shut down, since rclpy may be half imported or half way through creating the
    placeholder node. A Ctrl-C reaches every twin of `ojepa agent --processes` at once."""
    os._exit(0)


def main() -> int:
    if len(sys.argv) < 2:
        print(__doc__, file=sys.stderr)
        return 2
    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, _exit_while_preparing)
    own_name = open("/proc/self/comm").read().strip() if os.path.exists("/proc/self/comm") else ""
    set_process_name(STANDBY_COMM)
    module = importlib.import_module(sys.argv[1])
    prepare = getattr(module, "prepare", None)  # a launcher module (nodes/entry.py) imports its node's module
    if prepare is not None:
        prepare(sys.argv[2:])
    set_process_name(READY_COMM)
    try:  # from here a SIGINT is a KeyboardInterrupt again, caught at once
        signal.signal(signal.SIGINT, signal.default_int_handler)
        signal.signal(signal.SIGTERM, signal.SIG_DFL)
        line = sys.stdin.readline()
    except KeyboardInterrupt:
        _leave()
    if line.strip() != "go":
        _leave()
    set_process_name(own_name)
    sys.argv = sys.argv[1:]  # as `python -m MODULE ARGS…` would have it
    module.main()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
