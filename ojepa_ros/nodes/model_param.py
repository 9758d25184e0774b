"""The world-model parameters shared by the nodes, and loading the model they name, in one place.

Loading goes through a process-wide cache (core's for torch, one here for onnxruntime), so nodes
composed in one process share one engine. `open_*` raise on a missing or corrupt file (a managed node's
configure then fails with that line); `load_*`, for a reload at run time, log one line naming the file and give
None (the node then publishes nothing that would move the robot).

perception_node and world_model_node can also run the exported ONNX graphs (`backend: onnxruntime`);
they see either backend as an `Engine` with numpy in and out, so they have one code path and, on
onnxruntime, never call torch (which is only imported here when the torch backend is chosen).
"""

from __future__ import annotations

import functools
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol

import numpy as np
from ojepa_interfaces.msg import State
from rclpy.node import Node

from ojepa_ros.nodes import params as P
from ojepa_ros.nodes.convert import InputError, state_to_array
from ojepa_ros.paths import default_model

if TYPE_CHECKING:
    import torch

    from ojepa_ros.core.onnx_runtime import OrtWorldModel, TensorrtOptions
    from ojepa_ros.core.world_model import WorldModel

BACKENDS = ("torch", "onnxruntime")
MODEL_PARAM = P.Param("", "world model checkpoint (.pt); empty: the shipped models/world_model.pt")
ENGINE_PARAMS = {
    "model_path": MODEL_PARAM,
    "backend": P.one_of("torch", "inference backend: torch (the .pt checkpoint) or onnxruntime "
                                 "(the graphs `ojepa export` wrote)", BACKENDS),
    "onnx_dir": P.Param("", "exported ONNX folder; empty: next to the model, <model_path without .pt>.onnx/"),
    "onnx_providers": P.Param("auto", "onnxruntime providers: auto (TensorRT, CUDA, then CPU: the first that "
                                      "loads), cpu, or a comma-separated list that must load as given"),
    # TensorRT provider options, used only where TensorrtExecutionProvider loads (else one log line says so)
    "trt_engine_cache_enable": P.Param(True, "TensorRT: keep the engines it builds (seconds to minutes each) for the "
                                             "next start"),
    "trt_engine_cache_path": P.Param("", "TensorRT engine cache folder (created); empty: $ROS_HOME/ojepa/trt_cache "
                                         "(ROS_HOME defaults to ~/.ros); a relative path is taken from the node's "
                                         "working directory"),
    "trt_fp16_enable": P.Param(False, "TensorRT: run the graphs in half precision (where the GPU has fp16 units)"),
}
ORT_THREADS = 1  # one intra-op thread per call, as runtime.py sets for torch: no oversubscription on a small CPU


def open_model(path: str) -> WorldModel:
    """The torch world model at `path` (empty: the shipped one); ModelFileError naming the file if it cannot."""
    from ojepa_ros.core.model_io import shared_world_model

    return shared_world_model(path or str(default_model()))


def load_model(node: Node, path: str) -> WorldModel | None:
    """open_model, or None after logging why not (a reload at run time)."""
    from ojepa_ros.core.model_io import ModelFileError

    try:
        model = open_model(path)
    except ModelFileError as err:
        node.get_logger().error(str(err))
        return None
    node.get_logger().info(f"world model loaded from {path or default_model()}")
    return model


class Engine(Protocol):
    """What perception_node and world_model_node need of a world model, on numpy arrays."""

    cfg: Any  # has image_size, embed_dim, dt

    def encode(self, image: np.ndarray, proprio: np.ndarray) -> np.ndarray: ...

    def next(self, s: np.ndarray, a: np.ndarray) -> np.ndarray: ...


class TorchEngine:
    """The torch WorldModel behind the numpy interface that OrtWorldModel has natively."""

    def __init__(self, model: WorldModel) -> None:
        self.model = model
        self.cfg = model.cfg

    def encode(self, image: np.ndarray, proprio: np.ndarray) -> np.ndarray:
        import torch

        with torch.no_grad():
            return self.model.encode(torch.from_numpy(image), torch.from_numpy(proprio)).numpy()

    def next(self, s: np.ndarray, a: np.ndarray) -> np.ndarray:
        import torch

        with torch.no_grad():
            return self.model.next(torch.from_numpy(s), torch.from_numpy(a)).numpy()


@functools.lru_cache(maxsize=8)
def _shared_ort(directory: str, providers: str, mtime_ns: int, tensorrt: TensorrtOptions) -> OrtWorldModel:
    from ojepa_ros.core.onnx_runtime import OrtWorldModel

    return OrtWorldModel(directory, providers, threads=ORT_THREADS, tensorrt=tensorrt)


def open_engine(node: Node, p: dict[str, Any]) -> Engine:
    """The engine the ENGINE_PARAMS values in `p` choose (logged); ModelFileError or OnnxModelError if it cannot."""
    if p["backend"] == "torch":
        engine = TorchEngine(open_model(p["model_path"]))
        node.get_logger().info(f"world model loaded from {p['model_path'] or default_model()}")
        return engine
    from ojepa_ros.core.onnx_runtime import MANIFEST, TensorrtOptions, onnx_dir_for

    directory = Path(p["onnx_dir"] or onnx_dir_for(p["model_path"] or default_model())).resolve()
    try:
        mtime_ns = (directory / MANIFEST).stat().st_mtime_ns  # a re-export replaces the cached engine
    except OSError:
        mtime_ns = 0  # let the loader name what is missing
    engine = _shared_ort(str(directory), p["onnx_providers"], mtime_ns, TensorrtOptions.from_params(p))
    node.get_logger().info(f"world model loaded from {directory} (onnxruntime on {', '.join(engine.providers)})")
    if engine.tensorrt_used:
        node.get_logger().info(f"TensorRT options: {engine.tensorrt.provider_options()}")
    else:
        node.get_logger().info("TensorRT options (trt_*) ignored: TensorrtExecutionProvider did not load here")
    return engine


def load_engine(node: Node, p: dict[str, Any]) -> Engine | None:
    """open_engine, or None after logging one line on why not (a reload at run time)."""
    from ojepa_ros.core.model_io import ModelFileError
    from ojepa_ros.core.onnx_runtime import OnnxModelError

    try:
        return open_engine(node, p)
    except (ModelFileError, OnnxModelError) as err:
        node.get_logger().error(str(err))
        return None


def state_array(node: Node, model: Any, msg: State) -> np.ndarray | None:
    """The state embedding in `msg` for `model` (torch or Engine), or None (logged, at most once a second)."""
    if model is None:
        return None
    try:
        return state_to_array(msg, model.cfg.embed_dim)
    except InputError as err:
        node.get_logger().error(str(err), throttle_duration_sec=1.0)
        return None


def state_for_model(node: Node, model: WorldModel | None, msg: State) -> torch.Tensor | None:
    """state_array as a torch tensor, for the nodes that plan or score with the torch model."""
    import torch

    state = state_array(node, model, msg)
    return None if state is None else torch.from_numpy(state)
