"""configurator_node: sets up the task by setting the parameters of the nodes it manages.

Goals come from /goal_pose (RViz "2D Goal Pose") or from a task file in config/tasks/ named by the
`task` parameter; a task's goal_image is published (latched) on /goal_image for the actor. A goal is refused, with one log line, when it holds NaN/inf, is in another frame,
or lies outside `world_bounds`.
"""

from __future__ import annotations

import math

import cv2
from geometry_msgs.msg import PoseStamped
from rcl_interfaces.msg import Parameter as ParameterMsg
from rcl_interfaces.srv import SetParameters
from rclpy.node import Node
from rclpy.parameter import Parameter
from rclpy.qos import DurabilityPolicy, QoSProfile
from sensor_msgs.msg import Image
from std_srvs.srv import Trigger

from ojepa_ros.core.task import TaskError, load_task
from ojepa_ros.nodes import params as P
from ojepa_ros.nodes.convert import InputError, finite_pose_xy_yaw, rgb_to_image, yaw_to_quaternion
from ojepa_ros.nodes.runtime import run_node
from ojepa_ros.paths import task_file

PARAMS = {
    "task": P.Param("", "task file name in config/tasks/ (no .yaml) applied at start-up and when set"),
    "world_bounds": P.Param([0.0, 0.0, 8.0, 8.0], "xmin, ymin, xmax, ymax: goals outside are refused",
                            lambda v: len(v) == 4 and all(map(math.isfinite, v)) and v[0] < v[2] and v[1] < v[3],
                            "must be 4 finite numbers with xmin < xmax and ymin < ymax"),
    "goal_frame": P.Param("odom", "frame goals must be given in (an empty frame_id is taken as this one)"),
    "managed_nodes": P.Param(["actor_node", "cost_node"], "nodes whose goal and weight parameters are set"),
    "planner_node": P.Param("actor_node", "the managed node that takes a task's planner settings"),
}
LATCHED = QoSProfile(depth=1, durability=DurabilityPolicy.TRANSIENT_LOCAL)


class ConfiguratorNode(Node):
    def __init__(self, **kwargs) -> None:
        super().__init__("configurator_node", **kwargs)
        self.p = P.declare(self, PARAMS, self._on_params)
        self.goal_pub = self.create_publisher(PoseStamped, "ojepa/goal", LATCHED)
        self.goal_image_pub = self.create_publisher(Image, "goal_image", LATCHED)
        self.create_subscription(PoseStamped, "goal_pose", self._on_goal_pose, 10)
        self.create_service(Trigger, "~/cancel_goal", self._on_cancel)
        self._param_clients = {name: self.create_client(SetParameters, f"{name}/set_parameters")
                         for name in self.p["managed_nodes"]}
        if self.p["task"]:
            # Give the managed nodes a moment to come up before the start-up task is pushed to them.
            self._startup = self.create_timer(0.5, self._apply_startup_task)

    def _apply_startup_task(self) -> None:
        if all(c.service_is_ready() for c in self._param_clients.values()):
            self._startup.cancel()
            self.apply_task(self.p["task"])

    def _on_params(self, changed: set[str]) -> None:
        if "task" in changed and self.p["task"]:
            self.apply_task(self.p["task"])

    def apply_task(self, name: str) -> None:
        try:
            task = load_task(task_file(name))
        except TaskError as err:
            self.get_logger().error(f"task '{name}' not applied: {err}")
            return
        self._push({f"weight_{k}": v for k, v in task.weights.items()})
        if task.planner:
            self._push(task.planner, only=self.p["planner_node"])
        if task.goal is not None:
            self.set_goal(*task.goal)
        if task.goal_image is not None:
            bgr = cv2.imread(str(task.goal_image), cv2.IMREAD_COLOR)
            if bgr is None:
                self.get_logger().error(f"task '{name}': {task.goal_image} is not a readable image; goal not set")
                return
            self.goal_image_pub.publish(rgb_to_image(bgr[..., ::-1], self.get_clock().now().to_msg(), ""))
        self.get_logger().info(f"task '{name}' applied")

    def _on_goal_pose(self, msg: PoseStamped) -> None:
        try:
            if msg.header.frame_id not in ("", self.p["goal_frame"]):
                raise InputError(f"goal is in frame '{msg.header.frame_id}'; expected '{self.p['goal_frame']}'")
            p = msg.pose.position
            x, y, _ = finite_pose_xy_yaw(p.x, p.y, msg.pose.orientation)
        except InputError as err:
            self.get_logger().error(f"goal refused: {err}")
            return
        self.set_goal(x, y)

    def set_goal(self, x: float, y: float) -> None:
        xmin, ymin, xmax, ymax = self.p["world_bounds"]
        if not (xmin <= x <= xmax and ymin <= y <= ymax):
            self.get_logger().error(f"goal refused: ({x:.2f}, {y:.2f}) is outside world_bounds "
                                    f"{list(self.p['world_bounds'])}")
            return
        self._push({"goal_x": float(x), "goal_y": float(y), "goal_active": True})
        goal = PoseStamped()
        goal.header.stamp = self.get_clock().now().to_msg()
        goal.header.frame_id = self.p["goal_frame"]
        goal.pose.position.x, goal.pose.position.y = float(x), float(y)
        goal.pose.orientation = yaw_to_quaternion(0.0)
        self.goal_pub.publish(goal)
        self.get_logger().info(f"goal set to ({x:.2f}, {y:.2f})")

    def _on_cancel(self, _req: Trigger.Request, resp: Trigger.Response) -> Trigger.Response:
        self._push({"goal_active": False})
        resp.success, resp.message = True, "goal cancelled"
        return resp

    def _push(self, values: dict, only: str | None = None) -> None:
        """Set parameters on the managed nodes (or one of them); each refusal is logged with its reason."""
        request = SetParameters.Request(
            parameters=[Parameter(k, value=v).to_parameter_msg() for k, v in values.items()])
        for name, client in self._param_clients.items():
            if only is not None and name != only:
                continue
            if not client.service_is_ready():
                self.get_logger().error(f"{name} is not available; could not set {sorted(values)}")
                continue
            future = client.call_async(request)
            future.add_done_callback(lambda f, n=name, r=request.parameters: self._check(n, r, f))

    def _check(self, name: str, sent: list[ParameterMsg], future) -> None:
        for param, result in zip(sent, future.result().results):
            if not result.successful:
                self.get_logger().error(f"{name} refused {param.name}: {result.reason}")


def main(args: list[str] | None = None) -> None:
    run_node(ConfiguratorNode, args)


if __name__ == "__main__":
    main()
