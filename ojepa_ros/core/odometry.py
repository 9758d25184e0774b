"""Odometry as the world model's proprioception, in numpy: usable with or without torch in the process."""

from __future__ import annotations

import numpy as np


def proprio_from_odom(odom: np.ndarray) -> np.ndarray:
    """[..., 5] odometry (x, y, yaw, v, w) -> float32 [..., 6] (x, y, cos yaw, sin yaw, v, w): no yaw wrap-around."""
    x, y, yaw, v, w = np.moveaxis(np.asarray(odom, dtype=np.float64), -1, 0)
    return np.stack((x, y, np.cos(yaw), np.sin(yaw), v, w), axis=-1).astype(np.float32)
