"""Bad input never kills a node and never becomes a guess: real nodes over real DDS, fed what a broken robot,
a wrong clock or a careless user sends. Each test names the failure it was written against."""

from __future__ import annotations

import math
import time

import numpy as np
import pytest
from geometry_msgs.msg import Twist
from nav_msgs.msg import Odometry
from ojepa_interfaces.msg import State
from rcl_interfaces.msg import ParameterType
from rclpy.node import Node
from rclpy.parameter import Parameter
from std_msgs.msg import String

from ojepa_ros.nodes.actor_node import ActorNode
from ojepa_ros.nodes.convert import state_message, yaw_to_quaternion

STATE = np.full(16, 0.1, dtype=np.float32)


def overrides(**values) -> list[Parameter]:
    return [Parameter(k, value=v) for k, v in values.items()]


def actor(graph, model_path, **params) -> ActorNode:
    values = {"model_path": str(model_path), "num_samples": 64, "horizon": 8, **params}
    return graph.add(ActorNode(parameter_overrides=overrides(**values)))


class Robot:
    """Plays the robot's side for the actor: odometry and (encoded) states with capture stamps it chooses,
    and records every /cmd_vel with its arrival time on the node clock."""

    def __init__(self, graph) -> None:
        self.node = graph.add(Node(f"robot_{time.monotonic_ns()}"))
        self.odom_pub = self.node.create_publisher(Odometry, "/odom", 10)
        self.state_pub = self.node.create_publisher(State, "/ojepa/state", 10)
        self.commands: list[tuple[float, float, float]] = []  # (arrival s, v, w)
        self.statuses: list[str] = []
        self.node.create_subscription(Twist, "/cmd_vel", self._on_cmd, 50)
        self.node.create_subscription(String, "/ojepa/actor_status", lambda m: self.statuses.append(m.data), 10)
        self.last_stamp = 0.0

    def now(self) -> float:
        return self.node.get_clock().now().nanoseconds * 1e-9

    def _on_cmd(self, msg: Twist) -> None:
        self.commands.append((self.now(), msg.linear.x, msg.angular.z))

    def send(self, x=1.0, y=1.0, age=0.0, stamp_ns=None) -> None:
        """One odometry and one state captured `age` s ago (or at stamp_ns)."""
        stamp = round((self.now() - age) * 1e9) if stamp_ns is None else stamp_ns
        odom = Odometry()
        odom.header.stamp.sec, odom.header.stamp.nanosec = divmod(stamp, 1_000_000_000)
        odom.header.frame_id = "odom"
        odom.pose.pose.position.x, odom.pose.pose.position.y = x, y
        odom.pose.pose.orientation = yaw_to_quaternion(0.0)
        self.odom_pub.publish(odom)
        self.state_pub.publish(state_message(STATE, stamp))
        self.last_stamp = max(self.last_stamp, stamp * 1e-9)

    def drive(self, until, timeout=10.0, what="condition", **send) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            self.send(**send)
            if until():
                return
            time.sleep(0.05)
        raise AssertionError(f"timed out waiting for {what}")

    def speeds(self) -> np.ndarray:
        return np.array([c[1:] for c in self.commands]).reshape(-1, 2)


def test_state_message_is_stamped_with_its_capture_time_and_frame():
    msg = state_message(STATE, 1_733_000_000_123_456_789, "base_link")
    assert list(msg.data) == pytest.approx(STATE.tolist())
    assert (msg.header.stamp.sec, msg.header.stamp.nanosec) == (1_733_000_000, 123_456_789)
    assert msg.header.frame_id == "base_link"


