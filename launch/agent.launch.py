"""Launch the ojepa_ros agent: `ros2 launch ojepa_ros agent.launch.py [sim:=rooms|gym|none] [task:=demo]
[model_path:=/path/world_model.pt] [config:=/path/agent.yaml] [rviz:=true]`.

The node list and the per-argument parameter changes come from ojepa_ros.graph, the same description
the pip-only runner `ojepa agent` uses.
"""

import os

from ament_index_python.packages import get_package_share_directory
from launch import LaunchDescription
from launch.actions import DeclareLaunchArgument, OpaqueFunction
from launch.conditions import IfCondition
from launch.substitutions import LaunchConfiguration
from launch_ros.actions import Node

from ojepa_ros.graph import nodes, overrides

SHARE = get_package_share_directory("ojepa_ros")


def _graph(context):
    sim = LaunchConfiguration("sim").perform(context)
    config = LaunchConfiguration("config").perform(context)
    extra = overrides(sim, LaunchConfiguration("model_path").perform(context),
                      LaunchConfiguration("task").perform(context))
    return [
        Node(package="ojepa_ros", executable=spec.name, name=spec.name, output="screen",
             parameters=[config, extra.get(spec.name, {})], remappings=list(spec.remaps),
             respawn=True, respawn_delay=0.5)  # as `ojepa agent --processes` (no retry bound in launch_ros)
        for spec in nodes(sim)
    ]


def generate_launch_description() -> LaunchDescription:
    return LaunchDescription([
        DeclareLaunchArgument("sim", default_value="rooms", description="rooms | gym | none (Gazebo or a robot)"),
        DeclareLaunchArgument("config", default_value=os.path.join(SHARE, "config", "agent.yaml")),
        DeclareLaunchArgument("model_path", default_value="", description="world model; empty: shipped model"),
        DeclareLaunchArgument("task", default_value="", description="task file in config/tasks/ to apply"),
        DeclareLaunchArgument("rviz", default_value="false", description="open RViz with rviz/agent.rviz"),
        OpaqueFunction(function=_graph),
        # Shows /ojepa/plan, /ojepa/candidates (published only while RViz subscribes), the goal, odometry, camera.
        Node(package="rviz2", executable="rviz2", name="rviz2", output="screen",
             arguments=["-d", os.path.join(SHARE, "rviz", "agent.rviz")],
             condition=IfCondition(LaunchConfiguration("rviz"))),
    ])
