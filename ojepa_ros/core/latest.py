"""Newest-only hand-over from a thread that receives to a thread that works: at most one item waits, and an item
that arrives while one is waiting replaces it (the replaced one is counted as dropped), so the worker always
starts on the newest input and never works through a queue of stale ones (perception's camera frames)."""

from __future__ import annotations

import threading
from typing import Generic, TypeVar

T = TypeVar("T")


class Latest(Generic[T]):
    """A one-slot mailbox: put() never blocks, take() waits for an item or close()."""

    def __init__(self) -> None:
        self._cv = threading.Condition()
        self._item: T | None = None
        self._waiting = False
        self._closed = False
        self.dropped = 0  # items replaced before anyone took them

    def put(self, item: T) -> None:
        with self._cv:
            self.dropped += int(self._waiting)
            self._item, self._waiting = item, True
            self._cv.notify()

    def take(self, timeout: float | None = None) -> T | None:
        """The newest item (and the slot is empty again), or None after `timeout` s or once closed."""
        with self._cv:
            if not self._cv.wait_for(lambda: self._waiting or self._closed, timeout) or not self._waiting:
                return None
            item, self._item, self._waiting = self._item, None, False
            return item

    def close(self) -> None:
        """Wake a waiting take() with None and keep returning None; the waiting item, if any, is dropped."""
        with self._cv:
            self.dropped += int(self._waiting)
            self._item, self._waiting, self._closed = None, False, True
            self._cv.notify_all()

    @property
    def closed(self) -> bool:
        return self._closed

    def reopen(self) -> None:
        with self._cv:
            self._closed = False

