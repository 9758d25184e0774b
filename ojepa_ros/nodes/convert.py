"""Message <-> numpy conversion with validation: bad input raises InputError with one clear sentence."""

from __future__ import annotations

import math

import numpy as np
from builtin_interfaces.msg import Time
from geometry_msgs.msg import PoseStamped, Quaternion
from nav_msgs.msg import Odometry
from ojepa_interfaces.msg import State
from sensor_msgs.msg import Image, LaserScan

from ojepa_ros.core.collision_monitor import scan_points
from ojepa_ros.core.formats import ENCODINGS, rgb_from_image


MAX_BEAMS = 100_000  # a scan with more is refused: no real planar scanner sends that many


class InputError(ValueError):
    """A message the node refuses; the text is logged as is."""


def stamp_to_sec(stamp: Time) -> float:
    return stamp.sec + stamp.nanosec * 1e-9


def sec_to_stamp(t: float) -> Time:
    # Round to whole nanoseconds first: rounding only the fraction sent 5.9999999997 s out as 5 s, a clock
    # one second in the past (the simulator's time is a sum of 2 ms steps, so it lands there every few s).
    sec, nanosec = divmod(round(t * 1e9), 1_000_000_000)
    return Time(sec=int(sec), nanosec=int(nanosec))


def yaw_to_quaternion(yaw: float) -> Quaternion:
    return Quaternion(z=math.sin(yaw / 2.0), w=math.cos(yaw / 2.0))


def quaternion_to_yaw(q: Quaternion) -> float:
    return math.atan2(2.0 * (q.w * q.z + q.x * q.y), 1.0 - 2.0 * (q.y * q.y + q.z * q.z))


def image_to_rgb(msg: Image, width: int, height: int) -> np.ndarray:
    """An rgb8/bgr8 Image of the expected size as a (H, W, 3) uint8 RGB array."""
    if msg.encoding in ENCODINGS and (msg.width, msg.height) != (width, height):
        raise InputError(f"image is {msg.width}x{msg.height}; the model expects {width}x{height}")
    try:
        return rgb_from_image(msg.encoding, msg.width, msg.height, msg.step, msg.data)
    except ValueError as err:
        raise InputError(str(err)) from None


def rgb_to_image(rgb: np.ndarray, stamp: Time, frame_id: str) -> Image:
    msg = Image()
    msg.header.stamp = stamp
    msg.header.frame_id = frame_id
    msg.height, msg.width = int(rgb.shape[0]), int(rgb.shape[1])
    msg.encoding = "rgb8"
    msg.step = 3 * msg.width
    msg.data = np.ascontiguousarray(rgb, dtype=np.uint8).tobytes()
    return msg


def odometry_to_array(msg: Odometry) -> np.ndarray:
    """[x, y, yaw, v, w] from an Odometry message; NaN/inf anywhere used is refused."""
    p, t = msg.pose.pose.position, msg.twist.twist
    q = msg.pose.pose.orientation
    raw = np.array([p.x, p.y, q.x, q.y, q.z, q.w, t.linear.x, t.angular.z], dtype=np.float64)
    if not np.all(np.isfinite(raw)):
        raise InputError("odometry contains NaN or inf; ignoring it")
    return np.array([p.x, p.y, quaternion_to_yaw(q), t.linear.x, t.angular.z])


QUATERNION_NORM_TOLERANCE = 0.01  # |q| must be 1 within this: a zero or unnormalised quaternion is no orientation


def finite_pose_xy_yaw(x: float, y: float, q: Quaternion) -> tuple[float, float, float]:
    """(x, y, yaw) of a pose, refusing NaN/inf and a quaternion that is not a rotation (zero, unnormalised)."""
    values = (x, y, q.x, q.y, q.z, q.w)
    if not all(math.isfinite(v) for v in values):
        raise InputError("pose contains NaN or inf")
    norm = math.sqrt(q.x * q.x + q.y * q.y + q.z * q.z + q.w * q.w)
    if abs(norm - 1.0) > QUATERNION_NORM_TOLERANCE:
        raise InputError(f"orientation quaternion has norm {norm:.3g}, not 1: it is no rotation")
    return x, y, quaternion_to_yaw(q)


def goal_xy_yaw(msg: PoseStamped, frame: str) -> tuple[float, float, float]:
    """(x, y, yaw) of a goal pose, refusing another frame than `frame` (an empty frame_id is taken as it), NaN/inf
    and an orientation that is no rotation."""
    if msg.header.frame_id not in ("", frame):
        raise InputError(f"goal is in frame '{msg.header.frame_id}'; expected '{frame}'")
    p = msg.pose.position
    return finite_pose_xy_yaw(p.x, p.y, msg.pose.orientation)


def state_message(state: np.ndarray, capture_ns: int, frame_id: str = "") -> State:
    """A state embedding as published on /ojepa/state, stamped with its capture time (ns, the node clock) and
    the robot's base frame."""
    msg = State(data=np.asarray(state, dtype=np.float32).reshape(-1).tolist())
    sec, nanosec = divmod(int(capture_ns), 1_000_000_000)
    msg.header.stamp = Time(sec=sec, nanosec=nanosec)
    msg.header.frame_id = frame_id
    return msg


def state_to_array(msg: State, dim: int) -> np.ndarray:
    """A state embedding of the model's size with finite values, as float32."""
    state = np.asarray(msg.data, dtype=np.float32)
    if state.shape != (dim,) or not np.all(np.isfinite(state)):
        raise InputError(f"state has {state.size} values or non-finite ones; the model expects {dim} finite values")
    return state


def scan_to_points(msg: LaserScan, now: float, max_future: float,
                   pose: tuple[float, float, float] = (0.0, 0.0, 0.0)) -> tuple[np.ndarray, float]:
    """[N, 2] base-frame points of a LaserScan taken at the scanner's `pose` (core.collision_monitor.scan_points) and
    its capture time (its stamp, or `now` without one). InputError for no or too many beams, unusable angles or
    limits, more than a full turn, or a stamp more than `max_future` s ahead of `now`."""
    stamp = stamp_to_sec(msg.header.stamp)
    numbers = (msg.angle_min, msg.angle_increment, msg.range_min, msg.range_max)
    if len(msg.ranges) == 0 or len(msg.ranges) > MAX_BEAMS:
        raise InputError(f"{len(msg.ranges)} ranges (1..{MAX_BEAMS} expected)")
    if not all(map(math.isfinite, numbers)) or msg.angle_increment == 0 or not 0 <= msg.range_min < msg.range_max:
        raise InputError("angles or range limits are not finite, or the increment is 0, or range_min >= range_max")
    if abs(msg.angle_increment) * (len(msg.ranges) - 1) > 2 * math.pi + 1e-3:
        raise InputError(f"{len(msg.ranges)} beams of {msg.angle_increment} rad span more than a full turn")
    if stamp > now + max_future:
        raise InputError(f"stamped {stamp - now:.3f} s in the future")
    points = scan_points(np.asarray(msg.ranges), msg.angle_min, msg.angle_increment, msg.range_min, msg.range_max,
                         pose)
    return points, (min(stamp, now) if stamp > 0 else now)
