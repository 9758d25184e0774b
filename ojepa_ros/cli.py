"""`ojepa`: one command line for running the agent and for the collect -> train -> evaluate loop."""

from __future__ import annotations

import argparse
import sys


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    parser = argparse.ArgumentParser(prog="ojepa", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)
    from ojepa_ros import runner

    runner.add_arguments(sub.add_parser("agent", help="run the node graph (pip-only `ros2 launch`)"))
    for name, help_text in (("collect", "gather episodes in the embedded world"),
                            ("train", "train the JEPA world model"),
                            ("eval", "closed-loop success rate of the agent in the embedded world")):
        sub.add_parser(name, help=help_text, add_help=False)
    args, rest = parser.parse_known_args(argv)
    if args.command == "agent":
        if rest:
            parser.error(f"unrecognised arguments: {' '.join(rest)}")
        return runner.run_agent(args)
    if args.command == "collect":
        from ojepa_ros.train.collect import main as command
    elif args.command == "train":
        from ojepa_ros.train.trainer import main as command
    else:
        from ojepa_ros.train.evaluate import main as command
    return command(rest)


if __name__ == "__main__":
    sys.exit(main())
