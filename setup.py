"""ament_python build: colcon on a ROS 2 distro, or plain pip into a venv (an ament prefix)."""

import os
from glob import glob

from setuptools import find_packages, setup

PACKAGE = "ojepa_ros"
NODES = ["sim_node", "perception_node", "world_model_node", "cost_node", "actor_node",
         "configurator_node", "navigator_node", "memory_node", "collision_monitor_node", "bumper_node",
         "lifecycle_manager_node"]

setup(
    name=PACKAGE,
    version="0.1.0",
    packages=find_packages(include=[PACKAGE, f"{PACKAGE}.*"]),
    data_files=[
        ("share/ament_index/resource_index/packages", [f"resource/{PACKAGE}"]),
        (f"share/{PACKAGE}", ["package.xml"]),
        (f"share/{PACKAGE}/launch", glob("launch/*.launch.py")),
        (f"share/{PACKAGE}/config", glob("config/*.yaml")),
        (f"share/{PACKAGE}/config/tasks", glob("config/tasks/*.yaml")),
        (f"share/{PACKAGE}/models", [p for p in glob("models/*") if os.path.isfile(p)]),
        (f"share/{PACKAGE}/models/world_model.onnx", glob("models/world_model.onnx/*")),
        (f"share/{PACKAGE}/rviz", glob("rviz/*.rviz")),
    ],
    install_requires=["setuptools"],
    zip_safe=True,
    maintainer="ojepa_ros developers",
    maintainer_email="ojepa@example.org",
    description="Objective-Driven agent: JEPA world model + MPC actor as ROS 2 nodes.",
    license="Apache-2.0",
    entry_points={
        "console_scripts": [f"{n} = {PACKAGE}.nodes.entry:{n}" for n in NODES]
        + ["ojepa = ojepa_ros.cli:main"],
    },
)
