"""Spinning nodes and shutting them down so the robot is left stopped (Ctrl-C safe)."""

from __future__ import annotations

import os
import sys
import threading
import time
from typing import Callable

import rclpy
import torch
from rclpy.executors import MultiThreadedExecutor
from rclpy.node import Node
from rclpy.signals import SignalHandlerOptions


def run_nodes(nodes: Callable[[], list[Node]], args: list[str] | None = None,
              until: Callable[[], bool] | None = None) -> None:
    """Create the nodes in one process and spin them until Ctrl-C or `until()`; then each node's `stop()` runs.

    rclpy's own signal handler is not installed, so on Ctrl-C the context is still valid when the
    actor publishes its final zero command.
    """
    # Several nodes call torch from executor threads at once; one intra-op thread each avoids
    # OpenMP oversubscription, which costs far more than it gains on a 2-4 core robot computer.
    torch.set_num_threads(int(os.environ.get("OJEPA_TORCH_THREADS", "1")))
    # The planner makes hundreds of short torch calls per step, each giving up and retaking the GIL;
    # with the default 5 ms switch interval every retake can wait behind the sim and message threads.
    sys.setswitchinterval(float(os.environ.get("OJEPA_SWITCH_INTERVAL", "0.0005")))
    rclpy.init(args=args, signal_handler_options=SignalHandlerOptions.NO)
    created = nodes()
    executor = MultiThreadedExecutor(num_threads=max(2, len(created)))
    for node in created:
        executor.add_node(node)
    spinning = threading.Event()
    spinning.set()

    def spin() -> None:
        while spinning.is_set() and rclpy.ok():
            executor.spin_once(timeout_sec=0.1)

    spinner = threading.Thread(target=spin, daemon=True)
    spinner.start()
    try:
        while spinner.is_alive() and not (until is not None and until()):
            time.sleep(0.05)
    except KeyboardInterrupt:
        pass
    finally:
        spinning.clear()
        spinner.join(timeout=5.0)
        for node in created:
            stop = getattr(node, "stop", None)
            if stop is not None:
                stop()
        time.sleep(0.1)  # let the final commands leave before the middleware goes away
        executor.shutdown()
        for node in created:
            node.destroy_node()
        rclpy.try_shutdown()


def run_node(factory: Callable[[], Node], args: list[str] | None = None) -> None:
    run_nodes(lambda: [factory()], args)
