"""How far the image features tell the goal view from the goal locator's look-alikes, on image-goal pairs.

    python bench/goal_views.py [--worlds train] [--pairs 20] [--seed 101] [--views 60]

For each same-room pair (as `ojepa eval --goal image` draws them) the goal image is rendered at the goal,
facing along start -> goal. Views around it are encoded and compared with it: at the goal (position noise
0.08 m, heading noise 0.15 rad), and at random free poses of the goal's room. A random pose whose sighting
claims the goal is near and ahead (confidence >= the shipped image_goal_confidence, <= 0.6 m, within 0.35 rad)
is a look-alike when the goal is truly >= 1 m away, a near view when it is < 1 m. Prints the features' mean
squared divergence from the goal view for each group, and what a divergence threshold would keep of the goal
views and reject of the look-alikes. Asserts nothing.
"""

from __future__ import annotations

import argparse
import math

import numpy as np
import torch

from ojepa_ros.core.goal_locator import LOCATOR_FILE
from ojepa_ros.core.model_io import load_world_model
from ojepa_ros.paths import config_file, default_model
from ojepa_ros.sim.rooms_world import room_of, sample_free_pose
from ojepa_ros.train.evaluate import Scenario, actor_params, goal_heading, rooms_env, scenario_trials, view_state

CLAIM_DISTANCE, CLAIM_TURN = 0.6, 0.35  # m, rad: a sighting that says "the goal is here, ahead"
LOOK_ALIKE = 1.0  # m: a claim farther than this from the true goal is a look-alike
GOAL_NOISE = (0.08, 0.15)  # m, rad: views "at the goal"
AT_GOAL, NEAR, ALIKE, REST = ("at the goal", "near views (claim, truly < 1 m)", "look-alikes (claim, truly >= 1 m)",
                              "the rest of the room")


def quantiles(values: list[float]) -> str:
    if not values:
        return "n=0"
    a = np.asarray(values)
    return (f"n={len(a):>4}  p10 {np.percentile(a, 10):.4f}  p50 {np.median(a):.4f}  p90 {np.percentile(a, 90):.4f}"
            f"  max {a.max():.4f}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--worlds", default="train")
    parser.add_argument("--pairs", type=int, default=20)
    parser.add_argument("--seed", type=int, default=101)
    parser.add_argument("--views", type=int, default=60, help="random poses in the goal's room per pair")
    parser.add_argument("--model", default=str(default_model()))
    args = parser.parse_args()
    torch.set_num_threads(1)
    model = load_world_model(args.model)
    locator = LOCATOR_FILE.load(LOCATOR_FILE.beside(args.model), feature_dim=model.cfg.feature_dim)
    confidence = float(actor_params(config_file("agent.yaml"))["image_goal_confidence"])
    env = rooms_env(model, 300)
    rng = np.random.default_rng(args.seed)

    @torch.no_grad()
    def features(x: float, y: float, yaw: float) -> torch.Tensor:
        return model.features(view_state(model, env, x, y, yaw))

    groups: dict[str, list[float]] = {AT_GOAL: [], NEAR: [], ALIKE: [], REST: []}
    try:
        for trial in scenario_trials(Scenario(worlds=args.worlds, mode="same_room", goal="image"), args.pairs,
                                     args.seed):
            env.set_layout(trial.layout)
            gx, gy = trial.goal
            heading = goal_heading(trial.start, trial.goal)
            goal = features(gx, gy, heading)
            for _ in range(6):
                view = features(gx + rng.normal(0, GOAL_NOISE[0]), gy + rng.normal(0, GOAL_NOISE[0]),
                                heading + rng.normal(0, GOAL_NOISE[1]))
                groups[AT_GOAL].append(float((view - goal).square().mean()))
            room = room_of(trial.layout, gx, gy)
            for _ in range(args.views):
                x, y, yaw = sample_free_pose(trial.layout, rng, room=room)
                view = features(x, y, yaw)
                sight = locator.locate(view, goal)
                claims = (sight.confidence >= confidence and math.hypot(*sight.relative_xy) <= CLAIM_DISTANCE
                          and abs(sight.relative_yaw) <= CLAIM_TURN)
                truly = math.hypot(gx - x, gy - y)
                name = REST if not claims else ALIKE if truly >= LOOK_ALIKE else NEAR
                groups[name].append(float((view - goal).square().mean()))
    finally:
        env.close()
    print(f"# {args.pairs} image-goal pairs, worlds {args.worlds}, seed {args.seed}, {args.views} views a pair; "
          "features' mean squared divergence from the goal view")
    for name, values in groups.items():
        print(f"{name:>36}  {quantiles(values)}")
    at_goal, alike = np.asarray(groups[AT_GOAL]), np.asarray(groups[ALIKE])
    if len(alike):
        for share in (80, 90, 95):
            threshold = np.percentile(at_goal, share)
            print(f"threshold {threshold:.4f}: keeps {np.mean(at_goal <= threshold):.0%} of the goal views, "
                  f"rejects {np.mean(alike > threshold):.0%} of the look-alikes")


if __name__ == "__main__":
    main()
