"""The planner's per-candidate model calls on onnxruntime: MPPI and CEM need no gradient, so the thousands of
step and clearance evaluations of a control step can run on the exported graphs (TensorRT, CUDA or CPU, e.g.
on a Jetson) while the planner, costs and read-outs stay the torch code they are everywhere else.
"""

from __future__ import annotations

import numpy as np
import torch
from torch import Tensor

from ojepa_ros.core.onnx_runtime import OnnxModelError, OrtWorldModel
from ojepa_ros.core.world_model import WorldModel


class OrtRolloutModel:
    """What MpcPolicy calls on a world model: `next` and `clearance` through onnxruntime sessions (torch
    tensors in and out; the outputs share numpy's memory), the configuration and pose read-out from the
    torch model."""

    def __init__(self, model: WorldModel, engine: OrtWorldModel) -> None:
        mine, theirs = model.cfg, engine.cfg
        sizes = [(c.embed_dim, c.z_dim, c.action_dim) for c in (mine, theirs)]
        scales = [np.concatenate([c.proprio_mean, c.proprio_std, c.action_scale]) for c in (mine, theirs)]
        if sizes[0] != sizes[1] or not np.allclose(*scales):
            raise OnnxModelError(f"ONNX folder {engine.directory} was exported from another model (state, z, "
                                 f"action sizes {sizes[1]} vs {sizes[0]}, or other normalisation): re-run "
                                 "`ojepa export` for this model")
        self.cfg, self._model, self._engine = mine, model, engine

    def next(self, s: Tensor, a: Tensor, z: Tensor | None = None) -> Tensor:
        return torch.from_numpy(self._engine.next(s.numpy(), a.numpy(), None if z is None else z.numpy()))

    def rollout(self, s0: Tensor, actions: Tensor, z: Tensor | None = None) -> Tensor:
        return torch.from_numpy(self._engine.rollout(s0.numpy(), actions.numpy(), None if z is None else z.numpy()))

    def clearance(self, s: Tensor) -> Tensor:
        return torch.from_numpy(self._engine.clearance(s.numpy()))

    def pose(self, s: Tensor) -> Tensor:
        return self._model.pose(s)

    def ranges(self, s: Tensor) -> Tensor:
        """Once per control step (the obstacle memory's view), so it stays on the torch model."""
        return self._model.ranges(s)

    def features(self, s: Tensor) -> Tensor:
        """A slice of the state (the goal-image objective reads it): no network runs."""
        return self._model.features(s)
