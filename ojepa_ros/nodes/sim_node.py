"""sim_node: the embedded simulator as a robot with Gazebo/ros_gz_bridge topic names.

`world: rooms` runs our MuJoCo floor (diff-drive base, /cmd_vel in, camera + odometry out);
`world: gym` wraps any Gymnasium env with an rgb_array render and a Box action space, commanded by
std_msgs/Float64MultiArray as a ros2_control forward-command controller would be.

All simulation (physics and rendering) runs in one thread of its own, as Gazebo's server loop does:
an OpenGL context belongs to the thread that made it, and executor callbacks may run on any thread.
Callbacks only hand commands and reset requests to that loop. Physics advances by the wall time
elapsed between ticks, so the robot moves in real time.

Every message is stamped with the simulation's own clock, the one published on /clock, as Gazebo does:
run the other nodes with use_sim_time (the launch file's and `ojepa agent`'s default with an embedded
simulator). Beside the image goes its CameraInfo (pinhole intrinsics from `camera_fovy`, frame
`camera_optical_frame`, REP-103: z forward, x right, y down). Where tf2_msgs imports (a ROS 2 distro; not
the PyPI wheels), /tf carries odom -> base_link and /tf_static base_link -> camera_link ->
camera_optical_frame and base_link -> laser_link.
"""

from __future__ import annotations

import math
import threading
import time

import numpy as np
import rclpy
from geometry_msgs.msg import Twist
from nav_msgs.msg import Odometry
from rclpy.node import Node
from rosgraph_msgs.msg import Clock
from geometry_msgs.msg import TransformStamped
from rclpy.qos import DurabilityPolicy, QoSProfile
from sensor_msgs.msg import CameraInfo, Image
from std_msgs.msg import Bool, Float64, Float64MultiArray
from std_srvs.srv import Trigger

from ojepa_ros.nodes import params as P
from ojepa_ros.nodes.convert import rgb_to_image, sec_to_stamp, yaw_to_quaternion
from ojepa_ros.nodes.runtime import run_node
from ojepa_ros.sim.rooms_world import CAMERA_HEIGHT, CAMERA_PITCH_DOWN

try:  # on a ROS 2 distro; the PyPI wheels have no tf2_msgs
    from tf2_msgs.msg import TFMessage
except ImportError:
    TFMessage = None

PARAMS = {
    "world": P.one_of("rooms", "rooms: embedded MuJoCo floor; gym: a Gymnasium env", ("rooms", "gym")),
    "gym_env_id": P.Param("InvertedPendulum-v5", "Gymnasium env id used when world is gym"),
    "image_width": P.Param(64, "camera image width, px", lambda v: 8 <= v <= 1024, "must be in 8..1024"),
    "image_height": P.Param(64, "camera image height, px", lambda v: 8 <= v <= 1024, "must be in 8..1024"),
    "camera_fovy": P.Param(90.0, "camera vertical field of view, deg", lambda v: 10 <= v <= 170, "must be in 10..170"),
    "camera_rate": P.positive(20.0, "camera publish rate (and gym step rate), Hz"),
    "odom_rate": P.positive(50.0, "physics tick and /odom, /clock, /collision rate, Hz"),
    "start_pose": P.Param([2.0, 2.0, 0.0], "x, y, yaw the robot starts from and ~/reset returns it to",
                          lambda v: len(v) == 3 and all(math.isfinite(x) for x in v), "must be 3 finite numbers"),
    "cmd_timeout": P.positive(0.5, "s without a command before the base stops"),
    "odom_frame": P.Param("odom", "frame of /odom poses"),
    "base_frame": P.Param("base_link", "child frame of /odom"),
    "camera_frame": P.Param("camera_link", "the camera's body frame (x forward, z up), child of base_frame on /tf_static"),
    "camera_optical_frame": P.Param("camera_optical_frame", "frame of the image and its CameraInfo (z forward, "
                                    "x right, y down), child of camera_frame"),
    "laser_frame": P.Param("laser_link", "the scanner's frame, child of base_frame on /tf_static"),
    "laser_mount": P.Param([0.0, 0.0, 0.2], "x, y, z of laser_frame in base_frame, m",
                           lambda v: len(v) == 3 and all(math.isfinite(x) for x in v), "must be 3 finite numbers"),
}
# base_link -> camera_link: where rooms_world mounts the camera (half-way to the rim, pitched down);
# camera_link -> optical frame: the fixed REP-103 rotation (roll -90 deg, yaw -90 deg).
OPTICAL_ROTATION = (-0.5, 0.5, -0.5, 0.5)  # x, y, z, w


