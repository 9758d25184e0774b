"""Shared test fixtures: one rclpy context per session on its own ROS_DOMAIN_ID, real nodes spun in a thread."""

from __future__ import annotations

import os
import random
import time
from pathlib import Path
from typing import Callable

os.environ.setdefault("MUJOCO_GL", "egl")
# A domain of our own so parallel sessions on one machine cannot hear each other.
os.environ["ROS_DOMAIN_ID"] = str(random.SystemRandom().randint(1, 100))

import numpy as np  # noqa: E402
import pytest  # noqa: E402


@pytest.fixture(scope="session")
def ros():
    import rclpy

    rclpy.init()
    yield
    rclpy.shutdown()


class Graph:
    """Nodes spinning as the agent spins them (ojepa_ros.nodes.runtime.NodeSpinner), with helpers to wait for
    what they publish."""

    def __init__(self) -> None:
        from ojepa_ros.nodes.runtime import NodeSpinner

        self.spinner = NodeSpinner()
        self.nodes = []

    def add(self, node, bring_up: bool = True):
        """Spin `node`; a managed node is first configured and activated (as `autostart: true` does), unless
        bring_up is False (the lifecycle tests bring nodes up themselves)."""
        from ojepa_ros.nodes.lifecycle import ManagedNode

        self.nodes.append(node)
        if bring_up and isinstance(node, ManagedNode):
            node.bring_up()
        return self.spinner.add(node)

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
        self.spinner.stop()
        for node in self.nodes:
            stop = getattr(node, "stop", None)
            if stop is not None:
                stop()
        self.spinner.shutdown()
        for node in self.nodes:
            node.destroy_node()


@pytest.fixture
def graph(ros):
    g = Graph()
    yield g
    g.close()


@pytest.fixture(scope="session")
def episodes_dir(tmp_path_factory) -> Path:
    """Two short real episodes from `ojepa collect` in the embedded world."""
    from ojepa_ros.train.collect import main as collect_main

    out = tmp_path_factory.mktemp("episodes")
    assert collect_main(["--episodes", "2", "--steps", "40", "--out", str(out), "--seed", "3"]) == 0
    return out


@pytest.fixture(scope="session")
def tiny_model_path(tmp_path_factory) -> Path:
    """An untrained but real, correctly formatted world-model file of a tiny size."""
    from ojepa_ros.core.model_io import save_world_model
    from ojepa_ros.core.critic import Critic, CriticConfig, critic_beside, save_critic
    from ojepa_ros.core.mode1 import Mode1Config, Mode1Policy, mode1_beside, save_mode1
    from ojepa_ros.core.roadmap import roadmap_beside
    from ojepa_ros.core.world_model import WorldModel, WorldModelConfig

    path = tmp_path_factory.mktemp("model") / "tiny.pt"
    cfg = WorldModelConfig(embed_dim=16, hidden_dim=32, channels=(8, 8, 8, 8))
    save_world_model(WorldModel(cfg), path, {"note": "untrained test model"})
    grid_roadmap(cfg.level2_dim).save(roadmap_beside(path))  # the actor is hierarchical by default ...
    save_mode1(Mode1Policy(Mode1Config(state_dim=cfg.embed_dim)), mode1_beside(path), {"note": "untrained"})  # ... with Mode-1
    save_critic(Critic(CriticConfig(state_dim=cfg.embed_dim)), critic_beside(path), {"note": "untrained"})  # ... and a critic
    return path


def grid_roadmap(level2_dim: int, spacing: float = 0.5):
    """A real Roadmap over the rooms world's free space: cells on a grid, edges to free 8-neighbours whose
    straight segment keeps clear of the walls. What `ojepa roadmap` would give with perfect experience."""
    from ojepa_ros.core.roadmap import Roadmap
    from ojepa_ros.sim.rooms_world import clearance, default_layout

    layout = default_layout()
    xs = np.arange(spacing / 2, 8.0, spacing)
    grid = np.array([(x, y) for x in xs for y in xs])
    free = grid[clearance(layout, grid) > 0.2]
    edges, costs = [], []
    for i, a in enumerate(free):
        for j, b in enumerate(free):
            gap = float(np.hypot(*(a - b)))
            segment = a + np.linspace(0, 1, 9)[:, None] * (b - a)
            if i != j and gap < 1.5 * spacing and (clearance(layout, segment) > 0.15).all():
                edges.append((i, j))
                costs.append(gap)
    return Roadmap(spacing, free.astype(np.float32), np.zeros((len(free), level2_dim), np.float32),
                   clearance(layout, free).astype(np.float32), np.array(edges), np.array(costs))
