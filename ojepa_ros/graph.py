"""The node graph, described once: `launch/agent.launch.py` and `ojepa agent` both build from here."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

SIM_CHOICES = ("rooms", "gym", "none")


@dataclass(frozen=True)
class NodeSpec:
    """One node: its name (also its console_scripts executable), the class that implements it, and its topic
    remappings (from, to), relative names so that a namespace moves them too."""

    name: str
    module: str
    cls: str
    remaps: tuple[tuple[str, str], ...] = ()

    def remap_args(self) -> list[str]:
        """The remappings as ROS command-line arguments (after --ros-args)."""
        return [arg for src, dst in self.remaps for arg in ("-r", f"{src}:={dst}")]


SIM = NodeSpec("sim_node", "ojepa_ros.nodes.sim_node", "SimNode")
AGENT = (
    NodeSpec("perception_node", "ojepa_ros.nodes.perception_node", "PerceptionNode"),
    NodeSpec("world_model_node", "ojepa_ros.nodes.world_model_node", "WorldModelNode"),
    NodeSpec("cost_node", "ojepa_ros.nodes.cost_node", "CostNode"),
    # The actor's commands go through the collision monitor, which alone publishes the base's cmd_vel.
    NodeSpec("actor_node", "ojepa_ros.nodes.actor_node", "ActorNode", remaps=(("cmd_vel", "cmd_vel_raw"),)),
    NodeSpec("configurator_node", "ojepa_ros.nodes.configurator_node", "ConfiguratorNode"),
    NodeSpec("memory_node", "ojepa_ros.nodes.memory_node", "MemoryNode"),
    NodeSpec("collision_monitor_node", "ojepa_ros.nodes.collision_monitor_node", "CollisionMonitorNode"),
)
MODEL_USERS = ("perception_node", "world_model_node", "cost_node", "actor_node")


def nodes(sim: str) -> list[NodeSpec]:
    """The nodes to start: the six agent modules and the collision monitor, plus the embedded simulator unless
    sim is 'none'."""
    if sim not in SIM_CHOICES:
        raise ValueError(f"sim must be one of {SIM_CHOICES}, got {sim!r}")
    return ([] if sim == "none" else [SIM]) + list(AGENT)


def overrides(sim: str, model_path: str = "", task: str = "") -> dict[str, dict[str, Any]]:
    """Per-node parameters that the launch arguments change on top of config/agent.yaml."""
    out: dict[str, dict[str, Any]] = {}
    if sim == "gym":
        out["sim_node"] = {"world": "gym"}
        out["actor_node"] = {"effector": "float64_array"}
    if model_path:
        for name in MODEL_USERS:
            out.setdefault(name, {})["model_path"] = model_path
    if task:
        out["configurator_node"] = {"task": task}
    return out
