"""Recorded frames through a frozen world model: the one place episodes are turned into states."""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path
from typing import Callable, Iterator

import torch

from ojepa_ros.core.model_io import ModelFileError, PartFile, load_world_model
from ojepa_ros.core.odometry import proprio_from_odom
from ojepa_ros.core.world_model import WorldModel
from ojepa_ros.train.episode_files import find_episodes, load_episode

INPUT_ERRORS = (ModelFileError, FileNotFoundError, ValueError)  # what open_inputs raises, each naming the file


def add_input_args(parser: argparse.ArgumentParser, out_help: str) -> None:
    """--model, --data and --out of the commands that fit something on a frozen world model's states."""
    parser.add_argument("--model", type=Path, required=True)
    parser.add_argument("--data", nargs="+", required=True, help="episode files or folders (.npz, .mcap)")
    parser.add_argument("--out", type=Path, required=True, help=out_help)


def open_inputs(args: argparse.Namespace) -> tuple[WorldModel, list[Path]]:
    """The world model and episode files named by add_input_args' arguments; raises one of INPUT_ERRORS."""
    return load_world_model(args.model), find_episodes(args.data)


@torch.no_grad()
def encode_frames(model: WorldModel, images: torch.Tensor, proprio: torch.Tensor, batch: int = 512) -> torch.Tensor:
    """States [T, D] of uint8 images [T, S, S, 3] and proprio [T, 6], `batch` frames per call (bounded memory).
    Leaves the model's train/eval mode as it found it."""
    was_training = model.training
    model.eval()
    states = torch.cat([model.encode(images[i:i + batch], proprio[i:i + batch]) for i in range(0, len(images), batch)])
    model.train(was_training)
    return states


def encoded_episodes(model: WorldModel, files: list[Path]) -> Iterator[tuple[torch.Tensor, dict[str, torch.Tensor]]]:
    """(states [T+1, D], the episode's odom, actions and clearance as tensors) per episode file, one file in
    memory at a time."""
    for path in files:
        ep = load_episode(path, model.cfg.image_size)
        states = encode_frames(model, torch.from_numpy(ep["images"]), torch.from_numpy(proprio_from_odom(ep["odom"])))
        yield states, {k: torch.from_numpy(ep[k]) for k in ("odom", "actions", "clearance")}


Fit = Callable[[WorldModel, list[Path], int, int], tuple[torch.nn.Module, dict[str, float]]]


def fit_and_save(argv: list[str] | None, prog: str, description: str, default_steps: int, fit: Fit,
                 part: PartFile) -> tuple[dict[str, float], argparse.Namespace, float] | None:
    """The command line of a part fitted on a frozen world model (`ojepa critic`, `ojepa locator`): --model,
    --data, --out, --steps, --seed; fit(model, files, steps, seed), then save with the figures as metadata.
    (metrics, arguments, seconds), or None once an unusable input was reported on stderr."""
    parser = argparse.ArgumentParser(prog=prog, description=description)
    add_input_args(parser, f"{part.what} file to write (the actor looks beside the model: world_model{part.suffix})")
    parser.add_argument("--steps", type=int, default=default_steps)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)
    if args.steps < 1:
        parser.error("--steps must be >= 1")
    start = time.perf_counter()
    try:
        model, files = open_inputs(args)
        module, metrics = fit(model, files, args.steps, args.seed)
    except INPUT_ERRORS as err:
        print(f"{prog}: {err}", file=sys.stderr)
        return None
    part.save(module, args.out, {"model": str(args.model), "steps": args.steps, "seed": args.seed,
                                 **{k: round(float(v), 4) for k, v in metrics.items()}})
    return metrics, args, time.perf_counter() - start
