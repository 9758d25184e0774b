"""The versioned world-model file: save, load with one-sentence errors, and one shared instance per process.

A checkpoint is `torch.save` of {"format", "version", "config", "state_dict", "metadata"} holding only
tensors and plain Python values, so it loads with `weights_only=True` (no pickled code runs).
"""

from __future__ import annotations

import functools
import os
from dataclasses import asdict, dataclass, fields
from pathlib import Path

import torch

from ojepa_ros.core.formats import header_problem
from ojepa_ros.core.world_model import WorldModel, WorldModelConfig

FORMAT = "ojepa-world-model"
VERSION = 3  # 2: image-only features, latent z, level 2, pose probe, model kind; 3: no position into predictor or obstacle read-outs, forward ranges


class ModelFileError(RuntimeError):
    """A world-model file that cannot be used; the message names the file and what is wrong with it."""


def save_world_model(model: WorldModel, path: str | Path, metadata: dict) -> None:
    """Write the checkpoint atomically (temp file + rename), so a reader never sees half a file.

    metadata holds plain values only (str, numbers, bools, lists, dicts): it is read with weights_only.
    """
    write_checkpoint(path, FORMAT, VERSION, asdict(model.cfg), model, metadata)


def write_checkpoint(path: str | Path, fmt: str, version: int, config: dict, module: torch.nn.Module,
                     metadata: dict) -> None:
    """{"format", "version", "config", "state_dict", "metadata"} via temp file + rename (any of our models)."""
    _check_plain(metadata, "metadata")
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    checkpoint = {"format": fmt, "version": version, "config": config,
                  "state_dict": {k: v.detach().cpu() for k, v in module.state_dict().items()},
                  "metadata": metadata}
    tmp = path.with_name(path.name + ".tmp")
    torch.save(checkpoint, tmp)
    os.replace(tmp, path)


def _check_plain(value: object, where: str) -> None:
    """Refuse at save time what weights_only loading would refuse later (e.g. numpy scalars, Paths)."""
    if isinstance(value, dict):
        for key, item in value.items():
            _check_plain(key, where)
            _check_plain(item, f"{where}[{key!r}]")
    elif isinstance(value, (list, tuple)):
        for i, item in enumerate(value):
            _check_plain(item, f"{where}[{i}]")
    elif value is not None and type(value) not in (str, int, float, bool):
        raise TypeError(f"{where} is a {type(value).__name__}; world-model metadata holds plain values only")


def read_checkpoint(path: Path, map_location: str | torch.device, fmt: str = FORMAT, version: int = VERSION,
                    what: str = "world model") -> dict:
    """The checkpoint dict at path; ModelFileError (naming the file) if missing, corrupt or of another kind."""
    if not path.is_file():
        raise ModelFileError(f"{what} file {path} does not exist")
    try:
        checkpoint = torch.load(path, map_location=map_location, weights_only=True)
    except Exception as err:  # torch raises several types for truncated, corrupt or foreign files
        lines = [line.strip() for line in str(err).splitlines() if line.strip()] or [type(err).__name__]
        reason = next((line for line in lines if "Unsupported global" in line), lines[0])
        raise ModelFileError(f"{what} file {path} is not a readable torch checkpoint "
                             f"(corrupt or truncated?): {reason}") from err
    problem = header_problem(checkpoint, f"{what} file {path}", fmt, version)
    if problem:
        raise ModelFileError(problem)
    return checkpoint


def load_weights(module: torch.nn.Module, checkpoint: dict, path: Path, what: str = "world model") -> None:
    """Load the checkpoint's state_dict into module, refusing one whose tensors do not match it."""
    expected = {k: tuple(v.shape) for k, v in module.state_dict().items()}
    state = checkpoint.get("state_dict")
    got = {k: tuple(v.shape) for k, v in state.items()} if isinstance(state, dict) else {}
    wrong = sorted(k for k in expected.keys() | got.keys() if expected.get(k) != got.get(k))
    if wrong:
        raise ModelFileError(f"{what} file {path} has weights that do not match its config: "
                             f"{len(wrong)} tensors missing, extra or misshapen, e.g. {wrong[0]!r}")
    module.load_state_dict(state)


