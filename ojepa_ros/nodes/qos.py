"""Quality of service shared by the nodes.

SENSOR: what camera, scan and odometry subscriptions use. Best effort with a short queue (rclpy's
qos_profile_sensor_data): a best-effort subscription matches both best-effort publishers (most camera
and lidar drivers, Gazebo's bridge with its sensor profile) and reliable ones, where a reliable
subscription never connects to a best-effort publisher. A late sensor message is worth less than the next.
"""

from rclpy.qos import qos_profile_sensor_data

SENSOR = qos_profile_sensor_data
