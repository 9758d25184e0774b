"""The node graph, described once: `launch/agent.launch.py` and `ojepa agent` both build from here.

`launch_plan` turns the launch arguments into the processes to start, in plain Python, so the launch file
only maps it onto launch_ros actions and the plan is tested where the launch packages are not installed.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from typing import Any, Sequence

SIM_CHOICES = ("rooms", "gym", "none")  # what `ojepa agent --sim` runs itself
LAUNCH_SIMS = SIM_CHOICES + ("gazebo",)  # `ros2 launch` also starts Gazebo (ros_gz_sim) with the generated world
LOG_LEVELS = ("debug", "info", "warn", "error", "fatal")
# name: (default, description), in the order `ros2 launch ... --show-args` lists them.
LAUNCH_ARGUMENTS: dict[str, tuple[str, str]] = {
    "sim": ("rooms", "simulator: rooms | gym (embedded) | gazebo (gz sim with the rooms_layout world, through "
                     "ros_gz_bridge) | none (a real robot on the same topics)"),
    "use_sim_time": ("auto", "true | false | auto (true when an embedded simulator runs: its /clock stamps "
                             "every sensor message)"),
    "namespace": ("", "namespace of every node and so of every topic, e.g. robot1 (empty: none)"),
    "params_file": ("", "parameters file (empty: config/agent.yaml of the package)"),
    "log_level": ("info", "log level of every node: " + " | ".join(LOG_LEVELS)),
    "task": ("", "task file in config/tasks/ to apply at start-up, e.g. demo"),
    "model_path": ("", "world model file (empty: models/world_model.pt of the package)"),
    "rviz": ("false", "true: also open RViz with rviz/agent.rviz (a warning, and no RViz, if rviz2 is not installed)"),
    "enable_stamped_cmd_vel": ("", "true: velocity commands are geometry_msgs/TwistStamped, false: Twist (empty: as "
                                   "params_file says; config/agent.yaml: false)"),
}
# The robot's own topics, each renamable by a launch argument <key>_topic (`ojepa agent --remap <name>:=<topic>`):
# name as the nodes use it -> what it is. A relative new name moves with the namespace.
ROBOT_TOPICS: dict[str, str] = {
    "cmd_vel": "velocity command to the base (the collision monitor's output)",
    "odom": "odometry (nav_msgs/Odometry)",
    "camera/image_raw": "camera image (sensor_msgs/Image)",
    "scan": "planar range scanner (sensor_msgs/LaserScan)",
    "collision": "bumper (std_msgs/Bool)",
}


def topic_argument(name: str) -> str:
    """The launch argument that renames robot topic `name`: odom -> odom_topic, camera/image_raw -> image_topic."""
    return ("image" if name == "camera/image_raw" else name) + "_topic"


LAUNCH_ARGUMENTS.update({topic_argument(name): ("", f"{text}: topic name (empty: {name})")
                         for name, text in ROBOT_TOPICS.items()})


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
    # Configures and activates the managed nodes below, in this order: the actor last, once its model loaded.
    NodeSpec("lifecycle_manager_node", "ojepa_ros.nodes.lifecycle_manager_node", "LifecycleManagerNode"),
)
# With sim:=gazebo: Gazebo's touches (ros_gz_bridge) as the bumper level sim_node publishes on `collision`.
BUMPER = NodeSpec("bumper_node", "ojepa_ros.nodes.bumper_node", "BumperNode")
ALL_NODES = (SIM, BUMPER, *AGENT)  # every node executable of the package
MODEL_USERS = ("perception_node", "world_model_node", "cost_node", "actor_node")
MANAGED = ("sim_node", "perception_node", "world_model_node", "cost_node", "memory_node", "actor_node")
# The nodes that send or read velocity commands (cmd_vel, cmd_vel_raw): each declares enable_stamped_cmd_vel.
VELOCITY_USERS = ("sim_node", "world_model_node", "actor_node", "memory_node", "collision_monitor_node")
STAMPED = "enable_stamped_cmd_vel"


def nodes(sim: str) -> list[NodeSpec]:
    """The nodes to start: the six agent modules, the navigator (NavigateToPose), the collision monitor and the
    lifecycle manager, plus the embedded simulator with rooms or gym, the bumper node with gazebo."""
    if sim not in LAUNCH_SIMS:
        raise ValueError(f"sim must be one of {LAUNCH_SIMS}, got {sim!r}")
    return {"rooms": [SIM], "gym": [SIM], "gazebo": [BUMPER]}.get(sim, []) + list(AGENT)


def overrides(sim: str, model_path: str = "", task: str = "", use_sim_time: bool | None = None,
              stamped_cmd_vel: bool | None = None) -> dict[str, dict[str, Any]]:
    """Per-node parameters that the launch arguments change on top of config/agent.yaml (None: left as it says)."""
    out: dict[str, dict[str, Any]] = {}
    if use_sim_time is not None:
        out.update({spec.name: {"use_sim_time": use_sim_time} for spec in nodes(sim)})
    if stamped_cmd_vel is not None:
        for spec in nodes(sim):
            if spec.name in VELOCITY_USERS:
                out.setdefault(spec.name, {})[STAMPED] = stamped_cmd_vel
    if SIM not in nodes(sim):  # none, gazebo: no embedded simulator to bring up
        out.setdefault("lifecycle_manager_node", {})["node_names"] = [n for n in MANAGED if n != SIM.name]
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
    """A launch argument's true/false (also 1/0, yes/no, on/off); LaunchError naming it otherwise."""
    text = value.strip().lower()
    if text in ("true", "1", "yes", "on"):
        return True
    if text in ("false", "0", "no", "off"):
        return False
    raise LaunchError(f"{name}:={value!r}: expected true or false")


