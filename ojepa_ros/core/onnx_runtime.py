"""The exported world model run by onnxruntime: numpy in, numpy out, no torch in the process.

A model folder (written by `ojepa export`, see onnx_export.py) holds one ONNX graph per concept and a
manifest.json naming each graph's file, inputs and outputs; everything is checked against the
manifest when the folder is opened, so a wrong or damaged folder fails at start-up with one sentence
naming the file, never with a shape error mid-run. This module imports only numpy and onnxruntime so
that a robot computer can run the nodes without installing torch.
"""

from __future__ import annotations

import contextlib
import io
import json
import logging
from dataclasses import dataclass, fields
from pathlib import Path
from typing import Any, Iterator

import numpy as np
import onnxruntime as ort

from ojepa_ros.core.formats import header_problem
from ojepa_ros.paths import ros_home

FORMAT = "ojepa-world-model-onnx"
VERSION = 1
MANIFEST = "manifest.json"
BATCH = "batch"  # the name of the dynamic first axis in manifest shapes
GRAPHS = ("encoder", "predictor", "abstract", "predictor2", "clearance", "probe_pose")  # every model has these
ORT_TYPES = {"uint8": "tensor(uint8)", "float32": "tensor(float)"}
CPU = "CPUExecutionProvider"
TENSORRT = "TensorrtExecutionProvider"
PREFERENCE = (TENSORRT, "CUDAExecutionProvider", CPU)  # what "auto" tries, in order
SHORT_NAMES = {"tensorrt": PREFERENCE[0], "cuda": PREFERENCE[1], "cpu": CPU}
ORT_DEFAULT_SEVERITY = 2  # onnxruntime's own default (warnings); restored after quiet provider probing

log = logging.getLogger(__name__)


class OnnxModelError(RuntimeError):
    """An exported model folder (or provider choice) that cannot be used; the message names the file and why."""


@dataclass(frozen=True)
class OrtConfig:
    """The part of the world model's config that inference needs, read from the manifest."""

    image_size: int
    proprio_dim: int
    action_dim: int
    embed_dim: int
    z_dim: int
    level2_k: int
    level2_dim: int
    kind: str
    dt: float
    proprio_mean: tuple[float, ...]
    proprio_std: tuple[float, ...]
    action_scale: tuple[float, ...]


def default_trt_cache() -> Path:
    """Where TensorRT keeps the engines it built, by default: $ROS_HOME/ojepa/trt_cache (absolute)."""
    return ros_home() / "ojepa" / "trt_cache"


@dataclass(frozen=True)
class TensorrtOptions:
    """The TensorRT execution provider's options, used only where that provider loads. Building an engine takes
    from seconds to minutes (on a Jetson); the engine cache keeps what was built for the next start. fp16 runs the
    graphs in half precision where the GPU has the units for it (not checked against torch's float32)."""

    engine_cache_enable: bool = True
    engine_cache_path: str = ""  # empty: default_trt_cache(); a relative path is taken from the working directory
    fp16_enable: bool = False

    @classmethod
    def from_params(cls, p: dict[str, Any]) -> TensorrtOptions:
        """From the nodes' parameters trt_engine_cache_enable, trt_engine_cache_path, trt_fp16_enable (defaults
        for the ones missing)."""
        return cls(bool(p.get("trt_engine_cache_enable", True)), str(p.get("trt_engine_cache_path", "")),
                   bool(p.get("trt_fp16_enable", False)))

    def cache_path(self) -> Path:
        return Path(self.engine_cache_path).expanduser().resolve() if self.engine_cache_path else default_trt_cache()

    def provider_options(self) -> dict[str, str]:
        """The options as onnxruntime's TensorrtExecutionProvider takes them (strings)."""
        out = {"trt_engine_cache_enable": str(self.engine_cache_enable), "trt_fp16_enable": str(self.fp16_enable)}
        if self.engine_cache_enable:
            out["trt_engine_cache_path"] = str(self.cache_path())
        return out


