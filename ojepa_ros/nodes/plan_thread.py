"""The actor's planning step on a thread of its own, and the one gate every velocity command passes.

A node's callbacks run one at a time on its executor thread (runtime.NodeSpinner). With the planning step
(50-65 ms here, more under load) on that thread too, a cancel, which reaches the actor as a parameter change, waited
for the step in progress before the robot began to stop. On a thread of its own the step leaves the executor free
for parameters, inputs and the watchdog's guard. Two threads then send commands, so they pass one lock with an
epoch: every stop starts a new epoch, and a planned command carries the epoch its step began in, and is dropped if
a stop came in between. No planned command ever follows a stop.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from typing import Generic, TypeVar

import numpy as np

T = TypeVar("T")

# A stop's command from the last command sent and the seconds since it went out.
Ramp = Callable[[np.ndarray, float], np.ndarray]


class CommandGate:
    """Sends commands through `publish`, one at a time, remembering the last one and when it went out."""

    def __init__(self, publish: Callable[[np.ndarray], None]) -> None:
        self._publish = publish
        self._lock = threading.Lock()
        self.epoch = 0
        self.last = np.zeros(2)
        self.last_time = time.monotonic()

    def stop(self, ramp: Ramp) -> None:
        """Send ramp(last command, s since it went out) now, and drop the command of any step planning now."""
        with self._lock:
            self.epoch += 1
            self._send(ramp(self.last.copy(), time.monotonic() - self.last_time))

    def planned(self, command: np.ndarray, epoch: int) -> bool:
        """Send a planned command unless a stop was sent since its step began (in `epoch`); True if sent."""
        with self._lock:
            if epoch != self.epoch:
                return False
            self._send(command)
            return True

    def _send(self, command: np.ndarray) -> None:
        self.last = np.asarray(command, dtype=float).copy()
        self.last_time = time.monotonic()
        self._publish(self.last)


class PlanThread(Generic[T]):
    """Runs one step at a time, away from the caller's thread; the caller takes its result when it is done."""

    def __init__(self, name: str) -> None:
        self._pool = ThreadPoolExecutor(max_workers=1, thread_name_prefix=name)
        self._job: Future[T] | None = None

    def busy(self) -> bool:
        return self._job is not None and not self._job.done()

    def submit(self, step: Callable[[], T]) -> None:
        """Start `step` (one at a time: only when not busy). It must not raise: its result reports any failure."""
        if self.busy():
            raise RuntimeError("a planning step is already running")
        self._job = self._pool.submit(step)

    def take(self) -> T | None:
        """The finished step's result, once (None while it runs or when there is none)."""
        if self._job is None or not self._job.done():
            return None
        job, self._job = self._job, None
        return job.result()

    def wait(self) -> None:
        """Return once no step runs (its result is kept for take())."""
        if self._job is not None:
            self._job.exception()  # blocks until done; a raised step is take()'s to report

    def close(self) -> None:
        self._pool.shutdown(wait=True)
