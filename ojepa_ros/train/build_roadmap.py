"""`ojepa roadmap`: encode recorded episodes with the world model and pool them into the high level's roadmap.

Sources are those of `ojepa train` (collect .npz files, memory_node MCAP episodes), so the roadmap grows with
the robot's own memory: rerun it on memory_node's output_dir to add what the robot has seen since. A roadmap
is one world's experience: --world keeps the collected episodes recorded in that world (MCAP episodes, the
robot's own, are always kept).
"""

from __future__ import annotations

import argparse
import sys
import time

from ojepa_ros.core.roadmap import build_roadmap
from ojepa_ros.train.encoded import INPUT_ERRORS, add_input_args, encoded_episodes, open_inputs
from ojepa_ros.train.episode_files import recorded_world


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="ojepa roadmap", description=__doc__.splitlines()[0])
    add_input_args(parser, "roadmap .npz to write")
    parser.add_argument("--cell-size", type=float, default=0.25, help="m per subgoal cell")
    parser.add_argument("--max-model-error", type=float, default=0.15,
                        help="m: a recorded macro-step becomes an edge only if level 2 predicts it this well")
    parser.add_argument("--world", default="", help="keep only collected episodes recorded in this world, e.g. "
                        "four_rooms (default: all)")
    args = parser.parse_args(argv)
    if not (args.cell_size > 0 and args.max_model_error > 0):
        parser.error("--cell-size and --max-model-error must be > 0")
    try:
        model, files = open_inputs(args)
        if args.world:
            files = [f for f in files if recorded_world(f) in (None, args.world)]
            if not files:
                raise ValueError(f"no episode in {args.data} was recorded in world {args.world!r}")
    except INPUT_ERRORS as err:
        print(f"ojepa roadmap: {err}", file=sys.stderr)
        return 2
    start = time.perf_counter()
    episodes = ((states, ep["actions"]) for states, ep in encoded_episodes(model, files))
    roadmap = build_roadmap(model, episodes, args.cell_size, args.max_model_error)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    roadmap.save(args.out)
    print(f"ojepa roadmap: {len(files)} episodes -> {len(roadmap.centres)} cells, {len(roadmap.edges)} edges "
          f"in {time.perf_counter() - start:.0f} s -> {args.out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