def provider_chain(names: list[str], tensorrt: TensorrtOptions) -> list[str | tuple[str, dict[str, str]]]:
    """The providers as InferenceSession takes them: TensorRT with its options, the others by name."""
    return [(name, tensorrt.provider_options()) if name == TENSORRT else name for name in names]


def onnx_dir_for(model_path: str | Path) -> Path:
    """Where `ojepa export` writes a checkpoint's graphs by default: models/x.pt -> models/x.onnx/."""
    return Path(model_path).with_suffix(".onnx")


def read_manifest(directory: str | Path) -> dict:
    """The manifest of an exported model folder, checked for format and version."""
    directory = Path(directory)
    path = directory / MANIFEST
    if not directory.is_dir():
        raise OnnxModelError(f"ONNX model folder {directory} does not exist (write one with `ojepa export`)")
    try:
        manifest = json.loads(path.read_text())
    except FileNotFoundError as err:
        raise OnnxModelError(f"ONNX model folder {directory} has no {MANIFEST} "
                             "(write one with `ojepa export`)") from err
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as err:
        raise OnnxModelError(f"ONNX manifest {path} is not readable JSON: {err}") from err
    problem = header_problem(manifest, f"ONNX manifest {path}", FORMAT, VERSION)
    if problem:
        raise OnnxModelError(problem)
    return manifest


def _config(path: Path, manifest: dict) -> OrtConfig:
    config = manifest.get("config")
    names = [f.name for f in fields(OrtConfig)]
    missing = [n for n in names if not isinstance(config, dict) or n not in config]
    if missing:
        raise OnnxModelError(f"ONNX manifest {path} has no model config entries {missing}")
    return OrtConfig(**{n: tuple(config[n]) if isinstance(config[n], list) else config[n] for n in names})


@contextlib.contextmanager
def _quiet() -> Iterator[None]:
    """Silence onnxruntime while "auto" tries GPU providers that may not load (it logs and prints each failure).

    Both switches are process-wide, for the moment a session is created: only at load time.
    """
    ort.set_default_logger_severity(4)
    try:
        with contextlib.redirect_stdout(io.StringIO()):
            yield
    finally:
        ort.set_default_logger_severity(ORT_DEFAULT_SEVERITY)


def _requested(spec: str) -> list[str] | None:
    """Provider names in priority order from "auto" (None), "cpu" or "CUDAExecutionProvider,CPUExecutionProvider"."""
    names = [SHORT_NAMES.get(n.strip().lower(), n.strip()) for n in spec.split(",") if n.strip()]
    if names in ([], ["auto"]):
        return None
    available = ort.get_available_providers()
    unknown = [n for n in names if n not in available]
    if unknown:
        raise OnnxModelError(f"onnxruntime provider(s) {', '.join(unknown)} not available in onnxruntime "
                             f"{ort.__version__}; available: {', '.join(available)} (or 'auto')")
    return names


