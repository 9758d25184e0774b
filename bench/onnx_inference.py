"""Milliseconds (median) of encode at batch 1 and rollout N x T, torch vs onnxruntime CPU, one thread each.

    python bench/onnx_inference.py [--model models/world_model.pt] [--onnx-dir DIR] [--samples 1024] [--horizon 16]

Without --onnx-dir the model is exported to a temporary folder first (nothing is written next to it).
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path
from typing import Callable

import numpy as np
import torch

from ojepa_ros.core.model_io import load_world_model
from ojepa_ros.core.onnx_export import export_onnx
from ojepa_ros.core.onnx_runtime import OrtWorldModel
from ojepa_ros.paths import default_model


def median_ms(fn: Callable[[], object], repeats: int, warmup: int = 5) -> float:
    times = []
    for i in range(warmup + repeats):
        start = time.perf_counter()
        fn()
        if i >= warmup:
            times.append((time.perf_counter() - start) * 1e3)
    return float(np.median(times))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", type=Path, default=None)
    parser.add_argument("--onnx-dir", type=Path, default=None)
    parser.add_argument("--samples", type=int, default=1024)
    parser.add_argument("--horizon", type=int, default=16)
    parser.add_argument("--repeats", type=int, default=30)
    args = parser.parse_args()
    torch.set_num_threads(1)
    source = args.model or default_model()
    model = load_world_model(source)
    with tempfile.TemporaryDirectory() as tmp:
        onnx_dir = args.onnx_dir
        if onnx_dir is None:
            onnx_dir = Path(tmp) / "model.onnx"
            export_onnx(model, source, onnx_dir)
        ort_model = OrtWorldModel(onnx_dir, providers="cpu", threads=1)
        rng = np.random.default_rng(0)
        side = model.cfg.image_size
        image = rng.integers(0, 256, (1, side, side, 3), dtype=np.uint8)
        proprio = rng.normal(size=(1, 6)).astype(np.float32)
        s0 = np.repeat(ort_model.encode(image, proprio), args.samples, axis=0)
        actions = rng.normal(size=(args.samples, args.horizon, 2)).astype(np.float32)
        t_image, t_proprio, t_s0, t_actions = map(torch.from_numpy, (image, proprio, s0, actions))
        with torch.no_grad():
            cases = {
                "encode 1": (lambda: model.encode(t_image, t_proprio), lambda: ort_model.encode(image, proprio), 200),
                f"rollout {args.samples}x{args.horizon}": (lambda: model.rollout(t_s0, t_actions),
                                                           lambda: ort_model.rollout(s0, actions), args.repeats),
            }
            print(f"{source.name}: ms, median; torch {torch.__version__} vs onnxruntime CPU, 1 thread each")
            print(f"{'case':<16} {'torch':>8} {'onnxrt':>8} {'ratio':>7}")
            for name, (torch_fn, ort_fn, repeats) in cases.items():
                t_torch, t_ort = median_ms(torch_fn, repeats), median_ms(ort_fn, repeats)
                print(f"{name:<16} {t_torch:>8.2f} {t_ort:>8.2f} {t_torch / t_ort:>6.2f}x")


if __name__ == "__main__":
    main()
