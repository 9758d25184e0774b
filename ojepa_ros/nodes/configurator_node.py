"""configurator_node: sets up the task by setting the parameters of the nodes it manages.

Goals come from /goal_pose (RViz "2D Goal Pose", and navigator_node's NavigateToPose goals) or from a task file
in config/tasks/ named by the `task` parameter; a task's goal_image is published (latched) on /goal_image for the
actor. A /goal_pose goal keeps its yaw: the planner node turns to it at the goal (goal_yaw, goal_yaw_active); a
task file's goal has none. A goal is refused
when it holds NaN/inf or an orientation that is no rotation (a zero quaternion), is in another frame, or lies
outside `world_bounds`; refusals are logged at most once a second.
A goal equal to the active one (RViz users click twice, tools resend) changes nothing: no new parameters, no
new /ojepa/goal, so no new memory episode.

A managed node that restarts has lost what was set on it: when the actor reports `idle` while a goal is
active (and nothing was pushed for RESTORE_AFTER), the configurator pushes every value it has set on the
managed nodes again, so a restarted actor drives on to the same goal. A restarted configurator has lost the
goal instead: it asks the planner node for its goal first and adopts an active one (republishing it on
/ojepa/goal), and then applies its start-up task without that task's goal.
"""

from __future__ import annotations

import math
import time

import cv2
from geometry_msgs.msg import PoseStamped
from rcl_interfaces.msg import Parameter as ParameterMsg
from rcl_interfaces.srv import GetParameters, SetParameters
from rclpy.node import Node
from rclpy.parameter import Parameter
from sensor_msgs.msg import Image
from std_msgs.msg import Empty, String
from std_srvs.srv import Trigger

from ojepa_ros.core.safety import within_bounds
from ojepa_ros.core.task import TaskError, load_task
from ojepa_ros.nodes import params as P
from ojepa_ros.nodes.convert import InputError, goal_xy_yaw, rgb_to_image, yaw_to_quaternion
from ojepa_ros.nodes.halt_lane import HALT_QOS, HALT_TOPIC
from ojepa_ros.nodes.qos import LATCHED
from ojepa_ros.nodes.runtime import run_node
from ojepa_ros.paths import task_file

PARAMS = {
    "task": P.Param("", "task file name in config/tasks/ (no .yaml) applied at start-up and when set"),
    "world_bounds": P.Param([0.0, 0.0, 8.0, 8.0], "xmin, ymin, xmax, ymax: goals outside are refused",
                            P.valid_bounds, "must be 4 finite numbers with xmin < xmax and ymin < ymax"),
    "goal_frame": P.Param("odom", "frame goals must be given in (an empty frame_id is taken as this one)"),
    "managed_nodes": P.Param(["actor_node", "cost_node"], "nodes whose goal and weight parameters are set"),
    "planner_node": P.Param("actor_node", "the managed node that takes a task's planner settings"),
}
RESTORE_AFTER = 1.0  # s since the last push before an idle actor with an active goal counts as restarted
ASK_AGAIN_AFTER = 1.0  # s without an answer before the planner node is asked for its goal again
ASK_TRIES = 5  # unanswered questions before the start-up task is applied as after a fresh start
ADOPTED = ("goal_active", "goal_x", "goal_y", "goal_yaw_active", "goal_yaw")  # the planner node's goal, read back