@pytest.mark.parametrize("x", [1e30, 1e3, -5.0])
def test_odometry_outside_the_world_is_refused_and_the_actor_stays_alive(graph, tiny_model_path, x):
    """Found on main: one Odometry at x = 1e30 killed actor_node (FATAL in the timer), x = 1 km blocked it 8 s."""
    node = actor(graph, tiny_model_path, goal_active=True, goal_x=5.0, goal_y=5.0)
    robot = Robot(graph)
    robot.drive(lambda: "active" in robot.statuses, what="the actor to drive")
    robot.drive(lambda: robot.statuses[-1].startswith("stale: odom (") and "world_bounds" in robot.statuses[-1],
                timeout=5.0, what="the wild odometry to be refused", x=x)
    arrivals = len(robot.commands)
    robot.drive(lambda: len(robot.commands) >= arrivals + 5, timeout=5.0, what="the actor to keep ticking", x=x)
    assert np.isfinite(robot.speeds()).all() and np.allclose(robot.speeds()[-1], 0.0)
    robot.drive(lambda: robot.statuses[-1] == "active", timeout=5.0, what="driving again on good odometry")
    node.stop()


def test_stale_and_future_stamps_stop_the_robot(graph, tiny_model_path):
    """The watchdog judges the capture stamp: data 0.5 s old when it arrives is stale, however fresh its
    arrival; a stamp from the future is refused rather than trusted."""
    actor(graph, tiny_model_path, goal_active=True, goal_x=5.0, goal_y=5.0)
    robot = Robot(graph)
    robot.drive(lambda: robot.statuses and robot.statuses[-1].startswith("stale"), what="stale status", age=0.5)
    time.sleep(0.3)
    robot.drive(lambda: len(robot.statuses) > 3, timeout=3.0, what="statuses", age=0.5)
    assert "active" not in robot.statuses and np.allclose(robot.speeds(), 0.0)
    robot.drive(lambda: "future" in robot.statuses[-1], timeout=5.0, what="a future stamp refused", age=-1.0)
    assert "active" not in robot.statuses
    robot.drive(lambda: robot.statuses[-1] == "active", timeout=5.0, what="driving on fresh stamps")


def test_first_braking_command_within_100_ms_of_going_stale_then_zero_at_the_safe_stop_rate(graph, tiny_model_path):
    """Found on main: stale detection took 0.22-0.39 s after the last fresh input (timeout 0.2 s) and the
    zero came at 0.56-0.79 s. Now: the data's capture stamp + watchdog_timeout starts the clock."""
    timeout = 0.2
    # MPPI's sampled command moves an untrained model's robot somewhere (an untrained Mode-1 may answer ~0).
    actor(graph, tiny_model_path, goal_active=True, goal_x=5.0, goal_y=5.0, watchdog_timeout=timeout, mode1="none",
          safe_stop_deceleration=2.0, safe_stop_angular_deceleration=6.0)
    robot = Robot(graph)
    robot.drive(lambda: len(robot.commands) > 3 and np.abs(robot.speeds()[-1]).max() > 0.05, timeout=15.0,
                what="the robot to move")
    stale_at = robot.last_stamp + timeout
    moving = len(robot.commands)
    graph.wait_for(lambda: len(robot.commands) > moving and np.allclose(robot.speeds()[-1], 0.0), 3.0,
                   "the robot to be stopped")
    commands = np.array(robot.commands)
    after = commands[np.searchsorted(commands[:, 0], stale_at):]
    before = commands[np.searchsorted(commands[:, 0], stale_at) - 1]
    slower = np.flatnonzero((np.abs(after[:, 1:]) < np.abs(before[1:]) - 1e-9).any(axis=1)
                            | np.all(after[:, 1:] == 0.0, axis=1))
    first = after[slower[0]]
    # The target is 100 ms (bench/faults.py measures 3-55 ms); 50 ms more for a test process that may wait for
    # a CPU on a loaded 2-core machine (load average 6 seen here: one run in 4 took 136 ms).
    assert first[0] - stale_at <= 0.15, f"first braking command {1e3 * (first[0] - stale_at):.0f} ms after stale"
    zero = after[np.flatnonzero(np.all(after[:, 1:] == 0.0, axis=1))[0]]
    stop_time = max(abs(before[1]) / 2.0, abs(before[2]) / 6.0)  # at the safe-stop deceleration
    assert zero[0] - stale_at <= 0.15 + stop_time + 0.05
    # Never faster than the safe-stop rate, and never reversing.
    ramp = np.vstack([before, after[slower[0]:]])
    dv = np.abs(np.diff(ramp[:, 1:], axis=0))
    dt = np.diff(ramp[:, 0])
    assert (ramp[1:, 1:] * ramp[:-1, 1:] >= -1e-12).all()
    assert (dv[:, 0] <= 2.0 * (dt + 0.03) + 1e-9).all()  # 30 ms: arrival jitter between the two stamps


