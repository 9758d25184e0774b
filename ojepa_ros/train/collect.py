"""Reward-free exploration episodes in the training worlds of the family, one compressed .npz per episode.

The world model only learns what the data shows, so the exploration policy is shaped for the planner:
smooth, mostly-forward drives of varied speed and curvature (what MPPI proposes), starts in every room and
beside doorways (so crossings are seen), and bumper contacts followed by backing away (so obstacles up
close and blocked motion are seen). Episodes cycle over the four-room world and generated training
layouts, with extra furniture dropped anywhere and, in some, a box sliding across the room. Each episode
records only what the robot's own sensors give: camera, odometry, bumper and the range scan.
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import numpy as np
import yaml

from ojepa_ros.paths import config_file
from ojepa_ros.sim.nav_env import NavEnvConfig, RoomsNavEnv
from ojepa_ros.sim.rooms_world import RoomsLayout, clearance, doorways, sample_free_pose
from ojepa_ros.sim.world_family import (HELDOUT_SEEDS, SPLITS, TRAINING_SEEDS, generate_layout, mover_across,
                                        random_obstacle, world)

DOOR_START_FRACTION = 0.3
FOUR_ROOMS_EVERY = 4        # every 4th episode in the four-room world, the rest in generated training layouts
EXTRA_OBSTACLE_FRACTION = 0.6  # episodes with 1-3 pieces of furniture dropped at random free spots
MOVER_FRACTION = 0.25       # episodes with a box sliding across the room


class ExplorationPolicy:
    """Piecewise-constant targets (forward-biased), low-pass filtered, with small or large jitter per segment;
    backs up turning after a collision."""

    def __init__(self, rng: np.random.Generator, max_linear: float, max_angular: float) -> None:
        self.rng, self.limits = rng, np.array([max_linear, max_angular])
        self.action = np.zeros(2)
        self.target = np.zeros(2)
        self.smoothing = 0.5
        self.jitter = 0.05
        self.segment_left = 0
        self.recovery_left = 0

    def _new_segment(self) -> None:
        rng, (v_max, w_max) = self.rng, self.limits
        v = rng.uniform(0.3, 1.0) * v_max if rng.random() < 0.75 else rng.uniform(-0.6, 0.3) * v_max
        w = 0.0 if rng.random() < 0.2 else float(np.clip(rng.normal(0.0, 0.5), -1.0, 1.0)) * w_max
        self.target = np.array([v, w])
        self.smoothing = rng.uniform(0.3, 1.0)
        self.jitter = 0.3 if rng.random() < 0.3 else 0.05  # some segments as jittery as MPPI samples
        self.segment_left = int(rng.integers(3, 20))

    def __call__(self, collided: bool) -> np.ndarray:
        if collided and self.recovery_left == 0:
            self.recovery_left = int(self.rng.integers(6, 16))
            turn = self.rng.choice([-1.0, 1.0]) * self.rng.uniform(0.6, 1.0) * self.limits[1]
            self.target = np.array([-self.rng.uniform(0.2, 0.6) * self.limits[0], turn])
            self.segment_left = self.recovery_left
        if self.recovery_left:
            self.recovery_left -= 1
        if self.segment_left == 0:
            self._new_segment()
        self.segment_left -= 1
        self.action += self.smoothing * (self.target - self.action)
        jitter = self.rng.normal(0.0, self.jitter, 2) * self.limits
        return np.clip(self.action + jitter, -self.limits, self.limits)


def door_start(layout: RoomsLayout, rng: np.random.Generator, margin: float) -> tuple[float, float, float]:
    """A pose 0.3-1.2 m to either side of a doorway, heading roughly through it."""
    doors = doorways(layout)
    if not doors:
        return sample_free_pose(layout, rng, margin=margin + 0.25)
    for _ in range(100):
        centre, normal = doors[int(rng.integers(len(doors)))]
        side = rng.choice([-1.0, 1.0])
        lateral = np.array([-normal[1], normal[0]]) * rng.uniform(-0.3, 0.3)
        xy = centre + side * normal * rng.uniform(0.3, 1.2) + lateral
        if clearance(layout, xy[None])[0] >= margin:
            to_door = centre - xy
            return float(xy[0]), float(xy[1]), float(np.arctan2(to_door[1], to_door[0]) + rng.normal(0.0, 0.4))
    raise RuntimeError("no free start pose near any doorway")


def episode_layout(i: int, rng: np.random.Generator, split: str = "train") -> RoomsLayout:
    """The world of episode i, plus dropped furniture and a mover: the four-room world or a training layout
    (split "train"), or a held-out layout (split "heldout": episodes for scoring models, never for training)."""
    if split == "heldout":
        layout = generate_layout(HELDOUT_SEEDS[i % len(HELDOUT_SEEDS)])
    elif i % FOUR_ROOMS_EVERY == 0:
        layout = world("four_rooms")
    else:
        layout = generate_layout(TRAINING_SEEDS[(i - i // FOUR_ROOMS_EVERY - 1) % len(TRAINING_SEEDS)])
    extra = []
    if rng.random() < EXTRA_OBSTACLE_FRACTION:
        for k in range(int(rng.integers(1, 4))):
            try:
                x, y, _ = sample_free_pose(layout.with_obstacles(tuple(extra)), rng, margin=0.7)
            except RuntimeError:  # that room is full
                break
            extra.append(random_obstacle(rng, f"dropped_{k}", (x, y)))
    movers = []
    if rng.random() < MOVER_FRACTION:
        room = int(rng.integers(len(layout.rooms)))
        a, b = (sample_free_pose(layout, rng, room=room)[:2] for _ in range(2))
        if np.hypot(*np.subtract(a, b)) > 0.5:
            movers.append(mover_across(layout, a, b, rng, speed=float(rng.uniform(0.15, 0.4))))
    return layout.with_obstacles(tuple(extra), tuple(movers))


def run_episode(env: RoomsNavEnv, rng: np.random.Generator, steps: int, room: int) -> dict[str, np.ndarray]:
    """One episode of `steps` actions; goal termination and truncation are ignored (nothing is being reached)."""
    cfg = env.config
    room = room % len(env.layout.rooms)
    if rng.random() < DOOR_START_FRACTION:
        start = door_start(env.layout, rng, cfg.robot_radius + 0.1)
    else:
        start = sample_free_pose(env.layout, rng, room=room)
    obs, info = env.reset(seed=int(rng.integers(2**31)), options={"start": start})
    policy = ExplorationPolicy(rng, cfg.max_linear, cfg.max_angular)
    images, odom, scans, actions, collision = [obs["image"]], [obs["odom"]], [obs["scan"]], [], [False]
    for _ in range(steps):
        action = policy(collision[-1])
        obs, _, _, _, info = env.step(action)
        images.append(obs["image"])
        odom.append(obs["odom"])
        scans.append(obs["scan"])
        actions.append(action)
        collision.append(info["collision"])
    return {"images": np.stack(images), "odom": np.stack(odom).astype(np.float32),
            "actions": np.stack(actions).astype(np.float32), "collision": np.array(collision),
            "scan": np.stack(scans).astype(np.float32), "scan_angles": env.scan_angles.astype(np.float32),
            "world": np.array(env.layout.name)}


def collect(out_dir: str | Path, episodes: int, steps: int, seed: int, image_size: int,
            split: str = "train") -> dict[str, float]:
    """Write episode_XXXXX.npz files to out_dir; returns counts and speed. Episode i is seeded by (seed, i)."""
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    env = RoomsNavEnv(NavEnvConfig(image_width=image_size, image_height=image_size))
    start = time.perf_counter()
    collisions = 0
    try:
        for i in range(episodes):
            rng = np.random.default_rng([seed, i])
            env.set_layout(episode_layout(i, rng, split))
            episode = run_episode(env, rng, steps, room=i // FOUR_ROOMS_EVERY)
            collisions += int(episode["collision"].sum())
            np.savez_compressed(out_dir / f"episode_{i:05d}.npz", **episode)
            if (i + 1) % 10 == 0 or i + 1 == episodes:
                rate = (i + 1) * steps / (time.perf_counter() - start)
                print(f"collect: {i + 1}/{episodes} episodes, {rate:.0f} steps/s", flush=True)
    finally:
        env.close()
    seconds = time.perf_counter() - start
    return {"episodes": episodes, "steps": episodes * steps, "seconds": seconds,
            "steps_per_second": episodes * steps / seconds, "collision_fraction": collisions / (episodes * steps)}


def main(argv: list[str] | None = None) -> int:
    """`ojepa collect`: defaults come from the "collect" section of config/train.yaml."""
    parser = argparse.ArgumentParser(prog="ojepa collect", description=__doc__.splitlines()[0])
    parser.add_argument("--config", type=Path, default=config_file("train.yaml"))
    parser.add_argument("--out", type=Path, default=Path("data/rooms"), help="directory for the episode files")
    for name in ("episodes", "steps", "seed", "image-size"):
        parser.add_argument(f"--{name}", type=int, help="overrides the config file")
    parser.add_argument("--split", choices=SPLITS, default="train",
                        help="train: the four-room world and training layouts; heldout: held-out layouts, for "
                             "scoring models only (`ojepa eval-wm --heldout`)")
    args = parser.parse_args(argv)
    settings = yaml.safe_load(args.config.read_text())["collect"]
    settings.update({k: v for k, v in vars(args).items() if k in settings and v is not None})
    stats = collect(args.out, settings["episodes"], settings["steps"], settings["seed"], settings["image_size"],
                    args.split)
    print(f"collect: wrote {stats['episodes']} episodes ({stats['steps']} steps) to {args.out} in "
          f"{stats['seconds']:.0f} s ({stats['steps_per_second']:.0f} steps/s), "
          f"{100 * stats['collision_fraction']:.1f} % of steps in contact")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
