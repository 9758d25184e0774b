"""Embedded simulators (MuJoCo rooms world, Gymnasium adapter); ROS-free.

MuJoCo picks its OpenGL backend when first imported: default to EGL (headless, no display needed)
here, before any module of this package imports it. An explicit MUJOCO_GL still wins.
"""

import os

os.environ.setdefault("MUJOCO_GL", "egl")
