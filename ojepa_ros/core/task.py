"""A task file (config/tasks/*.yaml): goal (a pose, or an image file of what the camera should see there), task
cost weights and planner settings, validated.

A task may choose how to plan (planner, risk, hierarchy, Mode-1, budgets) and weigh its objective, but the
guardrail floors and the velocity limits are the actor's: no key here reaches them."""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from ojepa_ros.core.mpc import CHECKS

PLANNER_KEYS = {"horizon": int, "num_samples": int, "iterations": int, "temperature": float,
                "noise_sigma_linear": float, "noise_sigma_angular": float, "latent_draws": int,
                "subgoal_lookahead": float, "planner": str, "risk": str, "mode1": str, "hierarchical": bool}


class TaskError(ValueError):
    """A task file that cannot be applied; the message names the file and the problem."""


@dataclass(frozen=True)
class Task:
    goal: tuple[float, float] | None = None
    goal_image: Path | None = None  # an image file; relative paths are from the task file's folder
    weights: dict[str, float] = field(default_factory=dict)
    planner: dict[str, Any] = field(default_factory=dict)


def _number(path: Path, key: str, value: Any) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
        raise TaskError(f"{path}: {key} must be a finite number, got {value!r}")
    return float(value)


def load_task(path: Path) -> Task:
    """Parse and validate a task file; every problem raises TaskError naming the file."""
    if not path.is_file():
        raise TaskError(f"task file {path} does not exist")
    try:
        raw = yaml.safe_load(path.read_text()) or {}
    except yaml.YAMLError as err:
        raise TaskError(f"{path}: not valid YAML ({err.__class__.__name__})") from err
    if not isinstance(raw, dict):
        raise TaskError(f"{path}: expected a mapping with goal/weights/planner")
    unknown = set(raw) - {"goal", "goal_image", "weights", "planner"}
    if unknown:
        raise TaskError(f"{path}: unknown keys {sorted(unknown)}")
    if "goal" in raw and "goal_image" in raw:
        raise TaskError(f"{path}: give goal or goal_image, not both")
    goal_image = None
    if "goal_image" in raw:
        if not isinstance(raw["goal_image"], str):
            raise TaskError(f"{path}: goal_image must be an image file name, got {raw['goal_image']!r}")
        goal_image = (path.parent / raw["goal_image"]).resolve()
        if not goal_image.is_file():
            raise TaskError(f"{path}: goal_image {goal_image} does not exist")
    goal = None
    if "goal" in raw:
        g = raw["goal"]
        if not isinstance(g, dict) or set(g) != {"x", "y"}:
            raise TaskError(f"{path}: goal must be {{x: ..., y: ...}}")
        goal = (_number(path, "goal.x", g["x"]), _number(path, "goal.y", g["y"]))
    weights = {k: _number(path, f"weights.{k}", v) for k, v in (raw.get("weights") or {}).items()}
    if any(v < 0 for v in weights.values()):
        raise TaskError(f"{path}: weights must be >= 0")
    planner: dict[str, Any] = {}
    for key, value in (raw.get("planner") or {}).items():
        if key not in PLANNER_KEYS:
            raise TaskError(f"{path}: unknown planner setting {key!r}; known: {sorted(PLANNER_KEYS)}")
        kind = PLANNER_KEYS[key]
        if kind in (str, bool):
            check, requirement = CHECKS[key]
            if not isinstance(value, kind) or not check(value):
                raise TaskError(f"{path}: planner.{key} {requirement}, got {value!r}")
            planner[key] = value
        else:
            planner[key] = kind(_number(path, f"planner.{key}", value))
    return Task(goal=goal, goal_image=goal_image, weights=weights, planner=planner)