class ConfiguratorNode(Node):
    def __init__(self, **kwargs) -> None:
        super().__init__("configurator_node", **kwargs)
        self.p = P.declare(self, PARAMS, self._on_params)
        self.goal_pub = self.create_publisher(PoseStamped, "ojepa/goal", LATCHED)
        self.goal_image_pub = self.create_publisher(Image, "goal_image", LATCHED)
        self.halt_pub = self.create_publisher(Empty, HALT_TOPIC, HALT_QOS)
        self.create_subscription(PoseStamped, "goal_pose", self._on_goal_pose, 10)
        self.create_service(Trigger, "~/cancel_goal", self._on_cancel)
        self.active_goal: tuple[float, float, float | None] | None = None  # x, y, yaw; until cancelled or reached
        self._pushed: dict[str, dict] = {}  # node -> every value set on it so far (what a restart loses)
        self._last_push = -math.inf
        self._waiting: dict[str, dict] = {}  # node -> values not yet delivered (its service was not there)
        self.create_timer(0.2, self._send_waiting)
        self.restores = 0
        self.create_subscription(String, "ojepa/actor_status", self._on_actor_status, LATCHED)
        self._param_clients = {name: self.create_client(SetParameters, f"{name}/set_parameters")
                         for name in self.p["managed_nodes"]}
        self._adopted = self.p["planner_node"] not in self._param_clients  # nothing to ask
        self._goal_client = self.create_client(GetParameters, f"{self.p['planner_node']}/get_parameters")
        self._question = None  # the pending get_parameters call (a future), if any
        self._asked_at = -math.inf  # monotonic s when it was sent
        self._tries = 0  # questions sent so far
        self._startup = self.create_timer(0.2, self._start_up)

    def _start_up(self) -> None:
        """Ask the planner node for a goal it already drives to (this configurator restarted); then, once every
        managed node is there, apply the start-up task (without its goal when one was adopted)."""
        if not self._adopted:
            self._ask_planner_goal()
            return
        if not self.p["task"]:
            self._startup.cancel()
        elif all(c.service_is_ready() for c in self._param_clients.values()):
            self._startup.cancel()
            self.apply_task(self.p["task"], with_goal=self.active_goal is None)

    def _ask_planner_goal(self) -> None:
        """Ask again when no answer came within ASK_AGAIN_AFTER: Fast DDS drops a response whose client it has
        not matched yet ("failed to send response"). After ASK_TRIES the planner node counts as driving nowhere."""
        if self._question is not None:
            if time.monotonic() - self._asked_at < ASK_AGAIN_AFTER:
                return
            self._goal_client.remove_pending_request(self._question)
            self._question = None
            if self._tries >= ASK_TRIES:
                self.get_logger().warning(f"{self.p['planner_node']} did not answer get_parameters {self._tries} "
                                          "times; no goal adopted")
                self._adopted = True
                return
        if self._goal_client.service_is_ready():
            self._tries += 1
            self._asked_at = time.monotonic()
            self._question = self._goal_client.call_async(GetParameters.Request(names=list(ADOPTED)))
            self._question.add_done_callback(self._on_planner_goal)

    def _on_planner_goal(self, future) -> None:
        if future is not self._question:
            return  # an answer to a question already asked again
        self._question = None
        try:
            goal = {n: Parameter.from_parameter_msg(ParameterMsg(name=n, value=v)).value
                    for n, v in zip(ADOPTED, future.result().values, strict=True)}
        except Exception as err:  # noqa: BLE001 - an old or odd planner node: nothing to adopt
            self.get_logger().warning(f"could not read {self.p['planner_node']}'s goal ({err}); none adopted")
            goal = {"goal_active": False}
        if goal["goal_active"] and self.active_goal is None:
            x, y = float(goal["goal_x"]), float(goal["goal_y"])
            yaw = float(goal["goal_yaw"]) if goal["goal_yaw_active"] else None
            self.get_logger().info(f"{self.p['planner_node']} drives to ({x:.2f}, {y:.2f}): adopting that goal")
            self.active_goal = (x, y, yaw)
            self._pushed.setdefault(self.p["planner_node"], {}).update(goal)
            self._publish_goal(x, y, yaw)
        self._adopted = True

    def _on_params(self, changed: set[str]) -> None:
        if "task" in changed and self.p["task"]:
            self.apply_task(self.p["task"])

    def apply_task(self, name: str, with_goal: bool = True) -> None:
        try:
            task = load_task(task_file(name))
        except TaskError as err:
            self.get_logger().error(f"task '{name}' not applied: {err}")
            return
        self._push({f"weight_{k}": v for k, v in task.weights.items()})
        if task.planner:
            self._push(task.planner, only=self.p["planner_node"])
        if task.goal is not None and with_goal:
            self.set_goal(*task.goal)
        if task.goal_image is not None and with_goal:
            bgr = cv2.imread(str(task.goal_image), cv2.IMREAD_COLOR)
            if bgr is None:
                self.get_logger().error(f"task '{name}': {task.goal_image} is not a readable image; goal not set")
                return
            self.goal_image_pub.publish(rgb_to_image(bgr[..., ::-1], self.get_clock().now().to_msg(), ""))
        self.get_logger().info(f"task '{name}' applied")

    def _on_goal_pose(self, msg: PoseStamped) -> None:
        try:
            x, y, yaw = goal_xy_yaw(msg, self.p["goal_frame"])
        except InputError as err:
            self.get_logger().error(f"goal refused: {err}", throttle_duration_sec=1.0)
            return
        self.set_goal(x, y, yaw)

    def set_goal(self, x: float, y: float, yaw: float | None = None) -> None:
        """Drive the managed nodes to (x, y); the planner node also turns to `yaw` there when one is given."""
        if not within_bounds((x, y), self.p["world_bounds"]):
            self.get_logger().error(f"goal refused: ({x:.3g}, {y:.3g}) is outside world_bounds "
                                    f"{list(self.p['world_bounds'])}", throttle_duration_sec=1.0)
            return
        goal = (float(x), float(y), None if yaw is None else float(yaw))
        if self.active_goal == goal:
            self.get_logger().debug(f"goal {goal} is already the active goal")
            return
        self.active_goal = goal
        position = {"goal_x": goal[0], "goal_y": goal[1], "goal_active": True}
        heading = {"goal_yaw": goal[2] or 0.0, "goal_yaw_active": goal[2] is not None}
        for name in self._param_clients:  # one request a node: the planner never sees the position without the yaw
            self._push({**position, **heading} if name == self.p["planner_node"] else position, only=name)
        self._publish_goal(*goal)

    def _publish_goal(self, x: float, y: float, yaw: float | None) -> None:
        goal = PoseStamped()
        goal.header.stamp = self.get_clock().now().to_msg()
        goal.header.frame_id = self.p["goal_frame"]
        goal.pose.position.x, goal.pose.position.y = float(x), float(y)
        goal.pose.orientation = yaw_to_quaternion(yaw or 0.0)
        self.goal_pub.publish(goal)
        self.get_logger().info(f"goal set to ({x:.2f}, {y:.2f})" + ("" if yaw is None else f", yaw {yaw:.2f}"))

    def _on_actor_status(self, msg: String) -> None:
        if msg.data == "reached" or msg.data.startswith("failed"):  # reached, or given up stuck
            self.active_goal = None
        elif (msg.data == "idle" and self.active_goal is not None
              and time.monotonic() - self._last_push > RESTORE_AFTER):
            self.get_logger().warning(f"the actor is idle with goal {self.active_goal} active (restarted?); "
                                      "setting its goal and task again")
            self.restores += 1
            for name, values in list(self._pushed.items()):
                self._push(dict(values), only=name)

    def _on_cancel(self, _req: Trigger.Request, resp: Trigger.Response) -> Trigger.Response:
        """Halt the actor at once (its halt lane brakes while a planning step runs), then drop its goal."""
        self.halt_pub.publish(Empty())
        self._push({"goal_active": False})
        self.active_goal = None
        resp.success, resp.message = True, "goal cancelled"
        return resp

    def _push(self, values: dict, only: str | None = None) -> None:
        """Set parameters on the managed nodes (or one of them); each refusal is logged with its reason. A node
        whose parameter service is not there (yet, or again after a restart) gets the values when it is."""
        self._last_push = time.monotonic()
        for name, client in self._param_clients.items():
            if only is not None and name != only:
                continue
            self._pushed.setdefault(name, {}).update(values)
            self._waiting.setdefault(name, {}).update(values)
            if not client.service_is_ready():
                self.get_logger().warning(f"{name} is not available yet; it gets {sorted(self._waiting[name])} "
                                          "when it is", throttle_duration_sec=1.0)
                continue
            self._send(name)

    def _send(self, name: str) -> None:
        values = self._waiting.pop(name, {})
        request = SetParameters.Request(parameters=[Parameter(k, value=v).to_parameter_msg()
                                                    for k, v in values.items()])
        future = self._param_clients[name].call_async(request)
        future.add_done_callback(lambda f, n=name, r=request.parameters: self._check(n, r, f))

    def _send_waiting(self) -> None:
        for name in [n for n, values in self._waiting.items() if values]:
            if self._param_clients[name].service_is_ready():
                self._send(name)

    def _check(self, name: str, sent: list[ParameterMsg], future) -> None:
        for param, result in zip(sent, future.result().results):
            if not result.successful:
                self.get_logger().error(f"{name} refused {param.name}: {result.reason}")


def main(args: list[str] | None = None) -> None:
    run_node(ConfiguratorNode, args)


if __name__ == "__main__":
    main()
