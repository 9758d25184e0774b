"""SpinThread: a node's callbacks run on its own thread until stop(), and none after it."""

from __future__ import annotations

import random
import threading

from std_msgs.msg import Int32


def _pair(name: str):
    from rclpy.node import Node

    suffix = random.randint(0, 1 << 30)
    return Node(f"{name}_talker_{suffix}"), Node(f"{name}_listener_{suffix}")


def test_a_burst_is_handled_in_order_on_the_spin_thread_and_nothing_after_stop(ros):
    from ojepa_ros.nodes.spin_thread import SpinThread

    talker, listener = _pair("burst")
    topic = f"/spin_thread_burst_{random.randint(0, 1 << 30)}"
    got: list[int] = []
    threads: set[str] = set()
    arrived = threading.Event()

    def on_message(msg: Int32) -> None:
        got.append(msg.data)
        threads.add(threading.current_thread().name)
        if msg.data == 199:
            arrived.set()

    listener.create_subscription(Int32, topic, on_message, 500)
    publisher = talker.create_publisher(Int32, topic, 500)
    spinner = SpinThread(listener, "spin burst listener")
    try:
        assert spinner.alive()
        while publisher.get_subscription_count() == 0:
            arrived.wait(0.02)
        for i in range(200):
            publisher.publish(Int32(data=i))
        assert arrived.wait(10.0), f"only {len(got)} of 200 messages handled"
        assert got == list(range(200))
        assert threads == {"spin burst listener"}
        spinner.stop()
        assert not spinner.alive()
        handled = len(got)
        for i in range(200, 220):
            publisher.publish(Int32(data=i))
        arrived.clear()
        arrived.wait(0.5)
        assert len(got) == handled, "a callback ran after stop()"
    finally:
        spinner.stop()
        spinner.release()
        listener.destroy_node()
        talker.destroy_node()


def test_stop_twice_and_release_leave_the_node_usable(ros):
    from ojepa_ros.nodes.spin_thread import SpinThread

    talker, listener = _pair("twice")
    spinner = SpinThread(listener, "spin twice listener")
    spinner.stop()
    spinner.stop()
    spinner.release()
    assert not spinner.alive()
    # the node outlives its spinner: it may still publish its final messages, as nodes' stop() does
    listener.create_publisher(Int32, "/spin_thread_after", 1).publish(Int32(data=1))
    listener.destroy_node()
    talker.destroy_node()
