"""The node graph, described once: `launch/agent.launch.py` and `ojepa agent` both build from here.

`launch_plan` turns the launch arguments into the processes to start, in plain Python, so the launch file
only maps it onto launch_ros actions and the plan is tested where the launch packages are not installed.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from typing import Any

SIM_CHOICES = ("rooms", "gym", "none")
LOG_LEVELS = ("debug", "info", "warn", "error", "fatal")
# name: (default, description), in the order `ros2 launch ... --show-args` lists them.
LAUNCH_ARGUMENTS: dict[str, tuple[str, str]] = {
    "sim": ("rooms", "embedded simulator: rooms | gym | none (Gazebo or a real robot on the same topics)"),
    "use_sim_time": ("auto", "true | false | auto (true when an embedded simulator runs: its /clock stamps "
                             "every sensor message)"),
    "namespace": ("", "namespace of every node and so of every topic, e.g. robot1 (empty: none)"),
    "params_file": ("", "parameters file (empty: config/agent.yaml of the package)"),
    "log_level": ("info", "log level of every node: " + " | ".join(LOG_LEVELS)),
    "task": ("", "task file in config/tasks/ to apply at start-up, e.g. demo"),
    "model_path": ("", "world model file (empty: models/world_model.pt of the package)"),
    "rviz": ("false", "true: also open RViz with rviz/agent.rviz (a warning, and no RViz, if rviz2 is not installed)"),
}


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
    NodeSpec("navigator_node", "ojepa_ros.nodes.navigator_node", "NavigatorNode"),
    NodeSpec("memory_node", "ojepa_ros.nodes.memory_node", "MemoryNode"),
    NodeSpec("collision_monitor_node", "ojepa_ros.nodes.collision_monitor_node", "CollisionMonitorNode"),
)
MODEL_USERS = ("perception_node", "world_model_node", "cost_node", "actor_node")


def nodes(sim: str) -> list[NodeSpec]:
    """The nodes to start: the six agent modules, the navigator (NavigateToPose) and the collision monitor, plus
    the embedded simulator unless sim is 'none'."""
    if sim not in SIM_CHOICES:
        raise ValueError(f"sim must be one of {SIM_CHOICES}, got {sim!r}")
    return ([] if sim == "none" else [SIM]) + list(AGENT)


def overrides(sim: str, model_path: str = "", task: str = "",
              use_sim_time: bool | None = None) -> dict[str, dict[str, Any]]:
    """Per-node parameters that the launch arguments change on top of config/agent.yaml."""
    out: dict[str, dict[str, Any]] = {}
    if use_sim_time is not None:
        out.update({spec.name: {"use_sim_time": use_sim_time} for spec in nodes(sim)})
    if sim == "gym":
        out.setdefault("sim_node", {})["world"] = "gym"
        out.setdefault("actor_node", {})["effector"] = "float64_array"
    if model_path:
        for name in MODEL_USERS:
            out.setdefault(name, {})["model_path"] = model_path
    if task:
        out.setdefault("configurator_node", {})["task"] = task
    return out


class LaunchError(ValueError):
    """A launch argument with a value that cannot be used; the text names it and what is allowed."""


@dataclass(frozen=True)
class Process:
    """One process to start: a launch_ros Node's fields."""

    package: str
    executable: str
    name: str
    namespace: str = ""
    parameters: list = field(default_factory=list)  # file paths and {name: value} dicts, in order
    ros_arguments: list[str] = field(default_factory=list)
    arguments: list[str] = field(default_factory=list)
    remappings: list[tuple[str, str]] = field(default_factory=list)


def parse_bool(name: str, value: str) -> bool:
    text = value.strip().lower()
    if text in ("true", "1", "yes", "on"):
        return True
    if text in ("false", "0", "no", "off"):
        return False
    raise LaunchError(f"{name}:={value!r}: expected true or false")


def use_sim_time(sim: str, value: str) -> bool:
    """auto: sim time exactly when an embedded simulator runs (it is the clock and stamps with it)."""
    return sim != "none" if value.strip().lower() == "auto" else parse_bool("use_sim_time", value)


def normalise_namespace(value: str) -> str:
    """'' or an absolute namespace ('/robot1'); refuses what ROS would refuse, with the reason."""
    ns = value.strip().strip("/")
    if not ns:
        return ""
    for part in ns.split("/"):
        if not part or not (part[0].isalpha() or part[0] == "_") or not all(c.isalnum() or c == "_" for c in part):
            raise LaunchError(f"namespace:={value!r}: each part must start with a letter or _ and hold only "
                              "letters, digits and _")
    return "/" + ns


