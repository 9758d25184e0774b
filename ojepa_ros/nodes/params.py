"""Declaring and validating ROS parameters: a bad value is refused with a reason, never half-applied.

A parameter with `bounds` carries them as a ROS descriptor range (FloatingPointRange / IntegerRange), so
`ros2 param describe` shows them and rclpy refuses values outside on set and in the parameters file; the
check here refuses them too, with a reason. Settings that are valid one by one but not together are refused
by the node's `joint_check`, which sees the values as they would be after the change.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any, Callable

from rcl_interfaces.msg import FloatingPointRange, IntegerRange, ParameterDescriptor, SetParametersResult
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
    bounds: tuple[float, float] | None = None  # inclusive; shown as the descriptor's range
    read_only: bool = False  # set at start-up (the parameters file) only

    def descriptor(self) -> ParameterDescriptor:
        descriptor = ParameterDescriptor(description=self.description, read_only=self.read_only)
        if self.bounds is not None:
            lo, hi = self.bounds
            if isinstance(self.default, int) and not isinstance(self.default, bool):
                descriptor.integer_range = [IntegerRange(from_value=int(lo), to_value=int(hi), step=1)]
            else:
                descriptor.floating_point_range = [FloatingPointRange(from_value=float(lo), to_value=float(hi),
                                                                      step=0.0)]
        return descriptor


def ranged(default: float | int, lo: float, hi: float, description: str, read_only: bool = False) -> Param:
    """A number in [lo, hi] (an int parameter if the default is an int)."""
    kind = "an integer" if isinstance(default, int) else "a number"
    return Param(default, description, lambda v: math.isfinite(v) and lo <= v <= hi, f"must be {kind} in {lo:g}..{hi:g}",
                 bounds=(lo, hi), read_only=read_only)


def positive(default: float, description: str) -> Param:
    return Param(default, description, lambda v: math.isfinite(v) and v > 0, "must be a finite number > 0")


def non_negative(default: float, description: str) -> Param:
    return Param(default, description, lambda v: math.isfinite(v) and v >= 0, "must be a finite number >= 0")


def finite(default: float, description: str) -> Param:
    return Param(default, description, math.isfinite, "must be finite (not NaN or inf)")


def valid_bounds(v: Any) -> bool:
    """xmin, ymin, xmax, ymax: four finite numbers with xmin < xmax and ymin < ymax."""
    return len(v) == 4 and all(map(math.isfinite, v)) and v[0] < v[2] and v[1] < v[3]


def one_of(default: str, description: str, choices: tuple[str, ...]) -> Param:
    return Param(default, description, lambda v: v in choices, f"must be one of {choices}")


def _problem(spec: Param, value: Any) -> str | None:
    if spec.check is not None and not spec.check(value):
        return spec.requirement
    return None


def declare(node: Node, specs: dict[str, Param],
            on_change: Callable[[set[str]], None] | None = None,
            joint_check: Callable[[dict[str, Any]], str | None] | None = None) -> dict[str, Any]:
    """Declare every parameter; a bad start-up value is logged and replaced by the default.

    Returns a dict of current values that stays up to date as parameters are set at run time;
    `on_change` is told which names changed, after they are accepted. `joint_check(values)` names what is
    wrong with a combination (None: nothing); it runs on set, on the values the change would leave.
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
        if joint_check is not None and len(live) == len(specs):  # all declared: a run-time change
            problem = joint_check({**live, **{p.name: p.value for p in params if p.name in specs}})
            if problem:
                return SetParametersResult(successful=False, reason=f"refused: {problem}")
        return SetParametersResult(successful=True)

    def after_set(params: list[Parameter]) -> None:
        changed = {p.name for p in params if p.name in specs}
        live.update({p.name: p.value for p in params if p.name in specs})
        if changed and on_change is not None:
            on_change(changed)

    node.add_on_set_parameters_callback(on_set)
    for name, spec in specs.items():
        descriptor = spec.descriptor()
        try:
            node.declare_parameter(name, spec.default, descriptor)
        except (InvalidParameterValueException, InvalidParameterTypeException) as err:
            node.get_logger().error(f"parameter {name}: {err}; using the default {spec.default!r}")
            node.declare_parameter(name, spec.default, descriptor, ignore_override=True)
        live[name] = node.get_parameter(name).value
    node.add_post_set_parameters_callback(after_set)
    return live