def test_late_clock_messages_neither_refuse_fresh_data_nor_keep_stale_data_fresh(graph, tiny_model_path):
    """Found in the composed agent under load: the actor's /clock callbacks came up to 0.8 s late while the data
    they date kept arriving, so fresh states were refused as stamped in the future and the robot stopped; and a
    clock that stands still would keep stale data fresh for as long. The actor's time is carried forward between
    /clock messages (core.safety.CarriedClock)."""
    from rosgraph_msgs.msg import Clock

    node = actor(graph, tiny_model_path, goal_active=True, goal_x=5.0, goal_y=5.0, use_sim_time=True, mode1="none")
    robot = Robot(graph)
    clock_pub = robot.node.create_publisher(Clock, "/clock", 10)
    start = time.monotonic()

    def sim_ns() -> int:  # the simulator's time: 100 s at start, at the wall's rate
        return round((100.0 + time.monotonic() - start) * 1e9)

    def step(clock: bool = True, data: bool = True) -> None:
        stamp = sim_ns()
        if clock:
            msg = Clock()
            msg.clock.sec, msg.clock.nanosec = divmod(stamp, 1_000_000_000)
            clock_pub.publish(msg)
        if data:
            robot.send(stamp_ns=stamp)

    def moving() -> bool:
        step()
        time.sleep(0.02)
        return bool(robot.statuses) and robot.statuses[-1] == "active" and np.abs(robot.speeds()[-1]).max() > 0.05

    graph.wait_for(moving, 15.0, "driving on sim time")
    until = time.monotonic() + 1.0
    while time.monotonic() < until:  # /clock stalls for 1 s; odometry and states keep coming, stamped on time
        step(clock=False)
        time.sleep(0.02)
        assert not node._refused, node._refused  # none taken as from the future
    graph.wait_for(moving, 5.0, "driving on as the clock comes back")
    graph.wait_for(lambda: step(data=False) or robot.statuses[-1].startswith("stale"), 2.0,
                   "stale once the data stops (the clock going on)")
    graph.wait_for(moving, 5.0, "driving again")
    graph.wait_for(lambda: robot.statuses[-1].startswith("stale"), 2.0,
                   "stale once data and clock both stop: the actor's time is carried on and its guard runs on")
    graph.wait_for(lambda: np.allclose(robot.speeds()[-1], 0.0), 3.0, "the guard braking the robot to a stop")


