"""The `model_path` parameter shared by every node that needs the world model.

Loading goes through core's process-wide cache, so nodes composed in one process share one engine.
A missing or corrupt file leaves the node running without a model (it then publishes nothing that
would move the robot) and logs one line naming the file.
"""

from __future__ import annotations

from rclpy.node import Node

from ojepa_ros.core.model_io import ModelFileError, shared_world_model
from ojepa_ros.core.world_model import WorldModel
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