def ros_arguments(namespace: str = "", log_level: str = "info") -> list[str]:
    """Arguments for after --ros-args that every node of the graph gets (the runner passes them globally)."""
    if log_level.lower() not in LOG_LEVELS:
        raise LaunchError(f"log_level:={log_level!r}: one of {', '.join(LOG_LEVELS)}")
    out = ["--log-level", log_level.lower()]
    ns = normalise_namespace(namespace)
    return out + (["-r", f"__ns:={ns}"] if ns else [])


def rviz_available() -> bool:
    """Whether `ros2 launch` can start rviz2: it looks for <prefix of package rviz2>/lib/rviz2/rviz2."""
    from ament_index_python.packages import PackageNotFoundError, get_package_prefix

    try:
        prefix = get_package_prefix("rviz2")
    except (PackageNotFoundError, ValueError, OSError):  # OSError: no ament prefix at all (AMENT_PREFIX_PATH unset)
        return False
    return os.access(os.path.join(prefix, "lib", "rviz2", "rviz2"), os.X_OK)


def node_parameters(doc: dict, name: str) -> dict[str, Any]:
    """The parameters a ROS 2 parameters file (loaded YAML) gives node `name` in any namespace: its `/**`,
    `/**/name`, `name` and `/name` sections, later ones winning."""
    out: dict[str, Any] = {}
    for key in ("/**", f"/**/{name}", name, f"/{name}"):
        out.update(((doc or {}).get(key) or {}).get("ros__parameters") or {})
    return out


def anywhere(doc: dict) -> dict:
    """A parameters file whose `node:` sections apply in any namespace (`/**/node:`); rcl matches a plain
    `node:` key only to the node without a namespace."""
    return {key if key.startswith("/") else f"/**/{key}": section for key, section in (doc or {}).items()}


def launch_plan(values: dict[str, str], share: str, rviz_found: bool | None = None) -> tuple[list[Process], list[str]]:
    """The processes `ros2 launch ojepa_ros agent.launch.py` starts for these argument values, and the warnings
    to print. Every value is checked before anything starts: a bad one raises LaunchError and nothing runs.

    `share` is the package's share directory; `rviz_found` (default: look it up) says whether rviz2 exists.
    """
    unknown = set(values) - set(LAUNCH_ARGUMENTS)
    if unknown:
        raise LaunchError(f"unknown launch arguments {sorted(unknown)}; known: {list(LAUNCH_ARGUMENTS)}")
    v = {name: str(values.get(name, default)) for name, (default, _) in LAUNCH_ARGUMENTS.items()}
    sim = v["sim"]
    if sim not in SIM_CHOICES:
        raise LaunchError(f"sim:={sim!r}: one of {', '.join(SIM_CHOICES)}")
    sim_time = use_sim_time(sim, v["use_sim_time"])
    namespace = normalise_namespace(v["namespace"])
    ros_args = ros_arguments("", v["log_level"])  # the namespace goes into the Node action itself
    want_rviz = parse_bool("rviz", v["rviz"])
    params_file = v["params_file"] or os.path.join(share, "config", "agent.yaml")
    if not os.path.isfile(params_file):
        raise LaunchError(f"params_file:={params_file!r}: no such file")
    doc = None
    if namespace:  # the file's `node:` sections would not reach /ns/node: hand each node its own values
        import yaml

        with open(params_file) as handle:
            doc = yaml.safe_load(handle)
    extra = overrides(sim, v["model_path"], v["task"], use_sim_time=sim_time)
    processes = [Process("ojepa_ros", spec.name, spec.name, namespace,
                         [params_file if doc is None else node_parameters(doc, spec.name), extra.get(spec.name, {})],
                         list(ros_args), remappings=list(getattr(spec, "remaps", ())))
                 for spec in nodes(sim)]
    warnings = []
    if want_rviz:
        if rviz_found if rviz_found is not None else rviz_available():
            # Shows the plan, the candidates (published only while RViz subscribes), the goal, odometry, camera.
            processes.append(Process("rviz2", "rviz2", "rviz2", namespace, [{"use_sim_time": sim_time}],
                                     list(ros_args), ["-d", os.path.join(share, "rviz", "agent.rviz")]))
        else:
            warnings.append("rviz:=true but rviz2 is not installed (not in the ament index); starting the agent "
                            "without it (on a distro: apt install ros-$ROS_DISTRO-rviz2)")
    return processes, warnings
