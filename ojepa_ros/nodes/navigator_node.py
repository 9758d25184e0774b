"""navigator_node: the NavigateToPose action server, beside the actor as Nav2's bt_navigator is beside its controller.

A goal goes to the actor the way RViz's goals do: published on /goal_pose, which the configurator checks and
sets on the actor; its echo on /ojepa/goal says the actor has it. Feedback (pose, straight-line distance, time
elapsed and remaining, recoveries the actor reported) goes out every FEEDBACK_PERIOD; the goal succeeds when the
actor reports `reached` and is aborted on a lasting actor fault or past `navigation_timeout` (core.navigation).
A cancel, or an abort, drops the actor's goal through the configurator's ~/cancel_goal, so the robot stops. A new
goal preempts the running one, which ends aborted (as in Nav2). A goal with NaN/inf, no rotation or another
frame is rejected before it can preempt anything. The yaw goes on with the pose: the actor turns to it at the
goal's position (core/final_heading.py) before it reports `reached`.
"""

from __future__ import annotations

from geometry_msgs.msg import PoseStamped
from nav_msgs.msg import Odometry
from rclpy.action import ActionServer, CancelResponse, GoalResponse
from rclpy.action.server import ServerGoalHandle
from rclpy.duration import Duration
from rclpy.node import Node
from rclpy.task import Future
from std_msgs.msg import String
from std_srvs.srv import Trigger

from ojepa_ros.core.navigation import NONE, NavigationGoal, Outcome
from ojepa_ros.nodes import params as P
from ojepa_ros.nodes.convert import InputError, goal_xy_yaw, odometry_to_array
from ojepa_ros.nodes.qos import LATCHED, SENSOR
from ojepa_ros.nodes.runtime import run_node

try:  # Nav2's own interface where it is installed (a ROS 2 distro), else ours with the same fields
    from nav2_msgs.action import NavigateToPose
except ImportError:
    from ojepa_interfaces.action import NavigateToPose

PARAMS = {
    "goal_frame": P.Param("odom", "frame goals must be given in (an empty frame_id is taken as this one)"),
    "navigation_timeout": P.ranged(120.0, 0.0, 86400.0, "s a goal may take before it is aborted (0: no limit)"),
    "configurator_node": P.Param("configurator_node", "the node whose ~/cancel_goal drops the actor's goal",
                                 read_only=True),
}
CHECK_PERIOD = 0.1  # s between checks for a cancel request, a timeout or a fault
FEEDBACK_PERIOD = 0.5  # s between feedback messages