def test_safety_parameters_have_ranges_shown_refused_on_set_and_in_the_file(graph, tiny_model_path):
    """Found on main: watchdog_timeout=1e6, control_rate=1e-6, goal_tolerance=1e6, max_linear_velocity=50,
    horizon=2000 and num_samples=100000 were all accepted."""
    node = actor(graph, tiny_model_path, watchdog_timeout=1e6, control_rate=1e-6, max_linear_velocity=50.0)
    assert node.get_parameter("watchdog_timeout").value == 0.2  # out of range in the file: the default, logged
    assert node.get_parameter("control_rate").value == 10.0
    assert node.get_parameter("max_linear_velocity").value == 0.5
    (described,) = node.describe_parameters(["watchdog_timeout"])
    assert described.type == ParameterType.PARAMETER_DOUBLE
    assert (described.floating_point_range[0].from_value, described.floating_point_range[0].to_value) == (0.05, 1.0)
    (horizon,) = node.describe_parameters(["horizon"])
    assert (horizon.integer_range[0].from_value, horizon.integer_range[0].to_value) == (1, 200)
    for name, value in (("watchdog_timeout", 1e6), ("watchdog_timeout", 0.01), ("control_rate", 1e-6),
                        ("control_rate", 1000.0), ("goal_tolerance", 1e6), ("max_linear_velocity", 50.0),
                        ("max_linear_acceleration", 2.5), ("horizon", 2000), ("num_samples", 100_000),
                        ("safe_stop_deceleration", 0.5), ("world_bounds", [0.0, 0.0, math.nan, 8.0])):
        (result,) = node.set_parameters([Parameter(name, value=value)])
        assert not result.successful, f"{name}={value} was accepted"
        assert node.get_parameter(name).value != value
    assert node.set_parameters([Parameter("num_samples", value=1024)])[0].successful  # 1024 x 8 at 10 Hz fits
    assert not node.set_parameters([Parameter("control_rate", value=30.0)])[0].successful  # ... not at 30 Hz
    assert node.set_parameters([Parameter("watchdog_timeout", value=0.5)])[0].successful


def test_goals_with_no_orientation_are_refused_and_refusals_are_throttled(graph):
    """Found on main: a zero quaternion was accepted as a goal, and 'goal refused' was logged 1250 times in 30 s."""
    from geometry_msgs.msg import PoseStamped
    from rclpy.qos import DurabilityPolicy, QoSProfile

    from ojepa_ros.nodes.configurator_node import ConfiguratorNode

    configurator = graph.add(ConfiguratorNode(parameter_overrides=overrides(managed_nodes=["nobody_here"])))
    latched = QoSProfile(depth=1, durability=DurabilityPolicy.TRANSIENT_LOCAL)
    goals = graph.collect(PoseStamped, "/ojepa/goal", latched)
    talker = graph.add(Node(f"goal_talker_{time.monotonic_ns()}"))
    pub = talker.create_publisher(PoseStamped, "/goal_pose", 10)
    graph.wait_for(lambda: pub.get_subscription_count() > 0, 3.0, "the configurator's subscription")
    refused = []
    logger = configurator.get_logger()
    original = logger.error

    def counting(message, **kw):  # count the lines that reach the log, as rclpy's throttle lets them through
        if original(message, **kw):
            refused.append(message)
        return True

    logger.error = counting
    try:
        for i in range(60):  # 60 bad goals in ~1.2 s
            goal = PoseStamped()
            goal.header.frame_id = "odom"
            goal.pose.position.x, goal.pose.position.y = 2.0, 2.0
            goal.pose.orientation.w = 0.0 if i % 2 else 3.0  # zero, then unnormalised
            pub.publish(goal)
            time.sleep(0.02)
        time.sleep(0.3)
    finally:
        logger.error = original
    assert goals == [] and configurator.active_goal is None
    assert 1 <= len([m for m in refused if "goal refused" in m]) <= 3, refused


def test_the_same_goal_again_opens_no_new_episode(graph, tmp_path):
    """Found on main: 250 identical goals opened 250 episode folders."""
    from geometry_msgs.msg import PoseStamped

    from ojepa_ros.nodes.configurator_node import ConfiguratorNode
    from ojepa_ros.nodes.memory_node import MemoryNode

    memory = graph.add(MemoryNode(parameter_overrides=overrides(output_dir=str(tmp_path))))
    configurator = graph.add(ConfiguratorNode(parameter_overrides=overrides(managed_nodes=["nobody_here"])))
    talker = graph.add(Node(f"goal_talker_{time.monotonic_ns()}"))
    pub = talker.create_publisher(PoseStamped, "/goal_pose", 10)
    graph.wait_for(lambda: pub.get_subscription_count() > 0, 3.0, "the configurator's subscription")
    goal = PoseStamped()
    goal.header.frame_id = "odom"
    goal.pose.position.x, goal.pose.position.y = 3.0, 2.0
    goal.pose.orientation.w = 1.0
    for _ in range(30):
        pub.publish(goal)
        time.sleep(0.01)
    graph.wait_for(lambda: memory.episode is not None, 3.0, "an episode")
    time.sleep(0.3)
    assert len(list(tmp_path.iterdir())) == 1 and configurator.active_goal == (3.0, 2.0, 0.0)
    goal.pose.position.x = 4.0  # a new goal is a new episode
    pub.publish(goal)
    graph.wait_for(lambda: len(list(tmp_path.iterdir())) == 2, 3.0, "a second episode for a new goal")
    memory.close()