def use_sim_time(sim: str, value: str) -> bool:
    """auto: sim time exactly when a simulator runs (it is the clock and stamps with it)."""
    return sim != "none" if value.strip().lower() == "auto" else parse_bool("use_sim_time", value)


def valid_name(name: str) -> bool:
    """Whether a ROS namespace or topic name, without its leading /, is one ROS accepts: parts separated by /, each
    starting with a letter or _ and holding only letters, digits and _."""
    return all(part and (part[0].isalpha() or part[0] == "_") and all(c.isalnum() or c == "_" for c in part)
               for part in name.split("/"))


def normalise_namespace(value: str) -> str:
    """'' or an absolute namespace ('/robot1'); refuses what ROS would refuse, with the reason."""
    ns = value.strip().strip("/")
    if not ns:
        return ""
    if not valid_name(ns):
        raise LaunchError(f"namespace:={value!r}: each part must start with a letter or _ and hold only "
                          "letters, digits and _")
    return "/" + ns


def ros_arguments(namespace: str = "", log_level: str = "info",
                  remaps: Sequence[tuple[str, str]] = ()) -> list[str]:
    """Arguments for after --ros-args that every node of the graph gets (the runner passes them globally; a node's
    own remappings come before them, and the first rule that matches wins, so the actor's cmd_vel stays
    cmd_vel_raw)."""
    if log_level.lower() not in LOG_LEVELS:
        raise LaunchError(f"log_level:={log_level!r}: one of {', '.join(LOG_LEVELS)}")
    out = ["--log-level", log_level.lower()]
    ns = normalise_namespace(namespace)
    return out + (["-r", f"__ns:={ns}"] if ns else []) + [a for src, dst in remaps for a in ("-r", f"{src}:={dst}")]


def clock_remaps(sim: str) -> list[tuple[str, str]]:
    """/clock made relative where the graph runs its own simulator, so that each agent of a namespaced pair runs
    on its own simulator's clock (/robot1/clock), not on both (in no namespace it stays /clock). An external clock
    (Gazebo's bridge, a bag) is the one /clock of the whole domain, as ROS has it."""
    return [("/clock", "clock")] if SIM in nodes(sim) else []


def topic_remap(name: str, topic: str, said_as: str) -> tuple[str, str]:
    """(name, topic): robot topic `name` renamed, `said_as` naming the argument in the error; LaunchError for a
    name that is no robot topic or a topic ROS would refuse."""
    if name not in ROBOT_TOPICS:
        raise LaunchError(f"{said_as}: {name!r} is no robot topic; one of {', '.join(ROBOT_TOPICS)}")
    if not valid_name(topic.strip().removeprefix("/")):
        raise LaunchError(f"{said_as}: {topic!r} is no topic name (parts of letters, digits and _, separated by /, "
                          "each starting with a letter or _)")
    return name, topic.strip()


def rviz_available() -> bool:
    """Whether `ros2 launch` can start rviz2: it looks for <prefix of package rviz2>/lib/rviz2/rviz2."""
    from ament_index_python.packages import PackageNotFoundError, get_package_prefix

    try:
        prefix = get_package_prefix("rviz2")
    except (PackageNotFoundError, ValueError, OSError):  # OSError: no ament prefix at all (AMENT_PREFIX_PATH unset)
        return False
    return os.access(os.path.join(prefix, "lib", "rviz2", "rviz2"), os.X_OK)


