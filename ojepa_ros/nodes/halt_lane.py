"""The halt topic: `ojepa/halt` (std_msgs/Empty), the configurator's word that the running goal is cancelled.

The actor hears it on a lane of its own (nodes/lane.py), so the first braking command follows the request
within milliseconds instead of after the planning step in progress.
"""

from __future__ import annotations

from rclpy.qos import QoSProfile

HALT_TOPIC = "ojepa/halt"
# Reliable and volatile: a halt is never lost on the way, and one sent before a node (re)started is not replayed.
HALT_QOS = QoSProfile(depth=1)