def read_module(path: str | Path, fmt: str, version: int, what: str, config_cls: type,
                module_cls: type[torch.nn.Module]) -> torch.nn.Module:
    """A small model stored by write_checkpoint (config dataclass + weights), in eval mode with gradients off."""
    path = Path(path)
    checkpoint = read_checkpoint(path, "cpu", fmt, version, what)
    try:
        cfg = config_cls(**checkpoint.get("config", {}))
    except TypeError as err:
        raise ModelFileError(f"{what} file {path} has a config this ojepa_ros does not know: {err}") from err
    module = module_cls(cfg)
    load_weights(module, checkpoint, path, what)
    return module.eval().requires_grad_(False)


def _build(path: Path, checkpoint: dict) -> WorldModel:
    config = checkpoint.get("config")
    known = {f.name for f in fields(WorldModelConfig)}
    if not isinstance(config, dict) or not set(config) <= known:
        extra = sorted(set(config) - known) if isinstance(config, dict) else config
        raise ModelFileError(f"world model file {path} has a config this ojepa_ros does not know: {extra}")
    model = WorldModel(WorldModelConfig(**config))
    load_weights(model, checkpoint, path)
    return model


def load_world_model(path: str | Path, map_location: str | torch.device = "cpu") -> WorldModel:
    """The model stored at path, in eval mode with gradients off; ModelFileError if the file is unusable."""
    path = Path(path)
    model = _build(path, read_checkpoint(path, map_location)).to(map_location)
    model.eval().requires_grad_(False)
    return model


def read_metadata(path: str | Path) -> dict:
    """The metadata dict stored with the model (training data, metrics, date), for model cards and logs."""
    path = Path(path)
    return read_checkpoint(path, "cpu").get("metadata", {})


@functools.lru_cache(maxsize=8)
def _shared(path: str, mtime_ns: int) -> WorldModel:
    return load_world_model(path)


def shared_world_model(path: str | Path) -> WorldModel:
    """One instance per file per process (the nodes composed in a process share one engine).

    Keyed on the resolved path and modification time, so a retrained file replaces the cached model.
    """
    resolved = Path(path).resolve()
    try:
        mtime_ns = resolved.stat().st_mtime_ns
    except OSError as err:
        raise ModelFileError(f"world model file {resolved} does not exist") from err
    return _shared(str(resolved), mtime_ns)


@dataclass(frozen=True)
class PartFile:
    """The file of a small learned part kept beside a world model (the critic, the goal locator): its format,
    where it lives by default, and the command that makes it, for the errors."""

    fmt: str
    version: int
    what: str
    suffix: str  # world_model.pt -> world_model<suffix>
    config_cls: type
    module_cls: type[torch.nn.Module]
    command: str

    def beside(self, model_path: str | Path) -> Path:
        return Path(model_path).with_suffix(self.suffix)

    def save(self, module: torch.nn.Module, path: str | Path, metadata: dict) -> None:
        write_checkpoint(path, self.fmt, self.version, asdict(module.cfg), module, metadata)

    def load(self, path: str | Path, **expected: int | None) -> torch.nn.Module:
        """The part at path in eval mode; ModelFileError names the file if missing, corrupt, or made for another
        world model (a config field that differs from `expected`, e.g. state_dim=64)."""
        module = read_module(path, self.fmt, self.version, self.what, self.config_cls, self.module_cls)
        for name, value in expected.items():
            if value is not None and getattr(module.cfg, name) != value:
                raise ModelFileError(f"{self.what} file {path} was made for {name} {getattr(module.cfg, name)}, the "
                                     f"world model gives {value}: make it again for this model (`{self.command}`)")
        return module
