"""A node's callbacks on an EventsExecutor of its own, in a thread of its own, until stopped.

The thread waits in spin_until_future_complete on a stop future, in C++ with the interpreter lock released, and
runs every callback that comes meanwhile. rclpy's EventsExecutor.spin_once runs one callback per call: a Python
loop around it went back to the interpreter after every message and asked the context lock whether rclpy was
still up, a dozen threads of one process at once; under load on two cores that turned into a convoy on those
two locks that held the whole graph back (planning steps past their deadline, states stale at the actor).
"""

from __future__ import annotations

import threading

import rclpy
from rclpy.experimental import EventsExecutor
from rclpy.node import Node
from rclpy.task import Future

# s a wait lasts before the thread looks whether the context is still up (a shutdown also wakes it at once)
RECHECK_S = 1.0


class SpinThread:
    """Spins `node` from construction until stop(); release() then lets go of it."""

    def __init__(self, node: Node, name: str) -> None:
        self.node = node
        self._context = node.context
        self._executor = EventsExecutor(context=self._context)
        self._executor.add_node(node)
        self._stopped = Future()
        self._thread = threading.Thread(target=self._spin, daemon=True, name=name)
        self._thread.start()

    def _spin(self) -> None:
        while not self._stopped.done() and rclpy.ok(context=self._context):
            self._executor.spin_until_future_complete(self._stopped, timeout_sec=RECHECK_S)

    def alive(self) -> bool:
        return self._thread.is_alive()

    def stop(self, timeout: float = 5.0) -> None:
        """No callback runs once the thread has ended, within `timeout` (the node stays valid: it may still
        publish)."""
        if not self._stopped.done():
            self._stopped.set_result(True)
        self._thread.join(timeout=timeout)

    def release(self) -> None:
        """The executor lets go of the node first: a node an executor still holds can hang destroy_node (rclpy
        waits for its handle to be free)."""
        self._executor.remove_node(self.node)
        self._executor.shutdown()
