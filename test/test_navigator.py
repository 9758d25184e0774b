"""The navigate_to_pose action: a real ActionClient against `ojepa agent` (the embedded world, the shipped model,
real DDS), and the goal bookkeeping of core.navigation on its own."""

from __future__ import annotations

import math
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from action_msgs.msg import GoalStatus
from geometry_msgs.msg import PoseStamped, Twist
from nav_msgs.msg import Odometry
from rclpy.action import ActionClient
from rclpy.node import Node
from std_srvs.srv import Trigger

from ojepa_ros.core.navigation import ACK_TIMEOUT, FAULT_GRACE, REACHED_SETTLE, TIMEOUT, UNKNOWN, NavigationGoal
from ojepa_ros.nodes.navigator_node import NavigateToPose

START = (2.0, 2.0)  # sim_node's start pose in room R0, facing +x
NEAR = (3.0, 2.3)  # reachable in a few seconds
FAR = (5.5, 2.0)  # room R1, through the doorway: still driving when the tests cancel or preempt


# -- core.navigation, ROS-free -----------------------------------------------------------------------------------

def test_a_goal_succeeds_on_reached_only_once_the_configurator_took_it():
    goal = NavigationGoal(1.0, 2.0, 0.5, started=10.0, timeout=60.0)
    goal.on_status("reached", 10.5)  # an earlier goal's
    assert goal.outcome(10.5) is None
    goal.acknowledge(1.0, 2.5, 10.6)  # another goal
    goal.acknowledge(1.0, 2.0, 10.7)
    goal.on_status("reached", 10.9)  # the earlier goal's, repeated just after the configurator took this one
    assert goal.outcome(10.9) is None
    goal.on_status("active", 11.0)
    goal.on_status("reached", 12.0)
    assert goal.outcome(12.0).state == "succeeded"
    # a goal where the robot already stands: the actor says nothing but `reached`, which counts once it lasts
    here = NavigationGoal(0.0, 0.0, 0.0, started=0.0, timeout=60.0)
    here.acknowledge(0.0, 0.0, 0.1)
    here.on_status("reached", 1.0)
    assert here.outcome(1.0) is None
    here.on_status("reached", 0.1 + REACHED_SETTLE)
    assert here.outcome(0.1 + REACHED_SETTLE).state == "succeeded"


def test_recoveries_are_counted_once_each_and_faults_abort_only_when_they_last():
    goal = NavigationGoal(0.0, 0.0, 0.0, started=0.0, timeout=0.0)
    goal.acknowledge(0.0, 0.0, 0.0)
    for t, status in enumerate(["active", "recovery: back up", "recovery: back up", "active", "recovery: spin"]):
        goal.on_status(status, float(t))
    assert goal.recoveries == 2
    goal.on_status("fault: planning raised RuntimeError", 5.0)
    goal.on_status("active", 5.1)
    assert goal.outcome(5.0 + FAULT_GRACE + 1) is None  # a passing fault
    goal.on_status("fault: no world model", 7.0)
    outcome = goal.outcome(7.0 + FAULT_GRACE)
    assert outcome.state == "aborted" and outcome.code == UNKNOWN and "no world model" in outcome.message
    assert goal.outcome(1e6).state == "aborted"  # timeout 0: no limit, the fault decides


def test_a_goal_the_actor_gives_up_is_aborted_with_its_reason():
    goal = NavigationGoal(1.0, 2.0, 0.0, started=0.0, timeout=60.0)
    goal.on_status("failed: stuck: an earlier goal's", 0.5)
    assert goal.outcome(0.5) is None
    goal.acknowledge(1.0, 2.0, 0.6)
    for t, status in enumerate(["active", "recovery: back_up #1 (no progress for 6.0 s; recovery 1 of 1)"]):
        goal.on_status(status, 1.0 + t)
    assert goal.outcome(3.0) is None and goal.recoveries == 1
    goal.on_status("failed: stuck: no progress for 6.0 s after 1 recoveries in a row", 9.0)
    outcome = goal.outcome(9.0)
    assert outcome.state == "aborted" and outcome.code == UNKNOWN and "after 1 recoveries" in outcome.message


