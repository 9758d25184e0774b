"""A halt lane: a hidden companion node that hears `ojepa/halt` on a thread of its own.

The actor's callbacks run one at a time on its executor thread, so a cancel that reaches it as a parameter waits
for the planning step in progress (most of a control tick on a small computer). The lane's thread is idle but for
that one rare message; it takes the interpreter lock within the switch interval while the step runs (the
planner's torch calls release it), so the first braking command follows the request within milliseconds.
"""

from __future__ import annotations

import threading
from typing import Callable

from rclpy.executors import SingleThreadedExecutor
from rclpy.node import Node
from rclpy.parameter import Parameter
from rclpy.qos import QoSProfile
from std_msgs.msg import Empty

HALT_TOPIC = "ojepa/halt"
# Reliable and volatile: a halt is never lost on the way, and one sent before a node (re)started is not replayed.
HALT_QOS = QoSProfile(depth=1)


class HaltLane:
    """Calls `on_halt()` from its own thread for each message on `owner`'s ojepa/halt (the owner's remaps and
    namespace apply); `close()` stops the thread and destroys the node."""

    def __init__(self, owner: Node, on_halt: Callable[[], None]) -> None:
        self.node = Node(f"_{owner.get_name()}_halt", namespace=owner.get_namespace(), context=owner.context,
                         use_global_arguments=False, enable_rosout=False, start_parameter_services=False,
                         parameter_overrides=[Parameter("start_type_description_service", value=False)])
        self.node.create_subscription(Empty, owner.resolve_topic_name(HALT_TOPIC), lambda _msg: on_halt(), HALT_QOS)
        self._executor = SingleThreadedExecutor(context=owner.context)
        self._executor.add_node(self.node)
        self._open = threading.Event()
        self._open.set()
        self._thread = threading.Thread(target=self._spin, daemon=True, name=f"halt lane {owner.get_name()}")
        self._thread.start()

    def _spin(self) -> None:
        while self._open.is_set() and self.node.context.ok():
            self._executor.spin_once(timeout_sec=0.1)

    def close(self) -> None:
        if not self._open.is_set():
            return
        self._open.clear()
        self._thread.join(timeout=1.0)
        self._executor.remove_node(self.node)
        self._executor.shutdown(timeout_sec=0.5)
        self.node.destroy_node()
