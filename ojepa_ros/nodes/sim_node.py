"""sim_node: the embedded simulator as a robot with Gazebo/ros_gz_bridge topic names.

`world: rooms` runs our MuJoCo floor (diff-drive base, /cmd_vel in, camera + odometry out);
`world: gym` wraps any Gymnasium env with an rgb_array render and a Box action space, commanded by
std_msgs/Float64MultiArray as a ros2_control forward-command controller would be.
Physics advances by the wall time elapsed between ticks, so the robot moves in real time.
"""

from __future__ import annotations

import math
import time

import numpy as np
import rclpy
from geometry_msgs.msg import Twist
from nav_msgs.msg import Odometry
from rclpy.node import Node
from rosgraph_msgs.msg import Clock
from sensor_msgs.msg import Image
from std_msgs.msg import Bool, Float64, Float64MultiArray
from std_srvs.srv import Trigger

from ojepa_ros.nodes import params as P
from ojepa_ros.nodes.convert import rgb_to_image, sec_to_stamp, yaw_to_quaternion
from ojepa_ros.nodes.runtime import run_node

PARAMS = {
    "world": P.one_of("rooms", "rooms: embedded MuJoCo floor; gym: a Gymnasium env", ("rooms", "gym")),
    "gym_env_id": P.Param("InvertedPendulum-v5", "Gymnasium env id used when world is gym"),
    "image_width": P.Param(64, "camera image width, px", lambda v: 8 <= v <= 1024, "must be in 8..1024"),
    "image_height": P.Param(64, "camera image height, px", lambda v: 8 <= v <= 1024, "must be in 8..1024"),
    "camera_fovy": P.Param(90.0, "camera vertical field of view, deg", lambda v: 10 <= v <= 170, "must be in 10..170"),
    "camera_rate": P.positive(20.0, "camera publish rate, Hz"),
    "odom_rate": P.positive(50.0, "physics tick and /odom, /clock, /collision rate, Hz"),
    "start_pose": P.Param([2.0, 2.0, 0.0], "x, y, yaw the robot starts from and ~/reset returns it to",
                          lambda v: len(v) == 3 and all(math.isfinite(x) for x in v), "must be 3 finite numbers"),
    "cmd_timeout": P.positive(0.5, "s without a command before the base stops"),
    "odom_frame": P.Param("odom", "frame of /odom poses"),
    "base_frame": P.Param("base_link", "child frame of /odom"),
    "camera_frame": P.Param("camera_link", "frame of /camera/image_raw"),
}