def test_timeout_and_an_untaken_goal_abort_with_their_codes():
    goal = NavigationGoal(3.0, 4.0, 0.0, started=100.0, timeout=30.0)
    assert goal.distance(0.0, 0.0) == pytest.approx(5.0)
    assert goal.time_remaining(0.0, 0.0, 0.5) == pytest.approx(10.0) and goal.time_remaining(0.0, 0.0, 0.0) == 0.0
    assert goal.outcome(100.0 + ACK_TIMEOUT + 0.1).message.startswith("the configurator did not take the goal")
    goal.acknowledge(3.0, 4.0, 104.0)
    assert goal.outcome(129.0) is None
    assert goal.outcome(131.0).code == TIMEOUT


# -- the action server in the running graph ----------------------------------------------------------------------

class Client:
    """A test node with the action client and what it watches of the robot."""

    def __init__(self, spinner) -> None:
        self.node = Node(f"nav_client_{time.monotonic_ns()}")
        # Made before the node spins: rclpy's ActionClient adds itself to the node before it has its lock, and a
        # spinning executor can ask it for its entities in between (AttributeError '_lock', seen under load).
        self.action = ActionClient(self.node, NavigateToPose, "/navigate_to_pose")
        self.odoms: list[Odometry] = []
        self.cmds: list[Twist] = []
        self.node.create_subscription(Odometry, "/odom", self.odoms.append, 10)
        self.node.create_subscription(Twist, "/cmd_vel", self.cmds.append, 10)
        self.reset = self.node.create_client(Trigger, "/sim_node/reset")
        spinner.add(self.node)

    def go(self, x: float, y: float, yaw: float = 0.0, frame: str = "odom", w: float | None = None):
        """Send a goal (`w`: the quaternion's w as given, else that of `yaw`); the goal handle once the server
        answered (accepted or not), and the list its feedback fills."""
        goal = NavigateToPose.Goal()
        goal.pose.header.frame_id = frame
        goal.pose.pose.position.x, goal.pose.pose.position.y = x, y
        goal.pose.pose.orientation.z = math.sin(yaw / 2)
        goal.pose.pose.orientation.w = math.cos(yaw / 2) if w is None else w
        feedback: list = []
        future = self.action.send_goal_async(goal, feedback_callback=lambda msg: feedback.append(msg.feedback))
        return wait(future, 10.0, "the server to answer the goal"), feedback

    def cancel(self, handle) -> None:
        """Cancel a running goal; it must end as canceled."""
        wait(handle.cancel_goal_async(), 5.0, "the cancel answer")
        assert wait(handle.get_result_async(), 5.0, "the canceled result").status == GoalStatus.STATUS_CANCELED

    def distance(self, x: float, y: float) -> float:
        p = self.odoms[-1].pose.pose.position
        return math.hypot(p.x - x, p.y - y)

    def back_to_start(self) -> None:
        """Robot back to its start pose at rest (a test's goal has ended by then)."""
        assert self.reset.wait_for_service(10.0)
        wait(self.reset.call_async(Trigger.Request()), 5.0, "the sim reset")
        until(lambda: self.odoms and self.distance(*START) < 0.05, 5.0, "odometry at the start pose")


def until(predicate, timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout} s waiting for {what}")
        time.sleep(0.02)


def wait(future, timeout: float, what: str):
    until(future.done, timeout, what)
    return future.result()


@pytest.fixture(scope="module")
def agent(ros, tmp_path_factory):
    """`ojepa agent` (one process, the shipped model, the embedded world) and a client node."""
    from ojepa_ros.nodes.runtime import NodeSpinner

    cwd = tmp_path_factory.mktemp("agent")
    log = AgentLog(cwd / "agent.log")
    with log.path.open("w") as out:
        proc = subprocess.Popen([sys.executable, "-m", "ojepa_ros.cli", "agent", "--quiet", "--topdown",
                                 str(cwd / "run.png")], cwd=cwd, stdout=out, stderr=subprocess.STDOUT,
                                text=True, env=dict(os.environ, ROS_HOME=str(cwd)))
    spinner = NodeSpinner()
    client = Client(spinner)
    try:
        assert client.action.wait_for_server(timeout_sec=60.0), "no navigate_to_pose server"
        until(lambda: len(client.odoms) > 10, 30.0, "odometry")
        yield proc, client, log
    finally:
        proc.send_signal(signal.SIGINT)
        proc.wait(timeout=30)
        print(log.since_last())  # shown when the module's last test failed: how the agent shut down
        spinner.stop()
        spinner.shutdown()
        client.node.destroy_node()


