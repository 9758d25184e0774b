"""Data-parallel training under torchrun: torch.distributed and DistributedDataParallel, thinly wrapped.

One object answers what the training loop needs to know (which device, am I rank 0, how many ranks) and
does the three collective things it needs (wrap the model, average metrics, shut down). Without torchrun's
environment variables it is a single process and every method is a no-op, so one training loop serves both.
"""

from __future__ import annotations

import datetime

import os
from dataclasses import dataclass

import torch
import torch.distributed as dist
from torch.nn.parallel import DistributedDataParallel


@dataclass(frozen=True)
class DistContext:
    rank: int = 0
    world_size: int = 1
    local_rank: int = 0

    @classmethod
    def from_env(cls) -> DistContext:
        """RANK / WORLD_SIZE / LOCAL_RANK as torchrun sets them; absent = one process."""
        return cls(int(os.environ.get("RANK", 0)), int(os.environ.get("WORLD_SIZE", 1)),
                   int(os.environ.get("LOCAL_RANK", 0)))

    @property
    def device(self) -> torch.device:
        """This rank's GPU (by LOCAL_RANK) when CUDA is available, else the CPU."""
        return torch.device("cuda", self.local_rank) if torch.cuda.is_available() else torch.device("cpu")

    @property
    def is_main(self) -> bool:
        """Rank 0: the one that prints, plots and writes files."""
        return self.rank == 0

    def init(self) -> DistContext:
        """Join the process group (NCCL on GPUs, Gloo on CPUs; rendezvous from torchrun's env vars)."""
        if self.world_size > 1 and not dist.is_initialized():
            if torch.cuda.is_available():
                torch.cuda.set_device(self.local_rank)
            dist.init_process_group("nccl" if torch.cuda.is_available() else "gloo")
        return self

    def wrap(self, model: torch.nn.Module, find_unused_parameters: bool = False) -> torch.nn.Module:
        """DDP around `model` when there are several ranks (it broadcasts rank 0's parameters now, and
        averages gradients in backward -- only of what ran through the wrapper's forward)."""
        if self.world_size == 1:
            return model
        device_ids = [self.local_rank] if torch.cuda.is_available() else None
        return DistributedDataParallel(model, device_ids=device_ids, find_unused_parameters=find_unused_parameters)

    def mean(self, values: dict[str, float]) -> dict[str, float]:
        """The average of each value over all ranks (every rank must pass the same keys)."""
        if self.world_size == 1:
            return dict(values)
        names = sorted(values)
        total = torch.tensor([float(values[n]) for n in names], dtype=torch.float64, device=self.device)
        dist.all_reduce(total, op=dist.ReduceOp.SUM)
        return dict(zip(names, (total / self.world_size).tolist()))

    def close(self) -> None:
        """Leave the process group together: a rank tearing gloo down while the other still talks to it can
        abort ("terminate called without an active exception", seen once in three CI-like runs)."""
        if dist.is_initialized():
            try:  # bounded: a rank that failed must not wait forever for one that is gone
                if dist.get_backend() == "gloo":
                    dist.monitored_barrier(timeout=datetime.timedelta(seconds=30))
                else:
                    dist.barrier()
            except RuntimeError:
                pass
            dist.destroy_process_group()
