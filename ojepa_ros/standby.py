"""`python -m ojepa_ros.standby MODULE [ARGS…]`: a node process started ahead of need. It imports MODULE (the
slow part of starting a node here: rclpy, torch, MuJoCo; 1-4 s on a busy 2-core machine), then waits for a line
`go` on stdin and only then runs MODULE.main() with ARGS as its command line. The supervisor keeps one per node
and hands over to it when the node dies (ojepa_ros.supervisor, `ojepa agent --processes --standby`). End of
input (the supervisor gone or done with it) exits without starting anything.
"""

from __future__ import annotations

import importlib
import sys


def main() -> int:
    if len(sys.argv) < 2:
        print(__doc__, file=sys.stderr)
        return 2
    module = importlib.import_module(sys.argv[1])
    prepare = getattr(module, "prepare", None)  # a launcher module (nodes/entry.py) imports its node's module
    if prepare is not None:
        prepare(sys.argv[2:])
    try:
        line = sys.stdin.readline()
    except KeyboardInterrupt:
        return 0
    if line.strip() != "go":
        return 0
    sys.argv = sys.argv[1:]  # as `python -m MODULE ARGS…` would have it
    module.main()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