def test_memory_refuses_an_unwritable_output_dir_and_stays_alive(graph, tmp_path):
    """Found on main: a bad output_dir killed memory_node (unguarded mkdir)."""
    from geometry_msgs.msg import PoseStamped
    from rclpy.qos import DurabilityPolicy, QoSProfile

    from ojepa_ros.nodes.memory_node import MemoryNode

    blocker = tmp_path / "a_file"
    blocker.write_text("not a directory")
    memory = graph.add(MemoryNode(parameter_overrides=overrides(output_dir=str(tmp_path / "ok"),
                                                                max_episode_duration=0.001)))
    assert memory.get_parameter("max_episode_duration").value == 300.0  # below its 1 s minimum: the default
    (result,) = memory.set_parameters([Parameter("output_dir", value=str(blocker / "episodes"))])
    assert not result.successful and "create and write" in result.reason
    (result,) = memory.set_parameters([Parameter("output_dir", value="/proc/episodes")])
    assert not result.successful
    assert memory.get_parameter("output_dir").value == str(tmp_path / "ok")
    # A folder that becomes unwritable after it was accepted: nothing is recorded, the node lives on.
    blocker.unlink()
    (tmp_path / "ok").rmdir()
    (tmp_path / "ok").write_text("now a file")
    talker = graph.add(Node(f"goal_talker_{time.monotonic_ns()}"))
    pub = talker.create_publisher(PoseStamped, "/ojepa/goal",
                                  QoSProfile(depth=1, durability=DurabilityPolicy.TRANSIENT_LOCAL))
    graph.wait_for(lambda: pub.get_subscription_count() > 0, 3.0, "memory's subscription")
    pub.publish(PoseStamped())
    time.sleep(0.5)
    assert memory.episode is None and graph.spinner.alive()
    (tmp_path / "ok").unlink()
    pub.publish(PoseStamped())
    graph.wait_for(lambda: memory.episode is not None, 3.0, "recording once the folder can be written")
    memory.close()


def test_settings_over_the_compute_budget_in_the_file_hold_the_robot_stopped(graph, tiny_model_path):
    """Each value within its range, together over the budget (the issue's num_samples=100000 at 10 Hz)."""
    node = actor(graph, tiny_model_path, num_samples=100_000, goal_active=True, goal_x=5.0, goal_y=5.0)
    assert node.policy is None and "do not fit" in node._fault
    robot = Robot(graph)
    robot.drive(lambda: robot.statuses and robot.statuses[-1].startswith("fault"), timeout=5.0, what="a fault status")
    assert np.allclose(robot.speeds(), 0.0)


def test_data_before_any_clock_message_is_refused_as_such_on_sim_time(graph, tiny_model_path):
    """Found starting the agent a process per node: a state that came before the actor's first /clock was
    refused as "stamped 12.505 s in the future (clocks disagree?)", which points at the wrong fault."""
    node = actor(graph, tiny_model_path, goal_active=True, goal_x=5.0, goal_y=5.0, use_sim_time=True, mode1="none")
    robot = Robot(graph)
    graph.wait_for(lambda: robot.send(stamp_ns=100_000_000_000) or "state" in node._refused, 10.0,
                   "the state refused")
    assert "before any /clock" in node._refused["state"], node._refused
    assert not robot.commands or np.allclose(robot.speeds(), 0.0)