def gazebo_available() -> bool:
    """Whether `ros2 launch` can start Gazebo, the bridge and the robot's fixed frames: ros_gz_sim's
    gz_sim.launch.py, ros_gz_bridge's parameter_bridge and tf2_ros's static_transform_publisher in the ament index."""
    from ament_index_python.packages import PackageNotFoundError, get_package_prefix, get_package_share_directory

    try:
        launch = os.path.join(get_package_share_directory("ros_gz_sim"), "launch", "gz_sim.launch.py")
        programs = [os.path.join(get_package_prefix(package), "lib", package, program)
                    for package, program in (("ros_gz_bridge", "parameter_bridge"),
                                             ("tf2_ros", "static_transform_publisher"))]
    except (PackageNotFoundError, ValueError, OSError):
        return False
    return os.path.isfile(launch) and all(os.access(program, os.X_OK) for program in programs)


def static_frame_publishers(sim_params: dict, namespace: str, ros_args: list[str], sim_time: bool) -> list[Process]:
    """tf2_ros static_transform_publisher processes for the fixed frames sim_node publishes on `tf_static` (where
    Gazebo's robot mounts its camera and scanner), with the frame ids of sim_node's parameters."""
    from ojepa_ros.sim.gazebo_world import RobotSettings
    from ojepa_ros.sim.rooms_world import static_frames

    config = RobotSettings.from_params(sim_params).env_config()
    out = []
    for parent, child, xyz, xyzw in static_frames(config.robot_radius, config.scan_height):
        numbers = [arg for flag, value in zip(("--x", "--y", "--z", "--qx", "--qy", "--qz", "--qw"), (*xyz, *xyzw))
                   for arg in (flag, repr(float(value)))]
        out.append(Process("tf2_ros", "static_transform_publisher", f"static_tf_{child}", namespace,
                           [{"use_sim_time": sim_time}], list(ros_args),
                           numbers + ["--frame-id", sim_params[parent], "--child-frame-id", sim_params[child]],
                           [("/tf_static", "tf_static")]))  # relative, as sim_node's, so a namespace moves it
    return out


def gazebo_world_file(sim_params: dict) -> str:
    """Write the SDF of sim_node's `rooms_layout` with its robot into $ROS_HOME/ojepa/gazebo/ (ROS_HOME defaults
    to ~/.ros) and return its path."""
    from ojepa_ros.sim.gazebo_world import RobotSettings, build_sdf
    from ojepa_ros.sim.world_family import world

    name = sim_params.get("rooms_layout", "four_rooms")
    try:
        text = build_sdf(world(name), RobotSettings.from_params(sim_params))
    except (KeyError, ValueError) as error:
        raise LaunchError(f"sim:=gazebo: the params_file's sim_node section: {error}") from error
    path = os.path.join(_gazebo_folder(), f"{name}.sdf")
    with open(path, "w") as handle:
        handle.write(text)
    return path


def _gazebo_folder() -> str:
    """$ROS_HOME/ojepa/gazebo (ROS_HOME defaults to ~/.ros), created: where sim:=gazebo writes its files."""
    from ojepa_ros.paths import ros_home

    folder = os.path.join(ros_home(), "ojepa", "gazebo")
    os.makedirs(folder, exist_ok=True)
    return folder


def bridge_config(share: str, stamped: bool) -> str:
    """The ros_gz_bridge configuration: config/gz_bridge.yaml as shipped (cmd_vel as geometry_msgs/Twist), or, for
    stamped commands, a copy in $ROS_HOME/ojepa/gazebo/ whose cmd_vel is geometry_msgs/TwistStamped (the bridge
    maps both to gz.msgs.Twist)."""
    shipped = os.path.join(share, "config", "gz_bridge.yaml")
    if not stamped:
        return shipped
    import yaml

    with open(shipped) as handle:
        entries = yaml.safe_load(handle)
    for entry in entries:
        if entry.get("ros_topic_name") == "cmd_vel":
            entry["ros_type_name"] = "geometry_msgs/msg/TwistStamped"
    path = os.path.join(_gazebo_folder(), "gz_bridge_stamped.yaml")
    with open(path, "w") as handle:
        yaml.safe_dump(entries, handle, sort_keys=False)
    return path


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


@dataclass(frozen=True)
class Include:
    """A launch file of another package to include: a launch IncludeLaunchDescription's fields."""

    package: str
    launch_file: str  # in the package's share/<package>/launch/
    arguments: dict[str, str] = field(default_factory=dict)