class AgentLog:
    """The agent's output in a file, handed out a test's share at a time."""

    def __init__(self, path: Path) -> None:
        self.path, self._read = path, 0

    def since_last(self) -> str:
        """What the agent wrote since the last call."""
        text = self.path.read_text(errors="replace")
        part, self._read = text[self._read:], len(text)
        return part


@pytest.fixture
def client(agent):
    """The client, with the robot at its start pose; the agent must still run after the test. The agent's
    output during the test is printed after it, so that pytest shows it beside a failure (as its teardown
    section) and the one test's account is not lost in the module's."""
    proc, client, log = agent
    log.since_last()
    client.back_to_start()
    yield client
    print(f"--- the agent's output during this test ---\n{log.since_last()}")
    assert proc.poll() is None, "the agent died"


def test_a_goal_is_reached_with_feedback_on_the_way(client):
    handle, feedback = client.go(*NEAR, yaw=1.0)
    assert handle.accepted
    result = wait(handle.get_result_async(), 25.0, "the goal to be reached")
    assert result.status == GoalStatus.STATUS_SUCCEEDED, result.result.error_msg
    assert result.result.error_code == 0 and client.distance(*NEAR) <= 0.35
    q = client.odoms[-1].pose.pose.orientation
    heading = 2.0 * math.atan2(q.z, q.w)
    assert abs(math.atan2(math.sin(heading - 1.0), math.cos(heading - 1.0))) <= 0.3, f"ended facing {heading:.2f}"
    distances = [f.distance_remaining for f in feedback]
    assert len(distances) >= 2 and distances[-1] < distances[0] - 0.3, distances
    assert distances[0] == pytest.approx(math.dist(START, NEAR), abs=0.2)
    elapsed = [f.navigation_time.sec + f.navigation_time.nanosec * 1e-9 for f in feedback]
    assert elapsed == sorted(elapsed) and elapsed[-1] > 0.5
    assert all(f.current_pose.header.frame_id == "odom" and f.number_of_recoveries == 0 for f in feedback)


def test_cancel_stops_the_robot(client):
    handle, feedback = client.go(*FAR)
    until(lambda: feedback and client.distance(*START) > 0.2, 15.0, "the robot to drive off")
    client.cancel(handle)
    until(lambda: client.cmds and client.cmds[-1].linear.x == 0.0 and client.cmds[-1].angular.z == 0.0, 5.0,
          "a zero cmd_vel")
    time.sleep(1.0)  # nothing drives it again
    cmd, twist = client.cmds[-1], client.odoms[-1].twist.twist
    assert cmd.linear.x == 0.0 and cmd.angular.z == 0.0
    assert abs(twist.linear.x) < 0.01 and abs(twist.angular.z) < 0.01, twist


def test_a_new_goal_preempts_the_running_one(client):
    first, first_feedback = client.go(*FAR)
    until(lambda: first_feedback, 10.0, "feedback on the first goal")
    second, second_feedback = client.go(*NEAR)
    assert second.accepted
    result = wait(first.get_result_async(), 5.0, "the first goal's end")
    assert result.status == GoalStatus.STATUS_ABORTED and "preempted" in result.result.error_msg
    result = wait(second.get_result_async(), 25.0, "the second goal to be reached")
    assert result.status == GoalStatus.STATUS_SUCCEEDED and client.distance(*NEAR) <= 0.35
    assert second_feedback[-1].distance_remaining < 0.5


def test_malformed_goals_are_rejected_and_the_running_goal_goes_on(client):
    running, feedback = client.go(*FAR)
    assert running.accepted
    assert not client.go(float("nan"), 2.0)[0].accepted
    assert not client.go(3.0, 2.0, frame="map")[0].accepted
    assert not client.go(3.0, 2.0, w=0.0)[0].accepted  # an orientation that is no rotation
    count = len(feedback)
    until(lambda: len(feedback) >= count + 2, 5.0, "feedback on the running goal after the rejections")
    assert running.status == GoalStatus.STATUS_EXECUTING
    until(lambda: feedback[-1].distance_remaining < feedback[0].distance_remaining - 0.1, 15.0,
          "the robot still driving to the running goal")
    assert running.status == GoalStatus.STATUS_EXECUTING
    client.cancel(running)
