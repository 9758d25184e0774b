"""Shared test fixtures: one rclpy context per session on its own ROS_DOMAIN_ID, real nodes spun in a thread."""

from __future__ import annotations

import os
import random
import threading
import time
from pathlib import Path
from typing import Callable

os.environ.setdefault("MUJOCO_GL", "egl")
# A domain of our own so parallel sessions on one machine cannot hear each other.
os.environ["ROS_DOMAIN_ID"] = str(random.SystemRandom().randint(1, 100))

import pytest  # noqa: E402


@pytest.fixture(scope="session")
def ros():
    import rclpy

    rclpy.init()
    yield
    rclpy.shutdown()


class Graph:
    """Nodes spinning in a background executor, with helpers to wait for what they publish."""

    def __init__(self) -> None:
        from rclpy.executors import MultiThreadedExecutor

        self.executor = MultiThreadedExecutor(num_threads=4)
        self.nodes = []
        self._thread = threading.Thread(target=self.executor.spin, daemon=True)
        self._thread.start()

    def add(self, node):
        self.nodes.append(node)
        self.executor.add_node(node)
        return node

    def collect(self, msg_type, topic: str, qos=10) -> list:
        """Subscribe a probe node to `topic`; the returned list fills with messages as they arrive."""
        from rclpy.node import Node

        inbox: list = []
        probe = self.add(Node(f"probe_{len(self.nodes)}_{random.randint(0, 1 << 30)}"))
        probe.create_subscription(msg_type, topic, inbox.append, qos)
        return inbox

    @staticmethod
    def wait_for(predicate: Callable[[], bool], timeout: float, what: str) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if predicate():
                return
            time.sleep(0.02)
        raise AssertionError(f"timed out after {timeout} s waiting for {what}")

    def close(self) -> None:
        for node in self.nodes:
            stop = getattr(node, "stop", None)
            if stop is not None:
                stop()
        self.executor.shutdown()
        for node in self.nodes:
            node.destroy_node()


@pytest.fixture
def graph(ros):
    g = Graph()
    yield g
    g.close()


@pytest.fixture(scope="session")
def tiny_model_path(tmp_path_factory) -> Path:
    """An untrained but real, correctly formatted world-model file of a tiny size."""
    from ojepa_ros.core.model_io import save_world_model
    from ojepa_ros.core.world_model import WorldModel, WorldModelConfig

    path = tmp_path_factory.mktemp("model") / "tiny.pt"
    save_world_model(WorldModel(WorldModelConfig(embed_dim=16, hidden_dim=32, channels=(8, 8, 8, 8))), path,
                     {"note": "untrained test model"})
    return path