def gazebo(sim_params: dict, share: str, namespace: str, ros_args: list[str],
           sim_time: bool, stamped: bool = False, remaps: Sequence[tuple[str, str]] = ()) -> list[Process | Include]:
    """What sim:=gazebo starts in sim_node's place: gz sim with the generated world, the bridge (cmd_vel of the type
    the collision monitor sends; the robot topics renamed as the agent's), the fixed frames."""
    world_file = gazebo_world_file(sim_params)
    bridge = Process("ros_gz_bridge", "parameter_bridge", "gz_bridge", namespace,
                     [{"config_file": bridge_config(share, stamped), "use_sim_time": sim_time}],
                     list(ros_args), remappings=list(remaps))
    return [Include("ros_gz_sim", "gz_sim.launch.py", {"gz_args": f"-r {world_file}", "on_exit_shutdown": "true"}),
            bridge, *static_frame_publishers(sim_params, namespace, ros_args, sim_time)]


def launch_plan(values: dict[str, str], share: str, rviz_found: bool | None = None,
                gazebo_found: bool | None = None) -> tuple[list[Process | Include], list[str]]:
    """The processes (and included launch files) `ros2 launch ojepa_ros agent.launch.py` starts for these argument
    values, and the warnings to print. Every value is checked before anything starts: a bad one raises LaunchError
    and nothing runs.

    `share` is the package's share directory; `rviz_found` and `gazebo_found` (default: look them up) say whether
    rviz2, and ros_gz_sim with ros_gz_bridge, exist. sim:=gazebo writes the world file it starts Gazebo with.
    """
    unknown = set(values) - set(LAUNCH_ARGUMENTS)
    if unknown:
        raise LaunchError(f"unknown launch arguments {sorted(unknown)}; known: {list(LAUNCH_ARGUMENTS)}")
    v = {name: str(values.get(name, default)) for name, (default, _) in LAUNCH_ARGUMENTS.items()}
    sim = v["sim"]
    if sim not in LAUNCH_SIMS:
        raise LaunchError(f"sim:={sim!r}: one of {', '.join(LAUNCH_SIMS)}")
    if sim == "gazebo" and not (gazebo_found if gazebo_found is not None else gazebo_available()):
        raise LaunchError("sim:=gazebo but ros_gz_sim, ros_gz_bridge or tf2_ros is not installed (not in the ament "
                          "index); on a distro: apt install ros-$ROS_DISTRO-ros-gz ros-$ROS_DISTRO-tf2-ros")
    sim_time = use_sim_time(sim, v["use_sim_time"])
    renamed = {name: v[topic_argument(name)] for name in ROBOT_TOPICS if v[topic_argument(name)].strip()}
    remaps = [topic_remap(name, topic, f"{topic_argument(name)}:={topic!r}") for name, topic in renamed.items()]
    remaps += clock_remaps(sim)
    namespace = normalise_namespace(v["namespace"])
    ros_args = ros_arguments("", v["log_level"])  # the namespace goes into the Node action itself
    want_rviz = parse_bool("rviz", v["rviz"])
    stamped = parse_bool(STAMPED, v[STAMPED]) if v[STAMPED].strip() else None
    params_file = v["params_file"] or os.path.join(share, "config", "agent.yaml")
    if not os.path.isfile(params_file):
        raise LaunchError(f"params_file:={params_file!r}: no such file")
    doc = None
    if namespace or sim == "gazebo":  # a file's `node:` sections would not reach /ns/node: hand each its values
        import yaml

        with open(params_file) as handle:
            doc = yaml.safe_load(handle)
    extra = overrides(sim, v["model_path"], v["task"], use_sim_time=sim_time, stamped_cmd_vel=stamped)
    processes = []
    if sim == "gazebo":  # the bridge takes what the collision monitor sends
        bridge_stamped = stamped if stamped is not None else \
            bool(node_parameters(doc, "collision_monitor_node").get(STAMPED, False))
        processes = gazebo(node_parameters(doc, "sim_node"), share, namespace, ros_args, sim_time, bridge_stamped,
                           remaps)
    # A node's own remappings first: the first rule that matches wins (the actor's cmd_vel stays cmd_vel_raw).
    processes += [Process("ojepa_ros", spec.name, spec.name, namespace,
                          [params_file if not namespace else node_parameters(doc, spec.name), extra.get(spec.name, {})],
                          list(ros_args), remappings=[*spec.remaps, *remaps])
                  for spec in nodes(sim)]
    warnings = []
    if want_rviz:
        if rviz_found if rviz_found is not None else rviz_available():
            # Shows the plan, the candidates (published only while RViz subscribes), the goal, odometry, camera.
            processes.append(Process("rviz2", "rviz2", "rviz2", namespace, [{"use_sim_time": sim_time}],
                                     list(ros_args), ["-d", os.path.join(share, "rviz", "agent.rviz")],
                                     clock_remaps(sim)))
        else:
            warnings.append("rviz:=true but rviz2 is not installed (not in the ament index); starting the agent "
                            "without it (on a distro: apt install ros-$ROS_DISTRO-rviz2)")
    return processes, warnings
