"""ojepa_ros: an Objective-Driven (JEPA world model + MPC) agent as ROS 2 nodes."""

__version__ = "0.1.0"
