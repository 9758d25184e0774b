"""sim_node: the embedded simulator as a robot with Gazebo/ros_gz_bridge topic names.

`world: rooms` runs our MuJoCo floor (diff-drive base, /cmd_vel in; camera, odometry, bumper and a planar
range scanner out) in the layout `rooms_layout` names (the four-room world or a generated `seed_N`);
obstacles can be dropped in and taken out while it runs, as Gazebo's create / remove services do;
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
camera_optical_frame and base_link -> scan_frame (laser_link).

A managed node (nodes/lifecycle.py): configure opens the world in the simulation thread, cleanup closes it;
time and physics advance only while active (inactive, the world holds still; ~/reset still works).
"""

from __future__ import annotations

import math
import threading
import time

import numpy as np
import rclpy
from nav_msgs.msg import Odometry
from rosgraph_msgs.msg import Clock
from geometry_msgs.msg import TransformStamped
from rclpy.qos import DurabilityPolicy, QoSProfile
from sensor_msgs.msg import CameraInfo, Image, LaserScan
from std_msgs.msg import Bool, Float64, Float64MultiArray
from std_srvs.srv import Trigger
from visualization_msgs.msg import Marker

from ojepa_ros.nodes import params as P
from ojepa_ros.nodes.convert import rgb_to_image, sec_to_stamp, yaw_to_quaternion
from ojepa_ros.nodes.lifecycle import ManagedNode
from ojepa_ros.nodes.runtime import run_node
from ojepa_ros.nodes.velocity import STAMPED_PARAM, velocity_of, velocity_type
from ojepa_ros.sim.rooms_world import pinhole, static_frames

try:  # on a ROS 2 distro; the PyPI wheels have no tf2_msgs
    from tf2_msgs.msg import TFMessage
except ImportError:
    TFMessage = None

PARAMS = {
    "world": P.one_of("rooms", "rooms: embedded MuJoCo floor; gym: a Gymnasium env", ("rooms", "gym")),
    "rooms_layout": P.Param("four_rooms", "floor plan of the rooms world: four_rooms or a generated seed_N",
                            lambda v: v == "four_rooms" or (v.startswith("seed_") and v[5:].isdigit()),
                            "must be four_rooms or seed_N"),
    "scan_rate": P.positive(10.0, "/scan publish rate, Hz (rooms)"),
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
    "scan_frame": P.Param("laser_link", "frame of /scan (the scanner sits at the base's centre, scan_height up), "
                          "child of base_frame on /tf_static"),
    "enable_stamped_cmd_vel": STAMPED_PARAM,
}
OBSTACLE_SHAPES = {Marker.CUBE: "box", Marker.CYLINDER: "cylinder"}


def camera_info(width: int, height: int, fovy_deg: float, stamp, frame_id: str) -> CameraInfo:
    """Ideal pinhole intrinsics of a camera with vertical field of view fovy and square pixels (MuJoCo's)."""
    f, cx, cy = pinhole(width, height, fovy_deg)
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



