"""Declaring and validating ROS parameters: a bad value is refused with a reason, never half-applied."""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any, Callable

from rcl_interfaces.msg import ParameterDescriptor, SetParametersResult
from rclpy.exceptions import InvalidParameterTypeException, InvalidParameterValueException
from rclpy.node import Node
from rclpy.parameter import Parameter


@dataclass(frozen=True)
class Param:
    """A parameter: default value (its type is the parameter's type), what it means, and an optional check."""

    default: Any
    description: str
    check: Callable[[Any], bool] | None = None
    requirement: str = ""


def positive(default: float, description: str) -> Param:
    return Param(default, description, lambda v: math.isfinite(v) and v > 0, "must be a finite number > 0")


def non_negative(default: float, description: str) -> Param:
    return Param(default, description, lambda v: math.isfinite(v) and v >= 0, "must be a finite number >= 0")


def finite(default: float, description: str) -> Param:
    return Param(default, description, math.isfinite, "must be finite (not NaN or inf)")


def one_of(default: str, description: str, choices: tuple[str, ...]) -> Param:
    return Param(default, description, lambda v: v in choices, f"must be one of {choices}")


def _problem(spec: Param, value: Any) -> str | None:
    if spec.check is not None and not spec.check(value):
        return spec.requirement
    return None


def declare(node: Node, specs: dict[str, Param],
            on_change: Callable[[set[str]], None] | None = None) -> dict[str, Any]:
    """Declare every parameter; a bad start-up value is logged and replaced by the default.

    Returns a dict of current values that stays up to date as parameters are set at run time;
    `on_change` is told which names changed, after they are accepted.
    """
    live: dict[str, Any] = {}

    def on_set(params: list[Parameter]) -> SetParametersResult:
        for p in params:
            spec = specs.get(p.name)
            if spec is None:
                continue
            problem = _problem(spec, p.value)
            if problem:
                return SetParametersResult(successful=False, reason=f"{p.name}={p.value!r} refused: {problem}")
        return SetParametersResult(successful=True)

    def after_set(params: list[Parameter]) -> None:
        changed = {p.name for p in params if p.name in specs}
        live.update({p.name: p.value for p in params if p.name in specs})
        if changed and on_change is not None:
            on_change(changed)

    node.add_on_set_parameters_callback(on_set)
    for name, spec in specs.items():
        descriptor = ParameterDescriptor(description=spec.description)
        try:
            node.declare_parameter(name, spec.default, descriptor)
        except (InvalidParameterValueException, InvalidParameterTypeException) as err:
            node.get_logger().error(f"parameter {name}: {err}; using the default {spec.default!r}")
            node.declare_parameter(name, spec.default, descriptor, ignore_override=True)
        live[name] = node.get_parameter(name).value
    node.add_post_set_parameters_callback(after_set)
    return live
