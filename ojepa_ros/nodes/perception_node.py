"""perception_node: camera image + odometry -> state embedding s = Enc(x) on /ojepa/state.

An image is encoded only when it is well formed and its odometry is fresh; anything else is logged
once per second and dropped, so the actor's watchdog sees a stale state and stops the robot.
The encoder runs on torch or, with `backend: onnxruntime`, on the exported graphs without torch. A managed node
(nodes/lifecycle.py): the model loads in configure, states are encoded only while active.
Each state carries its capture stamp (convert.state_message): the older of the image's and the odometry's
header stamps, so the actor's watchdog judges the data's age, not the time it happened to arrive.
"""

from __future__ import annotations

import numpy as np
from nav_msgs.msg import Odometry
from sensor_msgs.msg import Image
from std_msgs.msg import Float32MultiArray

from ojepa_ros.core.odometry import proprio_from_odom
from ojepa_ros.nodes import params as P
from ojepa_ros.nodes.convert import InputError, image_to_rgb, odometry_to_array, stamp_to_sec, state_message
from ojepa_ros.nodes.lifecycle import ManagedNode
from ojepa_ros.nodes.model_param import ENGINE_PARAMS, Engine, load_engine, open_engine
from ojepa_ros.nodes.qos import SENSOR

PARAMS = {
    **ENGINE_PARAMS,
    "max_odom_age": P.positive(0.2, "s; odometry older than this (relative to the image) blocks encoding"),
    "max_image_age": P.positive(0.5, "s; images stamped older than this are dropped"),
}


class PerceptionNode(ManagedNode):
    def __init__(self, **kwargs) -> None:
        super().__init__("perception_node", **kwargs)
        self.p = P.declare(self, PARAMS, self._on_params)
        self.model: Engine | None = None
        self._odom: np.ndarray | None = None
        self._odom_time = -np.inf
        self._odom_stamp = -np.inf  # its header stamp (s)
        self.state_pub = self.create_publisher(Float32MultiArray, "ojepa/state", 10)
        self.create_subscription(Odometry, "odom", self._on_odom, SENSOR)
        self.create_subscription(Image, "camera/image_raw", self._on_image, SENSOR)

    def configure(self) -> None:
        self.model = open_engine(self, self.p)

    def cleanup(self) -> None:
        self.model = None

    def _on_params(self, changed: set[str]) -> None:
        if changed & ENGINE_PARAMS.keys() and self.configured:
            self.model = load_engine(self, self.p)

    def _now(self) -> float:
        return self.get_clock().now().nanoseconds * 1e-9

    def _on_odom(self, msg: Odometry) -> None:
        try:
            self._odom = odometry_to_array(msg)
            self._odom_time = self._now()
            stamp = stamp_to_sec(msg.header.stamp)
            self._odom_stamp = stamp if stamp > 0 else self._odom_time  # an unstamped source: its arrival
        except InputError as err:
            self._odom = None
            self.get_logger().error(str(err), throttle_duration_sec=1.0)

    def _on_image(self, msg: Image) -> None:
        if self.model is None:
            return
        now = self._now()
        try:
            size = self.model.cfg.image_size
            rgb = image_to_rgb(msg, size, size)
            if now - stamp_to_sec(msg.header.stamp) > self.p["max_image_age"]:
                raise InputError(f"image is {now - stamp_to_sec(msg.header.stamp):.2f} s old; "
                                 f"max_image_age is {self.p['max_image_age']} s")
            if self._odom is None or now - self._odom_time > self.p["max_odom_age"]:
                raise InputError("no fresh odometry; not encoding")
        except InputError as err:
            self.get_logger().error(str(err), throttle_duration_sec=1.0)
            return
        state = self.model.encode(rgb[None], proprio_from_odom(self._odom)[None])[0]
        captured = min(stamp_to_sec(msg.header.stamp), self._odom_stamp, now)
        self.state_pub.publish(state_message(state, round(captured * 1e9)))


def main(args: list[str] | None = None) -> None:
    from ojepa_ros.nodes.runtime import run_node

    run_node(PerceptionNode, args)


if __name__ == "__main__":
    main()
