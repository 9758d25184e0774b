"""Where a goal image was taken, seen from here: the place code that turns an image goal into a position.

The world model's image features hold what is in the way, not where in a layout the robot is (a pose probe
over hundreds of layouts finds nothing), so a divergence to a goal image's features has no slope toward the
goal. Two views of the same scene do tell how one camera sits relative to the other: the locator reads the
features of the current view and of the goal view and says where the goal camera is in the robot's frame
(forward, left, m), how it is turned, and whether the goal is in sight at all (within 4 m, in the 90-degree
view, facing within 40 degrees the same way). It is trained on frozen features of recorded episodes with
relative odometry between two frames as the label (`ojepa locator`): a real robot's own sensor, never a
simulator's position.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import torch
from torch import Tensor, nn

from ojepa_ros.core.model_io import PartFile
from ojepa_ros.core.world_model import mlp

FORMAT, VERSION = "ojepa-goal-locator", 1
WHAT = "goal locator"
SIGHT_RANGE = 4.0  # m: a goal farther than this is out of sight
SIGHT_BEARING = math.radians(40.0)  # the goal's bearing and its camera's turn, either way, to count as in sight
NEAR = 0.3  # m: a goal this close is in sight whatever its bearing


@dataclass
class LocatorConfig:
    feature_dim: int
    hidden_dim: int = 384


@dataclass(frozen=True)
class Sighting:
    """The goal as the locator sees it from one view: position in the robot frame, turn, P(in sight)."""

    relative_xy: np.ndarray  # [2] m: forward, left
    relative_yaw: float  # rad: the goal camera's heading minus the robot's
    confidence: float  # 0..1


def relative_pose(pose: np.ndarray, other: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Where poses `other` [N, 3] are in the frames of poses `pose` [N, 3] (x, y, yaw): ([N, 2] xy, [N] yaw)."""
    d = other[:, :2] - pose[:, :2]
    c, s = np.cos(pose[:, 2]), np.sin(pose[:, 2])
    xy = np.stack([c * d[:, 0] + s * d[:, 1], -s * d[:, 0] + c * d[:, 1]], axis=1)
    yaw = np.arctan2(np.sin(other[:, 2] - pose[:, 2]), np.cos(other[:, 2] - pose[:, 2]))
    return xy, yaw


def in_sight(xy: np.ndarray, yaw: np.ndarray) -> np.ndarray:
    """[N] bool: the goal camera at relative xy [N, 2], turned yaw [N], is one the locator should recognise."""
    dist = np.hypot(xy[:, 0], xy[:, 1])
    ahead = np.abs(np.arctan2(xy[:, 1], xy[:, 0])) <= SIGHT_BEARING
    return (dist <= SIGHT_RANGE) & (ahead | (dist < NEAR)) & (np.abs(yaw) <= SIGHT_BEARING)


class GoalLocator(nn.Module):
    """forward(features [N, F], goal features [N, F]) -> [N, 5]: x, y, sin yaw, cos yaw, in-sight logit."""

    def __init__(self, cfg: LocatorConfig) -> None:
        super().__init__()
        self.cfg = cfg
        self._net = mlp([3 * cfg.feature_dim, cfg.hidden_dim, cfg.hidden_dim, 5])

    def forward(self, features: Tensor, goal: Tensor) -> Tensor:
        return self._net(torch.cat((features, goal, features - goal), dim=-1))

    @torch.no_grad()
    def locate(self, features: Tensor, goal: Tensor) -> Sighting:
        out = self(features.reshape(1, -1).float(), goal.reshape(1, -1).float())[0].cpu().numpy().astype(float)
        return Sighting(out[:2], math.atan2(out[2], out[3]), 1.0 / (1.0 + math.exp(-out[4])))


# beside(model): world_model.pt -> world_model.locator.pt; save(locator, path, metadata); load(path, feature_dim=F)
LOCATOR_FILE = PartFile(FORMAT, VERSION, WHAT, ".locator.pt", LocatorConfig, GoalLocator, "ojepa locator")
