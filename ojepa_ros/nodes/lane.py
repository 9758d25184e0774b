"""A lane: a hidden companion node whose subscriptions are handled on a thread of its own.

A node's callbacks run one at a time on its executor thread (runtime.NodeSpinner), so a message for it waits for
the callback in progress: in the actor that is the planning step, most of a control tick on a small computer. A
lane's thread runs only its own short callbacks; it takes the interpreter lock within the switch interval while
the step runs (the planner's torch calls release it), so what it hears is handled within milliseconds. The
actor has two: its halt lane (a cancel brakes at once) and its input lane (the watchdog is fed while it plans).
"""

from __future__ import annotations

from typing import Any, Callable, Sequence

from rclpy.node import Node
from rclpy.parameter import Parameter

from ojepa_ros.nodes.spin_thread import SpinThread

# (message type, topic as the owner names it, callback, QoS profile or depth)
Subscription = tuple[type, str, Callable[[Any], None], Any]


class Lane:
    """A node `_<owner>_<purpose>` in the owner's namespace and context, subscribed to `subscriptions` (the
    owner's remaps apply: each topic is resolved by the owner), spinning on its own thread from construction;
    `close()` stops the thread and destroys the node."""

    def __init__(self, owner: Node, purpose: str, subscriptions: Sequence[Subscription]) -> None:
        self.node = Node(f"_{owner.get_name()}_{purpose}", namespace=owner.get_namespace(), context=owner.context,
                         use_global_arguments=False, enable_rosout=False, start_parameter_services=False,
                         parameter_overrides=[Parameter("start_type_description_service", value=False)])
        for msg_type, topic, callback, qos in subscriptions:
            self.node.create_subscription(msg_type, owner.resolve_topic_name(topic), callback, qos)
        self._spinner: SpinThread | None = SpinThread(self.node, f"{purpose} lane {owner.get_name()}")

    def close(self) -> None:
        if self._spinner is None:
            return
        self._spinner.stop(timeout=1.0)
        self._spinner.release()
        self._spinner = None
        self.node.destroy_node()
