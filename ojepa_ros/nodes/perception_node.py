"""perception_node: camera image + odometry -> state embedding s = Enc(x) on /ojepa/state.

Only the newest frame is encoded. Camera and odometry are subscribed keep-last 1 (qos.NEWEST); the image
callback only pairs the frame with the newest odometry and leaves the pair in a one-slot mailbox
(core/latest.py), and an encoder thread takes whatever pair is newest when it is free. A frame that arrives
while another still waits replaces it: the replaced one is dropped and counted (1 Hz on /diagnostics), so a burst
or a slow encode never leaves the robot acting on a queue of stale frames, and odometry keeps arriving meanwhile.

An image is encoded only when it is well formed and its odometry is fresh; anything else is logged once per
second and dropped, so the actor's watchdog sees a stale state and stops the robot. The encoder runs on torch
or, with `backend: onnxruntime`, on the exported graphs without torch. A managed node (nodes/lifecycle.py): the
model loads in configure, the encoder thread runs while active. Each state (ojepa_interfaces/State) is stamped
with its capture time, the older of the image's and the odometry's header stamps, so the actor's watchdog judges
the data's age, not the time it happened to arrive; its frame is the odometry's child frame.
"""

from __future__ import annotations

import threading
from typing import NamedTuple

import numpy as np
from diagnostic_msgs.msg import DiagnosticArray, DiagnosticStatus, KeyValue
from nav_msgs.msg import Odometry
from ojepa_interfaces.msg import State
from sensor_msgs.msg import Image

from ojepa_ros.core.latest import Latest
from ojepa_ros.core.odometry import proprio_from_odom
from ojepa_ros.nodes import params as P
from ojepa_ros.nodes.convert import InputError, image_to_rgb, odometry_to_array, stamp_to_sec, state_message
from ojepa_ros.nodes.lifecycle import ManagedNode
from ojepa_ros.nodes.model_param import ENGINE_PARAMS, Engine, load_engine, open_engine
from ojepa_ros.nodes.qos import NEWEST

PARAMS = {
    **ENGINE_PARAMS,
    "max_odom_age": P.positive(0.2, "s; odometry older than this (relative to the image) blocks encoding"),
    "max_image_age": P.positive(0.5, "s; images stamped older than this are dropped"),
}


class Frame(NamedTuple):
    """A camera frame and the newest odometry when it arrived (None if none was valid)."""

    image: Image
    odom: np.ndarray | None
    odom_time: float  # when that odometry arrived (s, node clock)
    odom_stamp: float  # its header stamp (s)
    base_frame: str  # its child frame, the robot's base


class PerceptionNode(ManagedNode):
    def __init__(self, **kwargs) -> None:
        super().__init__("perception_node", **kwargs)
        self.p = P.declare(self, PARAMS, self._on_params)
        self.model: Engine | None = None
        self._odom: np.ndarray | None = None
        self._odom_time = -np.inf
        self._odom_stamp = -np.inf  # its header stamp (s)
        self._base_frame = ""  # its child frame
        self._frames: Latest[Frame] = Latest()
        self._encoder: threading.Thread | None = None
        self.encoded = 0  # frames encoded into a state (refused ones not counted)
        self.refused = 0  # frames taken but not encoded: malformed, too old, or no fresh odometry
        self.state_pub = self.create_publisher(State, "ojepa/state", 10)
        self.diag_pub = self.create_publisher(DiagnosticArray, "diagnostics", 10)
        self.create_subscription(Odometry, "odom", self._on_odom, NEWEST)
        self.create_subscription(Image, "camera/image_raw", self._on_image, NEWEST)
        self.create_timer(1.0, self._publish_diagnostics)

    def configure(self) -> None:
        self.model = open_engine(self, self.p)

    def activate(self) -> None:
        self._frames.reopen()
        self._encoder = threading.Thread(target=self._encode_newest, daemon=True, name="perception encoder")
        self._encoder.start()

    def deactivate(self) -> None:
        self.stop()

    def cleanup(self) -> None:
        self.model = None

    def stop(self) -> None:
        """End the encoder thread (a frame being encoded is finished first)."""
        self._frames.close()
        if self._encoder is not None and self._encoder is not threading.current_thread():
            self._encoder.join(timeout=2.0)
        self._encoder = None

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
            self._base_frame = msg.child_frame_id
        except InputError as err:
            self._odom = None
            self.get_logger().error(str(err), throttle_duration_sec=1.0)

    def _on_image(self, msg: Image) -> None:
        if self.model is not None:
            self._frames.put(Frame(msg, self._odom, self._odom_time, self._odom_stamp, self._base_frame))

    def _encode_newest(self) -> None:
        """The encoder thread: the newest frame whenever it is free, until stop()."""
        frames = self._frames
        while not frames.closed:
            frame = frames.take(timeout=0.5)
            if frame is None:
                continue
            try:
                self._encode(frame)
            except Exception as err:  # noqa: BLE001 - whatever one frame does, the next one is encoded
                self.get_logger().error(f"encoding raised {err.__class__.__name__}: {err}", throttle_duration_sec=1.0)

    def _encode(self, frame: Frame) -> None:
        model, msg, now = self.model, frame.image, self._now()
        if model is None:
            return
        try:
            size = model.cfg.image_size
            rgb = image_to_rgb(msg, size, size)
            if now - stamp_to_sec(msg.header.stamp) > self.p["max_image_age"]:
                raise InputError(f"image is {now - stamp_to_sec(msg.header.stamp):.2f} s old; "
                                 f"max_image_age is {self.p['max_image_age']} s")
            if frame.odom is None or now - frame.odom_time > self.p["max_odom_age"]:
                raise InputError("no fresh odometry; not encoding")
        except InputError as err:
            self.refused += 1
            self.get_logger().error(str(err), throttle_duration_sec=1.0)
            return
        state = model.encode(rgb[None], proprio_from_odom(frame.odom)[None])[0]
        captured = min(stamp_to_sec(msg.header.stamp), frame.odom_stamp, now)
        self.state_pub.publish(state_message(state, round(captured * 1e9), frame.base_frame))
        self.encoded += 1

    @property
    def dropped(self) -> int:
        """Frames the node took but never encoded because a newer one came first (one that DDS's keep-last-1 queue
        replaced before the node took it never reaches the node: rclpy's EventsExecutor gives no sequence numbers)."""
        return self._frames.dropped

    def _publish_diagnostics(self) -> None:
        values = {"frames_encoded": self.encoded, "frames_dropped_stale": self.dropped, "frames_refused": self.refused}
        status = DiagnosticStatus(level=DiagnosticStatus.OK, name="perception_node: frames",
                                  message="counts since start: encoded, dropped stale (a newer frame came before it "
                                          "was encoded), refused",
                                  values=[KeyValue(key=k, value=str(v)) for k, v in values.items()])
        msg = DiagnosticArray(status=[status])
        msg.header.stamp = self.get_clock().now().to_msg()
        self.diag_pub.publish(msg)


def main(args: list[str] | None = None) -> None:
    from ojepa_ros.nodes.runtime import run_node

    run_node(PerceptionNode, args)


if __name__ == "__main__":
    main()