def camera_info(width: int, height: int, fovy_deg: float, stamp, frame_id: str) -> CameraInfo:
    """Ideal pinhole intrinsics of a camera with vertical field of view fovy and square pixels (MuJoCo's)."""
    f = (height / 2.0) / math.tan(math.radians(fovy_deg) / 2.0)
    cx, cy = (width - 1) / 2.0, (height - 1) / 2.0  # pixel centres at integer coordinates
    info = CameraInfo(width=width, height=height, distortion_model="plumb_bob", d=[0.0] * 5,
                      k=[f, 0.0, cx, 0.0, f, cy, 0.0, 0.0, 1.0], r=[1.0, 0.0, 0.0, 0.0, 1.0, 0.0, 0.0, 0.0, 1.0],
                      p=[f, 0.0, cx, 0.0, 0.0, f, cy, 0.0, 0.0, 0.0, 1.0, 0.0])
    info.header.stamp, info.header.frame_id = stamp, frame_id
    return info


def transform(stamp, parent: str, child: str, xyz=(0.0, 0.0, 0.0), xyzw=(0.0, 0.0, 0.0, 1.0)) -> TransformStamped:
    t = TransformStamped()
    t.header.stamp, t.header.frame_id, t.child_frame_id = stamp, parent, child
    t.transform.translation.x, t.transform.translation.y, t.transform.translation.z = map(float, xyz)
    q = t.transform.rotation
    q.x, q.y, q.z, q.w = map(float, xyzw)
    return t