class SimNode(Node):
    def __init__(self, **kwargs) -> None:
        super().__init__("sim_node", **kwargs)
        self.p = P.declare(self, PARAMS)
        self.image_pub = self.create_publisher(Image, "/camera/image_raw", 5)
        self.clock_pub = self.create_publisher(Clock, "/clock", 10)
        self._command = np.zeros(2)
        self._command_time = -math.inf
        self._last_tick = time.monotonic()
        if self.p["world"] == "gym":
            self._start_gym()
        else:
            self._start_rooms()
        self.create_service(Trigger, "~/reset", self._on_reset)
        self.create_timer(1.0 / self.p["camera_rate"], self._publish_camera)

    # -- embedded rooms world -------------------------------------------------------------
    def _start_rooms(self) -> None:
        from ojepa_ros.sim.nav_env import NavEnvConfig, RoomsNavEnv

        cfg = NavEnvConfig(image_width=self.p["image_width"], image_height=self.p["image_height"],
                           camera_fovy=self.p["camera_fovy"])
        self.env = RoomsNavEnv(cfg)
        self.env.reset(options={"start": tuple(self.p["start_pose"])})
        self.odom_pub = self.create_publisher(Odometry, "/odom", 10)
        self.collision_pub = self.create_publisher(Bool, "/collision", 10)
        self.create_subscription(Twist, "/cmd_vel", self._on_twist, 10)
        self.create_timer(1.0 / self.p["odom_rate"], self._tick_rooms)

    def _on_twist(self, msg: Twist) -> None:
        cmd = np.array([msg.linear.x, msg.angular.z])
        if not np.all(np.isfinite(cmd)):
            self.get_logger().error("cmd_vel contains NaN or inf; stopping the base")
            cmd = np.zeros(2)
        self._command, self._command_time = cmd, time.monotonic()

    def _current_command(self) -> np.ndarray:
        fresh = time.monotonic() - self._command_time <= self.p["cmd_timeout"]
        return self._command if fresh else np.zeros_like(self._command)

    def _elapsed(self) -> float:
        now = time.monotonic()
        dt, self._last_tick = min(now - self._last_tick, 0.1), now
        return dt

    def _tick_rooms(self) -> None:
        self.env.set_command(*self._current_command())
        self.env.advance(self._elapsed())
        stamp = self.get_clock().now().to_msg()
        x, y, yaw, v, w = self.env.odometry()
        odom = Odometry()
        odom.header.stamp = stamp
        odom.header.frame_id = self.p["odom_frame"]
        odom.child_frame_id = self.p["base_frame"]
        odom.pose.pose.position.x, odom.pose.pose.position.y = float(x), float(y)
        odom.pose.pose.orientation = yaw_to_quaternion(float(yaw))
        odom.twist.twist.linear.x, odom.twist.twist.angular.z = float(v), float(w)
        self.odom_pub.publish(odom)
        self.collision_pub.publish(Bool(data=bool(self.env.in_collision())))
        self.clock_pub.publish(Clock(clock=sec_to_stamp(self.env.sim_time)))

    # -- any Gymnasium env ----------------------------------------------------------------
    def _start_gym(self) -> None:
        from ojepa_ros.sim.gym_adapter import GymImageSim

        self.env = GymImageSim(self.p["gym_env_id"], self.p["image_width"], self.p["image_height"])
        self._image, self._obs = self.env.reset()
        self._command = np.zeros(self.env.action_dim)
        self._sim_time = 0.0
        self.obs_pub = self.create_publisher(Float64MultiArray, "/sim/observation", 10)
        self.reward_pub = self.create_publisher(Float64, "/sim/reward", 10)
        self.create_subscription(Float64MultiArray, "/commands", self._on_array, 10)

    def _on_array(self, msg: Float64MultiArray) -> None:
        cmd = np.asarray(msg.data, dtype=np.float64)
        if cmd.shape != (self.env.action_dim,) or not np.all(np.isfinite(cmd)):
            self.get_logger().error(
                f"command has {cmd.size} values or non-finite ones; expected {self.env.action_dim} finite values; "
                "holding zero")
            cmd = np.zeros(self.env.action_dim)
        self._command, self._command_time = cmd, time.monotonic()

    def _step_gym(self) -> None:
        self._image, self._obs, reward, done = self.env.step(self._current_command())
        self._sim_time += 1.0 / self.p["camera_rate"]
        if done:
            self._image, self._obs = self.env.reset()
        self.obs_pub.publish(Float64MultiArray(data=self._obs.tolist()))
        self.reward_pub.publish(Float64(data=float(reward)))
        self.clock_pub.publish(Clock(clock=sec_to_stamp(self._sim_time)))

    # -- shared -----------------------------------------------------------------------------
    def _publish_camera(self) -> None:
        if self.p["world"] == "gym":
            self._step_gym()
            rgb = self._image
        else:
            rgb = self.env.camera_image()
        self.image_pub.publish(rgb_to_image(rgb, self.get_clock().now().to_msg(), self.p["camera_frame"]))

    def _on_reset(self, _req: Trigger.Request, resp: Trigger.Response) -> Trigger.Response:
        start = self.p["start_pose"]
        if self.p["world"] == "gym":
            self._image, self._obs = self.env.reset()
        else:
            self.env.set_pose(*start)
        self._command = np.zeros_like(self._command)
        resp.success, resp.message = True, f"reset to {list(start)}"
        return resp

    def destroy_node(self) -> None:
        self.env.close()
        super().destroy_node()


def main(args: list[str] | None = None) -> None:
    run_node(SimNode, args)


if __name__ == "__main__":
    main()
