"""Embedded simulators (MuJoCo rooms world, Gymnasium adapter); ROS-free."""
