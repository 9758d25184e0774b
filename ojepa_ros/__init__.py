"""ojepa_ros: an Objective-Driven (JEPA world model + MPC) agent as ROS 2 nodes."""

import os

# OpenMP threads that spin while waiting starve the other nodes and the simulator on a shared CPU: one MPC
# step measured ~2 s instead of ~60 ms with 2 torch threads on a busy 2-core machine. Set before torch loads.
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

__version__ = "0.1.0"