class OrtWorldModel:
    """The world model's inference methods (as WorldModel's, on numpy arrays) over an exported folder.

    providers: "auto" takes TensorRT, then CUDA, then CPU, the first that actually loads (onnxruntime-gpu
    lists GPU providers even where they cannot run); a forced list must load as given, else OnnxModelError.
    threads: intra-op threads per graph (0: onnxruntime's default, all cores). tensorrt: the TensorRT provider's
    options (engine cache, fp16), passed wherever that provider is tried; `tensorrt_used` says whether it loaded.
    """

    def __init__(self, directory: str | Path, providers: str = "auto", threads: int = 0,
                 tensorrt: TensorrtOptions | None = None) -> None:
        self.directory = Path(directory)
        self.tensorrt = tensorrt or TensorrtOptions()
        self.manifest = read_manifest(self.directory)
        manifest_path = self.directory / MANIFEST
        self.cfg = _config(manifest_path, self.manifest)
        self._pose_std = np.asarray(self.cfg.proprio_std[:4], np.float32)
        self._pose_mean = np.asarray(self.cfg.proprio_mean[:4], np.float32)
        graphs = self.manifest.get("graphs")
        names = GRAPHS + (("decoder",) if self.cfg.kind == "pixel" else ())
        missing = [n for n in names if not isinstance(graphs, dict) or not isinstance(graphs.get(n), dict)]
        if missing:
            raise OnnxModelError(f"ONNX manifest {manifest_path} lists no graph {missing}")
        self._options = ort.SessionOptions()
        self._options.intra_op_num_threads = threads
        self._options.inter_op_num_threads = 1
        # Idle worker threads sleep instead of spinning: on a robot's few cores a spinning pool starves the
        # other nodes and torch (measured here: MPPI 1024 x 16 on 2 threads 157 ms spinning).
        self._options.add_session_config_entry("session.intra_op.allow_spinning", "0")
        self._options.log_severity_level = 3
        requested = _requested(providers)
        encoder = self._open_first(graphs["encoder"], requested)
        self.providers: list[str] = encoder.get_providers()
        if requested is not None and (failed := [p for p in requested if p not in self.providers]):
            raise OnnxModelError(f"onnxruntime provider(s) {', '.join(failed)} failed to load (see onnxruntime's "
                                 f"log above: libraries or GPU missing?); use 'auto' to fall back to CPU")
        self._sessions = {n: encoder if n == "encoder" else self._open(graphs[n], self.providers) for n in names}
        self.tensorrt_used = TENSORRT in self.providers
        log.info("world model %s on onnxruntime providers %s", self.directory, self.providers)

    # --- opening and checking graphs -------------------------------------------------------------
    def _open_first(self, graph: dict, requested: list[str] | None) -> ort.InferenceSession:
        """The first session; for "auto" the first provider chain whose head loads (quietly tried)."""
        if requested is not None:
            return self._open(graph, requested)
        chain = [p for p in PREFERENCE if p in ort.get_available_providers()]
        while chain[0] != CPU:
            with _quiet():
                session = self._open(graph, chain)
            if chain[0] in session.get_providers():
                return session
            chain = chain[1:]
        return self._open(graph, chain)

    def _open(self, graph: dict, providers: list[str]) -> ort.InferenceSession:
        path = self.directory / str(graph.get("file"))
        if not path.is_file():
            raise OnnxModelError(f"ONNX graph file {path} (listed in {MANIFEST}) does not exist")
        if TENSORRT in providers and self.tensorrt.engine_cache_enable:
            cache = self.tensorrt.cache_path()
            try:
                cache.mkdir(parents=True, exist_ok=True)
            except OSError as err:
                raise OnnxModelError(f"TensorRT engine cache folder {cache} cannot be created ({err.strerror or err}); "
                                     "set trt_engine_cache_path or trt_engine_cache_enable: false") from err
        try:
            session = ort.InferenceSession(str(path), self._options, providers=provider_chain(providers, self.tensorrt))
        except Exception as err:  # onnxruntime raises its own types (InvalidProtobuf, Fail, ...) for bad files
            reason = str(err).strip().splitlines()[0] if str(err).strip() else type(err).__name__
            raise OnnxModelError(f"ONNX graph file {path} cannot be loaded by onnxruntime "
                                 f"(corrupt or truncated?): {reason}") from err
        for kind, declared, actual in (("inputs", graph.get("inputs"), session.get_inputs()),
                                       ("outputs", graph.get("outputs"), session.get_outputs())):
            try:
                want = [(d["name"], ORT_TYPES.get(d["dtype"], d["dtype"]), list(d["shape"])) for d in declared]
            except (KeyError, TypeError) as err:
                raise OnnxModelError(f"{MANIFEST} in {self.directory} has no valid {kind} list for {path.name}: "
                                     f"{err!r}") from err
            got = [(a.name, a.type, [d if isinstance(d, int) else BATCH for d in a.shape]) for a in actual]
            if got != want:
                raise OnnxModelError(f"ONNX graph file {path} has {kind} {_describe(got)}; "
                                     f"{MANIFEST} expects {_describe(want)}")
        return session

    def run_graph(self, name: str, *inputs: np.ndarray) -> np.ndarray:
        """One graph's output for its inputs in manifest order (what the methods below and export checks use)."""
        session = self._sessions[name]
        return session.run(None, {arg.name: x for arg, x in zip(session.get_inputs(), inputs)})[0]

    def _per_state(self, name: str, s: np.ndarray) -> np.ndarray:
        """A state graph applied to states of any leading shape [..., D] (the graphs take [B, D])."""
        s = _f32(s)
        out = self.run_graph(name, s.reshape(-1, s.shape[-1]))
        return out.reshape(s.shape[:-1] + out.shape[1:])

    # --- the model -------------------------------------------------------------------------------
    def encode(self, image: np.ndarray, proprio: np.ndarray) -> np.ndarray:
        """uint8 camera images [B, H, W, 3] + proprio [B, 6] -> states [B, D]."""
        image = np.asarray(image)
        if image.dtype != np.uint8:
            raise ValueError(f"encode takes uint8 camera images, got {image.dtype}")
        return self.run_graph("encoder", np.ascontiguousarray(image), _f32(proprio))

    def features(self, s: np.ndarray) -> np.ndarray:
        """The learned, image-only part of states [..., D]."""
        return s[..., self.cfg.proprio_dim:]

    def next(self, s: np.ndarray, a: np.ndarray, z: np.ndarray | None = None) -> np.ndarray:
        """State one control step after action a [N, 2] in state s [N, D]; z None = the prior mean (zeros)."""
        s = _f32(s)
        if not self.cfg.z_dim:
            return self.run_graph("predictor", s, _f32(a))
        z = np.zeros((s.shape[0], self.cfg.z_dim), np.float32) if z is None else _f32(z)
        return self.run_graph("predictor", s, _f32(a), z)

    def rollout(self, s0: np.ndarray, actions: np.ndarray, z: np.ndarray | None = None) -> np.ndarray:
        """Predicted states [N, T, D] after each of the actions [N, T, 2] from s0 [N, D]; z [N, T, z_dim] or None."""
        states = []
        s = s0
        for t in range(actions.shape[1]):
            s = self.next(s, actions[:, t], None if z is None else z[:, t])
            states.append(s)
        return np.stack(states, axis=1)

    def abstract(self, s: np.ndarray) -> np.ndarray:
        """Level-2 states h [..., level2_dim] of states [..., D]."""
        return self._per_state("abstract", s)

    def next2(self, h: np.ndarray, macro: np.ndarray) -> np.ndarray:
        """Level-2 state level2_k control steps after the actions macro [N, k, 2] from h [N, level2_dim]."""
        return self.run_graph("predictor2", _f32(h), _f32(macro))

    def pose(self, s: np.ndarray) -> np.ndarray:
        """Pose [..., 3] = (x m, y m, yaw rad) of states s or level-2 states h, read from their odometry part."""
        xy_cs = s[..., :4] * self._pose_std + self._pose_mean
        return np.concatenate((xy_cs[..., :2], np.arctan2(xy_cs[..., 3:4], xy_cs[..., 2:3])), axis=-1)

    def probe_pose(self, s: np.ndarray) -> np.ndarray:
        """Pose [..., 3] as the linear probe reads it from the image features alone."""
        return self._per_state("probe_pose", s)

    def clearance(self, s: np.ndarray) -> np.ndarray:
        """Distance [...] in metres from the robot's body to the nearest obstacle, >= 0."""
        return self._per_state("clearance", s)

    def decode(self, s: np.ndarray) -> np.ndarray:
        """Pixel baseline only: states [B, D] -> images [B, 3, S, S] in [0, 1]."""
        if "decoder" not in self._sessions:
            raise RuntimeError("decode() exists only on the pixel baseline (cfg.kind == 'pixel')")
        return self.run_graph("decoder", _f32(s))


def _f32(x: np.ndarray) -> np.ndarray:
    return np.ascontiguousarray(x, dtype=np.float32)


def _describe(io_specs: list[tuple[str, str, list]]) -> str:
    return ", ".join(f"{name} {dtype} {shape}" for name, dtype, shape in io_specs) or "none"
