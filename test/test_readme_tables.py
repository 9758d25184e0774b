"""The README's node tables name exactly the parameters each node declares, and the topics in them are relative
(so a namespace moves them; /clock alone is absolute, as ROS 2's time source reads it)."""

from __future__ import annotations

import fnmatch
import importlib
import re
from pathlib import Path

import pytest

from ojepa_ros import graph

README = (Path(__file__).resolve().parents[1] / "README.md").read_text()


def _table(node: str) -> list[list[str]]:
    start = README.index(f"### {node}")
    end = README.find("\n### ", start + 4)
    rows = [line.split("|")[1:-1] for line in README[start:end].splitlines() if line.startswith("| ")]
    return [[cell.strip() for cell in row] for row in rows]


@pytest.mark.parametrize("spec", [graph.SIM, *graph.AGENT], ids=lambda s: s.name)
def test_readme_lists_every_declared_parameter_and_no_other(spec):
    declared = set(importlib.import_module(spec.module).PARAMS)
    listed = {name for kind, names, *_ in _table(spec.name) if kind == "param" for name in re.findall(r"`([^`]+)`", names)}
    patterns = {name for name in listed if "*" in name}
    covered = {name for name in declared if name in listed or any(fnmatch.fnmatch(name, p) for p in patterns)}
    assert covered == declared, f"not in the README: {sorted(declared - covered)}"
    assert listed - patterns <= declared, f"in the README but not declared: {sorted(listed - patterns - declared)}"


@pytest.mark.parametrize("spec", [graph.SIM, *graph.AGENT], ids=lambda s: s.name)
def test_readme_topics_are_relative(spec):
    names = [name for kind, names, *_ in _table(spec.name) if kind in ("pub", "sub", "srv", "client")
             for name in re.findall(r"`([^`]+)`", names)]
    assert names and [n for n in names if n.startswith("/") and n != "/clock"] == []