class SimNode(Node):
    def __init__(self, **kwargs) -> None:
        super().__init__("sim_node", **kwargs)
        self.p = P.declare(self, PARAMS)
        self.gym = self.p["world"] == "gym"
        self.image_pub = self.create_publisher(Image, "camera/image_raw", 5)
        self.info_pub = self.create_publisher(CameraInfo, "camera/camera_info", 5)
        self.clock_pub = self.create_publisher(Clock, "/clock", 10)
        self.tf_pub = self.tf_static_pub = None
        if TFMessage is None:
            self.get_logger().info("tf2_msgs is not installed (the PyPI wheels lack it): no /tf; the odom -> "
                                   "base_link pose is in /odom")
        elif not self.gym:
            self.tf_pub = self.create_publisher(TFMessage, "tf", 50)
            self.tf_static_pub = self.create_publisher(
                TFMessage, "tf_static", QoSProfile(depth=1, durability=DurabilityPolicy.TRANSIENT_LOCAL))
        if self.gym:
            self.obs_pub = self.create_publisher(Float64MultiArray, "sim/observation", 10)
            self.reward_pub = self.create_publisher(Float64, "sim/reward", 10)
            self.create_subscription(Float64MultiArray, "commands", self._on_array, 10)
        else:
            self.odom_pub = self.create_publisher(Odometry, "odom", 10)
            self.collision_pub = self.create_publisher(Bool, "collision", 10)
            self.create_subscription(Twist, "cmd_vel", self._on_twist, 10)
        self.create_service(Trigger, "~/reset", self._on_reset)
        self._lock = threading.Lock()
        self._command: np.ndarray | None = None
        self._command_time = -math.inf
        self._reset_done: threading.Event | None = None
        self._running = True
        self._ready = threading.Event()
        self._thread = threading.Thread(target=self._loop, name="sim_loop", daemon=True)
        self._thread.start()
        self._ready.wait(timeout=30.0)

    # -- callbacks: hand over to the loop --------------------------------------------------
    def _on_twist(self, msg: Twist) -> None:
        cmd = np.array([msg.linear.x, msg.angular.z])
        if not np.all(np.isfinite(cmd)):
            self.get_logger().error("cmd_vel contains NaN or inf; stopping the base", throttle_duration_sec=1.0)
            cmd = np.zeros(2)
        self._set_command(cmd)

    def _on_array(self, msg: Float64MultiArray) -> None:
        cmd = np.asarray(msg.data, dtype=np.float64)
        if cmd.shape != (self.action_dim,) or not np.all(np.isfinite(cmd)):
            self.get_logger().error(f"command has {cmd.size} values or non-finite ones; expected {self.action_dim} "
                                    "finite values; holding zero", throttle_duration_sec=1.0)
            cmd = np.zeros(self.action_dim)
        self._set_command(cmd)

    def _set_command(self, cmd: np.ndarray) -> None:
        with self._lock:
            self._command, self._command_time = cmd, time.monotonic()

    def _current_command(self) -> np.ndarray:
        with self._lock:
            fresh = self._command is not None and time.monotonic() - self._command_time <= self.p["cmd_timeout"]
            return self._command if fresh else np.zeros(self.action_dim)

    def _on_reset(self, _req: Trigger.Request, resp: Trigger.Response) -> Trigger.Response:
        done = threading.Event()
        with self._lock:
            self._reset_done = done
        resp.success = done.wait(timeout=2.0)
        resp.message = f"reset to {list(self.p['start_pose'])}" if not self.gym else "env reset"
        return resp

    # -- the simulation loop ---------------------------------------------------------------
    def _loop(self) -> None:
        env = self._make_env()
        self._ready.set()
        tick = 1.0 / (self.p["camera_rate"] if self.gym else self.p["odom_rate"])
        next_tick = next_frame = last = time.monotonic()
        try:
            while self._running and rclpy.ok(context=self.context):
                now = time.monotonic()
                if now < next_tick:
                    time.sleep(next_tick - now)
                    continue
                next_tick = max(next_tick + tick, now)
                self._handle_reset(env)
                if self.gym:
                    self._step_gym(env)
                    continue
                env.set_command(*self._current_command())
                env.advance(min(now - last, 0.1))
                last = now
                self._publish_state(env)
                if now >= next_frame:
                    next_frame = max(next_frame + 1.0 / self.p["camera_rate"], now)
                    self._publish_image(env.camera_image(), sec_to_stamp(env.sim_time))
        finally:
            env.close()

    def _make_env(self):
        if self.gym:
            from ojepa_ros.sim.gym_adapter import GymImageSim

            env = GymImageSim(self.p["gym_env_id"], self.p["image_width"], self.p["image_height"])
            self.action_dim = env.action_dim
            self._gym_time = 0.0
            env.reset()
            return env
        from ojepa_ros.sim.nav_env import NavEnvConfig, RoomsNavEnv

        env = RoomsNavEnv(NavEnvConfig(image_width=self.p["image_width"], image_height=self.p["image_height"],
                                       camera_fovy=self.p["camera_fovy"]))
        self.action_dim = 2
        env.reset(options={"start": tuple(self.p["start_pose"])})
        self._publish_static_frames(env.config.robot_radius)
        return env

    def _handle_reset(self, env) -> None:
        with self._lock:
            done, self._reset_done = self._reset_done, None
            if done is not None:
                self._command = None
        if done is None:
            return
        if self.gym:
            env.reset()
        else:
            env.set_pose(*self.p["start_pose"])
        done.set()

    def _step_gym(self, env) -> None:
        image, obs, reward, finished = env.step(self._current_command())
        self._gym_time += 1.0 / self.p["camera_rate"]
        if finished:
            env.reset()
        self.obs_pub.publish(Float64MultiArray(data=obs.tolist()))
        self.reward_pub.publish(Float64(data=float(reward)))
        stamp = sec_to_stamp(self._gym_time)
        self.clock_pub.publish(Clock(clock=stamp))
        self._publish_image(image, stamp)

    def _publish_state(self, env) -> None:
        x, y, yaw, v, w = env.odometry()
        stamp = sec_to_stamp(env.sim_time)
        self.clock_pub.publish(Clock(clock=stamp))  # first: a node on sim time then never sees a stamp from its future
        odom = Odometry()
        odom.header.stamp = stamp
        odom.header.frame_id = self.p["odom_frame"]
        odom.child_frame_id = self.p["base_frame"]
        odom.pose.pose.position.x, odom.pose.pose.position.y = float(x), float(y)
        odom.pose.pose.orientation = yaw_to_quaternion(float(yaw))
        odom.twist.twist.linear.x, odom.twist.twist.angular.z = float(v), float(w)
        self.odom_pub.publish(odom)
        self.collision_pub.publish(Bool(data=bool(env.in_collision())))
        if self.tf_pub is not None:
            self.tf_pub.publish(TFMessage(transforms=[transform(stamp, odom.header.frame_id, odom.child_frame_id,
                                                                (x, y, 0.0), (0.0, 0.0, math.sin(yaw / 2), math.cos(yaw / 2)))]))

    def _publish_static_frames(self, robot_radius: float) -> None:
        if self.tf_static_pub is None:
            return
        stamp, base = sec_to_stamp(0.0), self.p["base_frame"]
        pitch = CAMERA_PITCH_DOWN / 2.0  # a positive pitch about y tilts x (forward) down
        self.tf_static_pub.publish(TFMessage(transforms=[
            transform(stamp, base, self.p["camera_frame"], (robot_radius / 2, 0.0, CAMERA_HEIGHT),
                      (0.0, math.sin(pitch), 0.0, math.cos(pitch))),
            transform(stamp, self.p["camera_frame"], self.p["camera_optical_frame"], xyzw=OPTICAL_ROTATION),
            transform(stamp, base, self.p["laser_frame"], self.p["laser_mount"]),
        ]))

    def _publish_image(self, rgb: np.ndarray, stamp) -> None:
        frame = self.p["camera_optical_frame"]
        self.image_pub.publish(rgb_to_image(rgb, stamp, frame))
        self.info_pub.publish(camera_info(int(rgb.shape[1]), int(rgb.shape[0]), self.p["camera_fovy"], stamp, frame))

    def destroy_node(self) -> None:
        self._running = False
        self._thread.join(timeout=5.0)
        super().destroy_node()


def main(args: list[str] | None = None) -> None:
    run_node(SimNode, args)


if __name__ == "__main__":
    main()