class NavigatorNode(Node):
    def __init__(self, **kwargs) -> None:
        super().__init__("navigator_node", **kwargs)
        self.p = P.declare(self, PARAMS)
        self._odom: Odometry | None = None
        self._acked: tuple[float, float] | None = None  # the configurator's latest goal (ojepa/goal)
        self._active: tuple[ServerGoalHandle, NavigationGoal, Future] | None = None
        self.goal_pub = self.create_publisher(PoseStamped, "goal_pose", 10)
        self.create_subscription(Odometry, "odom", self._on_odom, SENSOR)
        self.create_subscription(String, "ojepa/actor_status", self._on_status, 10)
        self.create_subscription(PoseStamped, "ojepa/goal", self._on_goal_taken, LATCHED)
        self._cancel_client = self.create_client(Trigger, f"{self.p['configurator_node']}/cancel_goal")
        self._server = ActionServer(self, NavigateToPose, "navigate_to_pose", self._execute,
                                    goal_callback=self._on_goal, handle_accepted_callback=self._on_accepted,
                                    cancel_callback=self._on_cancel)
        self.create_timer(CHECK_PERIOD, self._check)
        self.create_timer(FEEDBACK_PERIOD, self._feedback)

    def _now(self) -> float:
        return self.get_clock().now().nanoseconds * 1e-9

    # -- goals ------------------------------------------------------------------------------------
    def _on_goal(self, request: NavigateToPose.Goal) -> GoalResponse:
        try:
            goal_xy_yaw(request.pose, self.p["goal_frame"])
        except InputError as err:
            self.get_logger().error(f"navigate_to_pose goal rejected: {err}", throttle_duration_sec=1.0)
            return GoalResponse.REJECT
        return GoalResponse.ACCEPT

    def _on_accepted(self, handle: ServerGoalHandle) -> None:
        """A new goal preempts the running one (ended as aborted), then runs."""
        if self._active is not None:
            self._finish(Outcome("aborted", NONE, "preempted by a new goal"), stop_robot=False)
        handle.execute()

    async def _execute(self, handle: ServerGoalHandle) -> NavigateToPose.Result:
        x, y, yaw = goal_xy_yaw(handle.request.pose, self.p["goal_frame"])  # checked when accepted
        goal = NavigationGoal(x, y, yaw, self._now(), self.p["navigation_timeout"])
        if self._acked is not None:
            goal.acknowledge(*self._acked, self._now())  # the same goal as the configurator's: it publishes no new one
        done = Future()
        self._active = (handle, goal, done)
        pose = PoseStamped()
        pose.header.stamp = self.get_clock().now().to_msg()
        pose.header.frame_id = self.p["goal_frame"]
        pose.pose = handle.request.pose.pose
        self.goal_pub.publish(pose)
        self.get_logger().info(f"navigating to ({x:.2f}, {y:.2f}, yaw {yaw:.2f})")
        outcome: Outcome = await done
        {"succeeded": handle.succeed, "canceled": handle.canceled}.get(outcome.state, handle.abort)()
        self.get_logger().info(f"goal ({x:.2f}, {y:.2f}) {outcome.state}" + (f": {outcome.message}"
                                                                             if outcome.message else ""))
        return NavigateToPose.Result(error_code=outcome.code, error_msg=outcome.message)

    def _on_cancel(self, handle: ServerGoalHandle) -> CancelResponse:
        """Accept; a cancel of the running goal stops the robot at once (the goal ends canceled at the next check,
        once the server has marked it canceling)."""
        if self._active is not None and self._active[0] is handle:
            self._stop_robot()
        return CancelResponse.ACCEPT

    def _stop_robot(self) -> None:
        """Drop the actor's goal through the configurator, so the robot stops."""
        if self._cancel_client.service_is_ready():
            self._cancel_client.call_async(Trigger.Request())
        else:
            self.get_logger().error(f"{self._cancel_client.srv_name} is not available: the actor keeps its goal",
                                    throttle_duration_sec=1.0)

    def _finish(self, outcome: Outcome, stop_robot: bool) -> None:
        """End the running goal; `stop_robot` also drops the actor's goal, so the robot stops."""
        _, _, done = self._active
        self._active = None
        if stop_robot:
            self._stop_robot()
        done.set_result(outcome)

    def _check(self) -> None:
        if self._active is None:
            return
        handle, goal, _ = self._active
        if handle.is_cancel_requested:
            self._finish(Outcome("canceled"), stop_robot=False)  # _on_cancel stopped it already
            return
        outcome = goal.outcome(self._now())
        if outcome is not None:
            self._finish(outcome, stop_robot=outcome.state != "succeeded")

    # -- inputs -----------------------------------------------------------------------------------
    def _on_odom(self, msg: Odometry) -> None:
        try:
            odometry_to_array(msg)
        except InputError as err:
            self.get_logger().error(f"odom refused: {err}", throttle_duration_sec=1.0)
            return
        self._odom = msg

    def _on_status(self, msg: String) -> None:
        if self._active is not None:
            self._active[1].on_status(msg.data, self._now())
            self._check()

    def _on_goal_taken(self, msg: PoseStamped) -> None:
        self._acked = (msg.pose.position.x, msg.pose.position.y)
        if self._active is not None:
            self._active[1].acknowledge(*self._acked, self._now())

    def _feedback(self) -> None:
        if self._active is None or self._odom is None:
            return
        handle, goal, _ = self._active
        p = self._odom.pose.pose.position
        feedback = NavigateToPose.Feedback()
        feedback.current_pose = PoseStamped(header=self._odom.header, pose=self._odom.pose.pose)
        feedback.navigation_time = Duration(seconds=max(0.0, self._now() - goal.started)).to_msg()
        remaining = goal.time_remaining(p.x, p.y, self._odom.twist.twist.linear.x)
        feedback.estimated_time_remaining = Duration(seconds=remaining).to_msg()
        feedback.number_of_recoveries = goal.recoveries
        feedback.distance_remaining = goal.distance(p.x, p.y)
        handle.publish_feedback(feedback)


def main(args: list[str] | None = None) -> None:
    run_node(NavigatorNode, args)


if __name__ == "__main__":
    main()
