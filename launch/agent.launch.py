"""Launch the ojepa_ros agent: `ros2 launch ojepa_ros agent.launch.py [sim:=rooms|gym|gazebo|none] [task:=demo]
[use_sim_time:=auto|true|false] [namespace:=robot1] [params_file:=/path/agent.yaml] [log_level:=info]
[model_path:=/path/world_model.pt] [rviz:=true]
[enable_stamped_cmd_vel:=true|false] [odom_topic:=/wheel/odometry] [image_topic:=…] [scan_topic:=…]
[collision_topic:=…] [cmd_vel_topic:=…]` (`--show-args` lists them with their meaning).

What to start comes from ojepa_ros.graph.launch_plan, the description the pip-only runner `ojepa agent` also
uses; it checks every argument before anything starts, so a bad value (or rviz:=true without rviz2, which
only warns, or sim:=gazebo without ros_gz_sim) never leaves some nodes running.
"""

import os

from ament_index_python.packages import get_package_share_directory
from launch import LaunchDescription
from launch.actions import DeclareLaunchArgument, IncludeLaunchDescription, LogInfo, OpaqueFunction
from launch.launch_description_sources import PythonLaunchDescriptionSource
from launch.substitutions import LaunchConfiguration
from launch_ros.actions import Node

from ojepa_ros.graph import LAUNCH_ARGUMENTS, Include, launch_plan


def _action(p):
    """An included launch file (Gazebo) or a node, respawned as `ojepa agent --processes` does (no retry bound)."""
    if isinstance(p, Include):
        path = os.path.join(get_package_share_directory(p.package), "launch", p.launch_file)
        return IncludeLaunchDescription(PythonLaunchDescriptionSource(path), launch_arguments=p.arguments.items())
    return Node(package=p.package, executable=p.executable, name=p.name, namespace=p.namespace, output="screen",
                parameters=p.parameters, ros_arguments=p.ros_arguments, arguments=p.arguments,
                remappings=p.remappings, respawn=True, respawn_delay=0.5)


def _graph(context):
    values = {name: LaunchConfiguration(name).perform(context) for name in LAUNCH_ARGUMENTS}
    processes, warnings = launch_plan(values, get_package_share_directory("ojepa_ros"))
    return [LogInfo(msg=f"WARNING: {text}") for text in warnings] + [_action(p) for p in processes]


def generate_launch_description() -> LaunchDescription:
    return LaunchDescription(
        [DeclareLaunchArgument(name, default_value=default, description=text)
         for name, (default, text) in LAUNCH_ARGUMENTS.items()]
        + [OpaqueFunction(function=_graph)])
