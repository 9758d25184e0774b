"""The `model_path` parameter shared by every node that needs the world model.

Loading goes through core's process-wide cache, so nodes composed in one process share one engine.
A missing or corrupt file leaves the node running without a model (it then publishes nothing that
would move the robot) and logs one line naming the file.
"""

from __future__ import annotations

import torch
from rclpy.node import Node
from std_msgs.msg import Float32MultiArray

from ojepa_ros.core.model_io import ModelFileError, shared_world_model
from ojepa_ros.core.world_model import WorldModel
from ojepa_ros.nodes.convert import InputError, state_to_array
from ojepa_ros.nodes.params import Param
from ojepa_ros.paths import default_model

MODEL_PARAM = Param("", "world model checkpoint (.pt); empty: the shipped models/world_model.pt")


def load_model(node: Node, path: str) -> WorldModel | None:
    resolved = path or str(default_model())
    try:
        model = shared_world_model(resolved)
    except ModelFileError as err:
        node.get_logger().error(str(err))
        return None
    node.get_logger().info(f"world model loaded from {resolved}")
    return model


def state_for_model(node: Node, model: WorldModel | None, msg: Float32MultiArray) -> torch.Tensor | None:
    """The state embedding in `msg`, or None (logged, at most once a second) if there is no model or it does not fit."""
    if model is None:
        return None
    try:
        return torch.from_numpy(state_to_array(msg, model.cfg.embed_dim))
    except InputError as err:
        node.get_logger().error(str(err), throttle_duration_sec=1.0)
        return None