class SimNode(ManagedNode):
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
            self.scan_pub = self.create_publisher(LaserScan, "scan", 5)
            self.create_subscription(velocity_type(self.p["enable_stamped_cmd_vel"]), "cmd_vel", self._on_twist, 10)
            self.create_subscription(Marker, "sim/obstacles", self._on_obstacle, 10)
            self.create_service(Trigger, "~/clear_obstacles", self._on_clear_obstacles)
        self.create_service(Trigger, "~/reset", self._on_reset)
        self._lock = threading.Lock()
        self._obstacle_requests: list[Marker | None] = []  # None: take every dropped obstacle out
        self._command: np.ndarray | None = None
        self._command_time = -math.inf
        self._reset_done: threading.Event | None = None
        self._running = False
        self._ready = threading.Event()
        self._thread: threading.Thread | None = None
        self._open_error = ""  # why the simulation thread could not open the world

    def configure(self) -> str | None:
        """Open the world in a simulation thread of its own (its OpenGL context belongs to that thread)."""
        self._running, self._open_error = True, ""
        self._ready.clear()
        self._thread = threading.Thread(target=self._loop, name="sim_loop", daemon=True)
        self._thread.start()
        if not self._ready.wait(timeout=30.0):
            return "the simulated world did not open within 30 s"
        return self._open_error or None

    def activate(self) -> None:
        if not self.gym:
            self._publish_static_frames(*self._mounts)

    def cleanup(self) -> None:
        self._running = False
        if self._thread is not None:
            self._thread.join(timeout=5.0)
        self._thread = None

    # -- callbacks: hand over to the loop --------------------------------------------------
    def _on_twist(self, msg) -> None:
        cmd = np.array(velocity_of(msg))
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

    def _on_obstacle(self, msg: Marker) -> None:
        """A CUBE or CYLINDER Marker (frame odom: pose position, scale x/y/z, color) adds or moves obstacle
        `ns/id`; DELETE takes it out, DELETEALL takes out every dropped one. Anything else is refused."""
        try:
            if msg.action == Marker.ADD:
                self._obstacle_box(msg)  # validate here, where the error can be logged at once
            elif msg.action not in (Marker.DELETE, Marker.DELETEALL):
                raise ValueError(f"action {msg.action} is not ADD (0), DELETE (2) or DELETEALL (3)")
        except ValueError as err:
            self.get_logger().error(f"/sim/obstacles refused: {err}", throttle_duration_sec=1.0)
            return
        with self._lock:
            self._obstacle_requests.append(None if msg.action == Marker.DELETEALL else msg)

    def _on_clear_obstacles(self, _req: Trigger.Request, resp: Trigger.Response) -> Trigger.Response:
        with self._lock:
            self._obstacle_requests.append(None)
        resp.success, resp.message = True, "dropped obstacles removed"
        return resp

    def _obstacle_box(self, msg: Marker):
        from ojepa_ros.sim.rooms_world import Box

        if msg.type not in OBSTACLE_SHAPES:
            raise ValueError(f"marker type {msg.type} is neither CUBE (1) nor CYLINDER (3)")
        if msg.header.frame_id not in ("", self.p["odom_frame"]):
            raise ValueError(f"frame {msg.header.frame_id!r} is not {self.p['odom_frame']!r}")
        p, sc, c = msg.pose.position, msg.scale, msg.color
        values = (p.x, p.y, sc.x, sc.y, sc.z)
        if not all(math.isfinite(v) for v in values) or not all(0.02 <= v <= 5.0 for v in values[2:]) \
                or max(abs(p.x), abs(p.y)) > 1e3:
            raise ValueError("position must be finite (|x|, |y| <= 1000 m) and scale x, y, z in 0.02..5 m")
        shape = OBSTACLE_SHAPES[msg.type]
        half = (sc.x / 2, sc.x / 2) if shape == "cylinder" else (sc.x / 2, sc.y / 2)
        rgba = (c.r, c.g, c.b, 1.0) if c.a > 0 else (0.8, 0.2, 0.2, 1.0)
        return Box(f"dropped_{msg.ns}_{msg.id}", (p.x, p.y), half, sc.z, rgba, shape)

    def _on_reset(self, _req: Trigger.Request, resp: Trigger.Response) -> Trigger.Response:
        done = threading.Event()
        with self._lock:
            self._reset_done = done
        resp.success = done.wait(timeout=2.0)
        resp.message = f"reset to {list(self.p['start_pose'])}" if not self.gym else "env reset"
        return resp

    # -- the simulation loop ---------------------------------------------------------------
    def _loop(self) -> None:
        try:
            env = self._make_env()
        except Exception as err:  # noqa: BLE001 - configure reports it; the node stays up, unconfigured
            self._open_error = f"the simulated world did not open ({err.__class__.__name__}: {err})"
            return
        finally:
            self._ready.set()
        tick = 1.0 / (self.p["camera_rate"] if self.gym else self.p["odom_rate"])
        next_tick = next_frame = next_scan = last = time.monotonic()
        try:
            while self._running and rclpy.ok(context=self.context):
                now = time.monotonic()
                if now < next_tick:
                    time.sleep(next_tick - now)
                    continue
                next_tick = max(next_tick + tick, now)
                self._handle_reset(env)
                if not self.active:  # inactive: the world holds still, nothing is published
                    last = now
                    continue
                if self.gym:
                    self._step_gym(env)
                    continue
                self._apply_obstacle_requests(env)
                env.set_command(*self._current_command())
                env.advance(min(now - last, 0.1))
                last = now
                self._publish_state(env)
                if now >= next_scan:
                    next_scan = max(next_scan + 1.0 / self.p["scan_rate"], now)
                    self._publish_scan(env)
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
        from ojepa_ros.sim.world_family import world

        env = RoomsNavEnv(NavEnvConfig(image_width=self.p["image_width"], image_height=self.p["image_height"],
                                       camera_fovy=self.p["camera_fovy"]), world(self.p["rooms_layout"]))
        self._base_layout = env.layout
        self.action_dim = 2
        env.reset(options={"start": tuple(self.p["start_pose"])})
        self._mounts = (env.config.robot_radius, env.config.scan_height)
        return env

    def _apply_obstacle_requests(self, env) -> None:
        with self._lock:
            requests, self._obstacle_requests = self._obstacle_requests, []
        if not requests:
            return
        layout = env.layout
        for msg in requests:
            if msg is None:
                layout = self._base_layout
                continue
            name = f"dropped_{msg.ns}_{msg.id}"
            layout = layout.without(name)
            if msg.action == Marker.ADD:
                layout = layout.with_obstacles((self._obstacle_box(msg),))
        env.set_layout(layout)

    def _publish_scan(self, env) -> None:
        c = env.config
        scan = LaserScan()
        scan.header.stamp = sec_to_stamp(env.sim_time)
        scan.header.frame_id = self.p["scan_frame"]
        scan.angle_min = float(env.scan_angles[0])
        scan.angle_increment = float(env.scan_angles[1] - env.scan_angles[0])
        scan.angle_max = float(env.scan_angles[-1])
        scan.scan_time = 1.0 / self.p["scan_rate"]
        scan.range_min, scan.range_max = float(c.scan_range_min), float(c.scan_range)
        scan.ranges = env.scan().tolist()
        self.scan_pub.publish(scan)

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

    def _publish_static_frames(self, robot_radius: float, scan_height: float) -> None:
        """On activation (latched): where the camera and the scanner sit on the base."""
        if self.tf_static_pub is None:
            return
        stamp = sec_to_stamp(0.0)
        self.tf_static_pub.publish(TFMessage(transforms=[
            transform(stamp, self.p[parent], self.p[child], xyz, xyzw)
            for parent, child, xyz, xyzw in static_frames(robot_radius, scan_height)]))

    def _publish_image(self, rgb: np.ndarray, stamp) -> None:
        frame = self.p["camera_optical_frame"]
        self.image_pub.publish(rgb_to_image(rgb, stamp, frame))
        self.info_pub.publish(camera_info(int(rgb.shape[1]), int(rgb.shape[0]), self.p["camera_fovy"], stamp, frame))

    def destroy_node(self) -> None:
        self.cleanup()
        super().destroy_node()


def main(args: list[str] | None = None) -> None:
    run_node(SimNode, args)


if __name__ == "__main__":
    main()
