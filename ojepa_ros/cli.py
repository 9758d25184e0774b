"""`ojepa`: one command line for running the agent and for the collect -> train -> evaluate loop."""

from __future__ import annotations

import argparse
import importlib
import os
import sys

COMMANDS = {"collect": "ojepa_ros.train.collect", "train": "ojepa_ros.train.trainer",
            "eval": "ojepa_ros.train.evaluate", "eval-wm": "ojepa_ros.train.evaluate_wm",
            "export": "ojepa_ros.core.onnx_export", "roadmap": "ojepa_ros.train.build_roadmap",
            "distill": "ojepa_ros.train.distill", "critic": "ojepa_ros.train.fit_critic",
            "locator": "ojepa_ros.train.fit_locator",
            "gazebo-world": "ojepa_ros.sim.gazebo_world"}  # imported on demand: `ojepa agent` needs none of them


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    parser = argparse.ArgumentParser(prog="ojepa", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)
    from ojepa_ros import graph, runner

    runner.add_arguments(sub.add_parser("agent", help="run the node graph (pip-only `ros2 launch`)"))
    for name, help_text in (("collect", "gather episodes in the embedded world"),
                            ("train", "train the JEPA world model"),
                            ("eval", "closed-loop success rate of the agent in the embedded world"),
                            ("eval-wm", "what the world models learned: prediction, probes, collapse (table + plot)"),
                            ("export", "write the world model as ONNX graphs + manifest, checked against torch"),
                            ("roadmap", "pool recorded episodes into the hierarchical planner's subgoal roadmap"),
                            ("distill", "train the Mode-1 policy on Mode-2 plans from recorded episodes"),
                            ("critic", "fit the trainable critic (future contact cost) on recorded episodes"),
                            ("locator", "train the goal locator (where a goal image was taken) on recorded episodes"),
                            ("gazebo-world", "write a world of the family and the robot as a Gazebo SDF world")):
        sub.add_parser(name, help=help_text, add_help=False)
    args, rest = parser.parse_known_args(argv)
    if args.command == "agent":
        if rest:
            parser.error(f"unrecognised arguments: {' '.join(rest)}")
        try:
            status = runner.run_agent(args)
        except graph.LaunchError as err:  # a bad value, found before any node started
            parser.error(str(err))
        # Its nodes skipped the middleware's teardown (runtime.run_nodes): end without the interpreter's, which
        # would wait on the DDS threads still alive, as a node executable ends (nodes/entry.py).
        sys.stdout.flush()
        sys.stderr.flush()
        os._exit(status)
    module = importlib.import_module(COMMANDS[args.command])
    return module.main(rest)


if __name__ == "__main__":
    sys.exit(main())
