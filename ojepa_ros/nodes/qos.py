"""Quality of service shared by the nodes.

SENSOR: what camera, scan and odometry subscriptions use. Best effort with a short queue (rclpy's
qos_profile_sensor_data): a best-effort subscription matches both best-effort publishers (most camera
and lidar drivers, Gazebo's bridge with its sensor profile) and reliable ones, where a reliable
subscription never connects to a best-effort publisher. A late sensor message is worth less than the next.

NEWEST: SENSOR keeping only the newest message, for an input of which only the latest counts (perception's
camera and odometry: a frame queued behind an encoding is stale by the time it would be encoded).

LATCHED: the last message kept for subscribers that join later (transient local, depth 1): a goal, or the
actor's status, which a restarted configurator or a restarted actor's peers must hear at once.
"""

from rclpy.qos import DurabilityPolicy, HistoryPolicy, QoSProfile, qos_profile_sensor_data

SENSOR = qos_profile_sensor_data
NEWEST = QoSProfile(history=HistoryPolicy.KEEP_LAST, depth=1, reliability=SENSOR.reliability,
                    durability=SENSOR.durability)
LATCHED = QoSProfile(depth=1, durability=DurabilityPolicy.TRANSIENT_LOCAL)
