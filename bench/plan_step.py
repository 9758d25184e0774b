"""Milliseconds per MPC step (MpcPolicy.act with the shipped world model), median and p99.

    python bench/plan_step.py [--samples 256 512 1024] [--horizon 16] [--threads 1] [--steps 50]
"""

from __future__ import annotations

import argparse
import time

import numpy as np
import torch

from ojepa_ros.core.model_io import load_world_model
from ojepa_ros.core.mpc import MpcPolicy
from ojepa_ros.paths import default_model


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--samples", type=int, nargs="+", default=[256, 512, 1024])
    parser.add_argument("--horizon", type=int, nargs="+", default=[16])
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--steps", type=int, default=50)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    model = load_world_model(default_model())
    image = torch.zeros(1, 64, 64, 3, dtype=torch.uint8)
    state = model.encode(image, torch.tensor([[2.0, 2.0, 1.0, 0.0, 0.0, 0.0]]))[0]
    print(f"torch threads {args.threads}; ms per MPC step over {args.steps} steps (5 warm-up)")
    print(f"{'samples':>8} {'horizon':>8} {'median':>8} {'p99':>8}")
    for horizon in args.horizon:
        for samples in args.samples:
            policy = MpcPolicy.from_config(model, {"num_samples": samples, "horizon": horizon}, seed=0)
            policy.set_goal((6.0, 2.0))
            times = []
            for _ in range(args.steps + 5):
                start = time.perf_counter()
                policy.act(state, (0.0, 0.0))
                times.append((time.perf_counter() - start) * 1e3)
            ms = np.asarray(times[5:])
            print(f"{samples:>8} {horizon:>8} {np.median(ms):>8.1f} {np.percentile(ms, 99):>8.1f}")


if __name__ == "__main__":
    main()
