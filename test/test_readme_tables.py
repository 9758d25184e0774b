"""The README's node tables name every parameter each node declares, and every topic it subscribes or
publishes (read from the node's source), so a new one cannot go undocumented."""

from __future__ import annotations

import importlib
import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
NODES = ("sim_node", "perception_node", "world_model_node", "cost_node", "actor_node", "configurator_node",
         "memory_node", "collision_monitor_node")


def section(name: str) -> str:
    text = (ROOT / "README.md").read_text()
    start = text.index(f"### {name}")
    end = text.find("\n### ", start + 1)
    return text[start:end if end > 0 else len(text)]


@pytest.mark.parametrize("name", NODES)
def test_every_declared_parameter_is_in_the_node_table(name):
    params = importlib.import_module(f"ojepa_ros.nodes.{name}").PARAMS
    documented = set(re.findall(r"`([a-z0-9_]+)`", section(name)))
    documented |= {f"weight_{t}" for t in re.findall(r"`weight_([a-z_*]+)`", section(name))}
    wildcard = "weight_*" in documented
    missing = [p for p in params if p not in documented and not (wildcard and p.startswith("weight_"))]
    assert not missing, f"{name}: parameters missing from the README table: {missing}"


@pytest.mark.parametrize("name", NODES)
def test_every_topic_in_the_source_is_in_the_node_table(name):
    source = (ROOT / "ojepa_ros" / "nodes" / f"{name}.py").read_text()
    topics = set(re.findall(r"create_(?:subscription|publisher)\(\s*\w+,\s*\"([^\"]+)\"", source))
    topics |= set(re.findall(r"^\s*\"(/[a-z_/]+)\": \w+,", source, flags=re.M))  # memory_node's RECORDED
    table = section(name)
    missing = [t for t in topics if f"`{t}`" not in table and f"`/{t}`" not in table
               and not (t.startswith("~/") and f"`{t}`" in table)]
    assert not missing, f"{name}: topics missing from the README table: {missing}"
