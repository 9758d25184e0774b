"""Each node with real rclpy over real DDS: real messages in, real messages out, bad input refused."""

from __future__ import annotations

import contextlib
import math
import threading
import time

import numpy as np
import pytest
from diagnostic_msgs.msg import DiagnosticArray
from geometry_msgs.msg import PoseStamped, Twist
from nav_msgs.msg import Odometry, Path
from ojepa_interfaces.msg import State
from rclpy.node import Node
from rclpy.parameter import Parameter
from rclpy.qos import DurabilityPolicy, QoSProfile, ReliabilityPolicy
from rosgraph_msgs.msg import Clock
from sensor_msgs.msg import CameraInfo, Image, LaserScan
from std_msgs.msg import Bool, Float32, Float64MultiArray, String
from std_srvs.srv import Trigger
from visualization_msgs.msg import Marker, MarkerArray

from ojepa_ros.nodes.actor_node import CANDIDATES_TOPIC, SUBGOALS_TOPIC, ActorNode, candidate_rows
from ojepa_ros.nodes.configurator_node import ConfiguratorNode
from ojepa_ros.nodes.convert import rgb_to_image, yaw_to_quaternion
from ojepa_ros.nodes.cost_node import CostNode
from ojepa_ros.nodes.memory_node import MemoryNode
from ojepa_ros.nodes.perception_node import PerceptionNode
from ojepa_ros.nodes.sim_node import TFMessage, SimNode
from ojepa_ros.nodes.world_model_node import WorldModelNode
from ojepa_ros.core.episodes import read_episode

LIMITS = {"max_linear_velocity": 0.5, "max_angular_velocity": 1.5}


def overrides(**values) -> list[Parameter]:
    return [Parameter(k, value=v) for k, v in values.items()]


class Feeder:
    """A test node that plays the robot's sensors: odometry and camera images, or raw states."""

    def __init__(self, graph, sensor_qos=10) -> None:
        self.node = graph.add(Node(f"feeder_{time.monotonic_ns()}"))
        self.odom = self.node.create_publisher(Odometry, "/odom", sensor_qos)
        self.image = self.node.create_publisher(Image, "/camera/image_raw", sensor_qos)
        self.state = self.node.create_publisher(State, "/ojepa/state", 10)

    def send_odom(self, x=1.0, y=1.0, yaw=0.0, v=0.0, w=0.0) -> None:
        msg = Odometry()
        msg.header.stamp = self.node.get_clock().now().to_msg()
        msg.header.frame_id, msg.child_frame_id = "odom", "base_link"
        msg.pose.pose.position.x, msg.pose.pose.position.y = x, y
        msg.pose.pose.orientation = yaw_to_quaternion(yaw) if math.isfinite(yaw) else yaw_to_quaternion(0.0)
        msg.twist.twist.linear.x, msg.twist.twist.angular.z = v, w
        self.odom.publish(msg)

    def send_image(self, size=64, encoding="rgb8", age=0.0) -> None:
        rgb = np.random.default_rng(0).integers(0, 255, (size, size, 3), dtype=np.uint8)
        stamp = self.node.get_clock().now() - rclpy_duration(age)
        msg = rgb_to_image(rgb, stamp.to_msg(), "camera_link")
        msg.encoding = encoding
        self.image.publish(msg)


def rclpy_duration(seconds: float):
    from rclpy.duration import Duration

    return Duration(seconds=seconds)


def pump(graph, action, until, timeout=5.0, what="condition") -> None:
    """Repeat `action` every 50 ms until `until()` holds."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        action()
        if until():
            return
        time.sleep(0.05)
    raise AssertionError(f"timed out waiting for {what}")


# -- perception -------------------------------------------------------------------------------

def test_perception_encodes_good_images_and_refuses_bad_ones(graph, tiny_model_path):
    graph.add(PerceptionNode(parameter_overrides=overrides(model_path=str(tiny_model_path))))
    states = graph.collect(State, "/ojepa/state")
    feed = Feeder(graph)

    def send(**image_kwargs):
        feed.send_odom()
        feed.send_image(**image_kwargs)

    for bad in ({"encoding": "mono8"}, {"size": 32}, {"age": 5.0}):
        for _ in range(10):
            send(**bad)
            time.sleep(0.03)
        assert states == [], f"state published for a bad image {bad}"
    pump(graph, send, lambda: len(states) >= 2, what="a state from a good image")
    assert len(states[-1].data) == 16 and np.all(np.isfinite(states[-1].data))


def test_perception_stamps_a_state_with_its_capture_time_and_base_frame(graph, tiny_model_path):
    """The header carries the older of the image's and the odometry's stamps, not the moment of encoding."""
    graph.add(PerceptionNode(parameter_overrides=overrides(model_path=str(tiny_model_path))))
    states = graph.collect(State, "/ojepa/state")
    feed = Feeder(graph)
    pump(graph, lambda: (feed.send_odom(), feed.send_image(age=0.3)), lambda: len(states) >= 1,
         what="a state from an image taken 0.3 s ago")
    state, now = states[-1], feed.node.get_clock().now().nanoseconds * 1e-9
    age = now - (state.header.stamp.sec + state.header.stamp.nanosec * 1e-9)
    assert 0.3 <= age < 2.0, f"state stamped {age:.3f} s ago; the image was taken 0.3 s before it was sent"
    assert state.header.frame_id == "base_link"


@pytest.mark.parametrize("reliability", [ReliabilityPolicy.BEST_EFFORT, ReliabilityPolicy.RELIABLE])
def test_perception_hears_best_effort_and_reliable_sensors(graph, tiny_model_path, reliability):
    """Most camera drivers publish best effort; a reliable subscription would never connect to them."""
    graph.add(PerceptionNode(parameter_overrides=overrides(model_path=str(tiny_model_path))))
    states = graph.collect(State, "/ojepa/state")
    feed = Feeder(graph, QoSProfile(depth=5, reliability=reliability))

    def send():
        feed.send_odom()
        feed.send_image()

    pump(graph, send, lambda: len(states) >= 2, what=f"a state from a {reliability.name} camera and odometry")


def test_perception_needs_fresh_finite_odometry(graph, tiny_model_path):
    graph.add(PerceptionNode(parameter_overrides=overrides(model_path=str(tiny_model_path))))
    states = graph.collect(State, "/ojepa/state")
    feed = Feeder(graph)
    for _ in range(10):
        feed.send_odom(x=float("nan"))
        feed.send_image()
        time.sleep(0.03)
    assert states == []


def test_missing_model_file_keeps_node_alive_and_silent(graph, tmp_path):
    node = graph.add(PerceptionNode(parameter_overrides=overrides(model_path=str(tmp_path / "absent.pt"))))
    assert node.model is None
    states = graph.collect(State, "/ojepa/state")
    feed = Feeder(graph)
    for _ in range(5):
        feed.send_odom()
        feed.send_image()
        time.sleep(0.03)
    assert states == []


# -- actor -------------------------------------------------------------------------------------

def _actor(graph, model_path, **params):
    values = {"model_path": str(model_path), "num_samples": 64, "horizon": 8, **params}
    return graph.add(ActorNode(parameter_overrides=overrides(**values)))


def _twist_speeds(msgs: list[Twist]) -> np.ndarray:
    return np.array([[m.linear.x, m.angular.z] for m in msgs]).reshape(-1, 2)


@contextlib.contextmanager
def fed_steadily(feed: Feeder, period: float):
    """Fresh odometry and a fixed state every `period` s from a thread of its own, for the block's length."""
    feeding = threading.Event()
    feeding.set()

    def inputs() -> None:
        while feeding.is_set():
            feed.send_odom()
            feed.state.publish(State(data=[0.1] * 16))
            time.sleep(period)

    feeder = threading.Thread(target=inputs, daemon=True)
    feeder.start()
    try:
        yield
    finally:
        feeding.clear()
        feeder.join()


def test_actor_drives_within_limits_and_stops_when_inputs_go_stale(graph, tiny_model_path):
    actor = _actor(graph, tiny_model_path, goal_active=True, goal_x=5.0, goal_y=5.0)
    cmds = graph.collect(Twist, "/cmd_vel")
    statuses = graph.collect(String, "/ojepa/actor_status")
    plans = graph.collect(Path, "/ojepa/plan")
    feed = Feeder(graph)
    state = State(data=[0.1] * 16)

    def inputs():
        feed.send_odom()
        feed.state.publish(state)

    pump(graph, inputs, lambda: len(cmds) >= 10 and plans, timeout=10, what="commands while active")
    speeds = _twist_speeds(cmds)
    assert np.all(np.abs(speeds) <= np.array([0.5, 1.5]) + 1e-9)
    assert np.all(np.abs(np.diff(speeds, axis=0)) <= np.array([1.0, 3.0]) * 0.1 + 1e-6)
    assert any(s.data == "active" for s in statuses)
    assert plans[-1].header.frame_id == "odom" and len(plans[-1].poses) == 8
    diags = graph.collect(DiagnosticArray, "/diagnostics")
    pump(graph, inputs, lambda: any(len(d.status) == 2 and d.status[1].values for d in diags), timeout=5,
         what="the chosen plan's cost terms on /diagnostics")
    chosen = next(d.status[1] for d in diags if len(d.status) == 2 and d.status[1].values)
    assert chosen.name == "actor_node: chosen plan" and "mode" in chosen.message
    assert {kv.key for kv in chosen.values} >= {"goal_distance", "collision", "backward", "critic"}

    graph.wait_for(lambda: statuses[-1].data.startswith("stale"), 2.0, "the watchdog to fire")
    graph.wait_for(lambda: np.allclose(_twist_speeds(cmds)[-1], 0.0), 3.0, "a zero command after stale inputs")
    actor.stop()


def test_a_halt_during_a_planning_step_brakes_at_once_and_never_sends_that_steps_command(graph, tiny_model_path):
    """ojepa/halt (the configurator's cancel) reaches the actor's halt lane while a step plans: the first braking
    command goes out well before the step ends, the step's own command never does, and the goal ends."""
    from std_msgs.msg import Empty

    from ojepa_ros.nodes.halt_lane import HALT_QOS

    # A slow step (a large budget at 2 Hz), so that the halt lands inside one; a long watchdog keeps it out of this.
    # The untrained model may turn more than it drives, and the fixed odometry makes no progress: no recovery here.
    actor = _actor(graph, tiny_model_path, goal_active=True, goal_x=5.0, goal_y=5.0, control_rate=2.0,
                   num_samples=4096, horizon=16, watchdog_timeout=1.0, recovery_enabled=False)
    arrivals: list[tuple[float, np.ndarray]] = []  # (monotonic s, [|v|, |w|]) of each /cmd_vel
    probe = graph.add(Node(f"halt_probe_{time.monotonic_ns()}"))
    probe.create_subscription(Twist, "/cmd_vel", lambda m: arrivals.append(
        (time.monotonic(), np.abs([m.linear.x, m.angular.z]))), 10)
    halt = probe.create_publisher(Empty, "/ojepa/halt", HALT_QOS)
    with fed_steadily(Feeder(graph), period=0.05):
        graph.wait_for(lambda: len(actor._plan_ms) >= 2 and arrivals and np.any(arrivals[-1][1] > [0.05, 0.1]),
                       15.0, "the robot moving on planned commands")
        graph.wait_for(lambda: halt.get_subscription_count() > 0, 3.0, "the halt lane's subscription")
        step_s = float(np.median(list(actor._plan_ms))) / 1000.0
        ticks = len(actor._ticks)
        graph.wait_for(lambda: len(actor._ticks) > ticks, 2.0, "a control tick to start its step")
        speed = arrivals[-1][1]
        asked = time.monotonic()
        halt.publish(Empty())
        graph.wait_for(lambda: not actor.p["goal_active"], 5.0, "the halt to end the goal")
        graph.wait_for(lambda: not arrivals[-1][1].any(), 5.0, "the stop to reach zero")
    after = [v for t, v in arrivals if t >= asked]
    first = next(t for t, _ in arrivals if t >= asked)
    assert np.all(after[0] <= speed) and np.any(after[0] < speed), f"{after[0]} after the halt: no braking from {speed}"
    assert np.all(np.diff([speed, *after], axis=0) <= 1e-9), f"a command after the halt sped up again: {after}"
    assert first - asked < 0.5 * step_s, (f"the first braking command came {first - asked:.3f} s after the halt, "
                                          f"a step takes {step_s:.3f} s: it waited for the step")
    actor.stop()


def test_a_step_longer_than_the_watchdog_timeout_still_sends_its_command_while_inputs_stay_fresh(graph,
                                                                                                tiny_model_path):
    """A slow computer: every planning step outlasts watchdog_timeout, while odometry and states keep coming fresh.
    The inputs feed the watchdog during the step (the actor's input lane), so the check after the step passes and
    the planned commands go out; judged on the stamps from before the step, every plan would be thrown away."""
    actor = _actor(graph, tiny_model_path, goal_active=True, goal_x=5.0, goal_y=5.0, control_rate=2.0,
                   num_samples=4096, horizon=16, watchdog_timeout=0.05, plan_deadline=0.0, mode1="none",
                   recovery_enabled=False)
    cmds = graph.collect(Twist, "/cmd_vel")
    statuses = graph.collect(String, "/ojepa/actor_status")
    with fed_steadily(Feeder(graph), period=0.01):
        graph.wait_for(lambda: len(actor._plan_ms) >= 3, 20.0, "three planned steps")
    step_s = float(np.min(list(actor._plan_ms))) / 1000.0
    assert step_s > actor.p["watchdog_timeout"], f"a step took {step_s:.3f} s: not slower than the watchdog"
    assert np.any(np.abs(_twist_speeds(cmds)) > 0.0), "no planned command went out"
    assert any(s.data == "active" for s in statuses)
    actor.stop()


def test_actor_refuses_unsafe_parameters(graph, tiny_model_path):
    actor = _actor(graph, tiny_model_path)
    refused = actor.set_parameters(overrides(weight_collision=0.0, goal_x=float("nan"), control_rate=-1.0,
                                             max_linear_velocity=float("inf")))
    assert [r.successful for r in refused] == [False] * 4
    assert "guardrail" in refused[0].reason or ">=" in refused[0].reason
    assert actor.get_parameter("weight_collision").value == 50.0
    assert actor.set_parameters(overrides(weight_collision=100.0))[0].successful


def test_actor_without_model_stays_unconfigured_until_it_loads(graph, tmp_path, tiny_model_path):
    """A corrupt model file fails configure: the actor stays up, unconfigured, and publishes nothing; once the
    setting names a good file, configure succeeds and the active actor commands (zero, without inputs)."""
    corrupt = tmp_path / "corrupt.pt"
    corrupt.write_bytes(b"not a model")
    actor = _actor(graph, corrupt, goal_active=True, goal_x=1.0, goal_y=1.0)
    cmds = graph.collect(Twist, "/cmd_vel")
    statuses = graph.collect(String, "/ojepa/actor_status")
    time.sleep(0.5)
    assert not actor.configured and actor.model is None and cmds == [] and statuses == [] and graph.spinner.alive()
    assert actor.set_parameters(overrides(model_path=str(tiny_model_path)))[0].successful
    assert actor.bring_up()
    graph.wait_for(lambda: len(cmds) >= 3, 3.0, "stop commands")
    assert np.all(_twist_speeds(cmds) == 0.0)
    assert statuses and statuses[-1].data.startswith("stale")


def test_actor_float64_effector(graph, tiny_model_path):
    _actor(graph, tiny_model_path, effector="float64_array", goal_active=True, goal_x=5.0, goal_y=5.0)
    cmds = graph.collect(Float64MultiArray, "/commands")
    feed = Feeder(graph)
    pump(graph, lambda: (feed.send_odom(), feed.state.publish(State(data=[0.1] * 16))),
         lambda: len(cmds) >= 3, what="Float64MultiArray commands")
    assert len(cmds[-1].data) == 2


def test_candidate_rows_keep_the_cheapest_half_and_spread_the_rest_up_to_the_dearest():
    costs = np.array([5.0, np.inf, 0.0, 9.0, np.nan, 3.0, 1.0, 7.0, 2.0, 8.0, 4.0, 6.0])
    assert candidate_rows(costs, 4).tolist() == [2, 6, 8, 3]  # costs 0, 1 | an even spread of 2..9: 2, 9
    assert candidate_rows(costs, 6).tolist() == [2, 6, 8, 5, 11, 3]  # 0, 1, 2 | 3, 6, 9
    assert sorted(candidate_rows(costs, 100).tolist()) == [0, 2, 3, 5, 6, 7, 8, 9, 10, 11]  # finite only


def test_actor_draws_candidates_only_while_someone_subscribes(graph, tiny_model_path):
    actor = _actor(graph, tiny_model_path, goal_active=True, goal_x=5.0, goal_y=5.0, max_candidate_markers=10)
    plans = graph.collect(Path, "/ojepa/plan")
    feed = Feeder(graph)

    def inputs():
        feed.send_odom()
        feed.state.publish(State(data=[0.1] * 16))

    pump(graph, inputs, lambda: len(plans) >= 3, timeout=10, what="plans while nobody watches the candidates")
    assert actor.candidate_arrays == 0  # planned three times, built no marker

    drawn = graph.collect(MarkerArray, CANDIDATES_TOPIC)
    pump(graph, inputs, lambda: sum(len(m.markers) > 1 for m in drawn) >= 2, timeout=10,
         what="candidate markers once subscribed")
    assert actor.candidate_arrays >= sum(len(m.markers) > 1 for m in drawn)
    msg = next(m for m in reversed(drawn) if len(m.markers) > 1)  # a lone DELETEALL may follow a late input
    assert msg.markers[0].action == Marker.DELETEALL
    lines = msg.markers[1:]
    assert 0 < len(lines) <= 10  # 64 candidates sampled, at most max_candidate_markers drawn
    for line in lines:
        points = np.array([[p.x, p.y, p.z] for p in line.points])
        assert line.type == Marker.LINE_STRIP and line.header.frame_id == "odom"
        assert points.shape == (8, 3) and np.isfinite(points).all()  # one point per predicted state (horizon 8)
    assert (lines[0].color.g, lines[0].color.r) == (1.0, 0.0) and lines[-1].color.r == 1.0  # cheapest green
    assert len({line.id for line in lines}) == len(lines)
    # Inputs go silent: the actor stops and wipes its candidates instead of leaving the last ones on screen.
    graph.wait_for(lambda: [m.action for m in drawn[-1].markers] == [Marker.DELETEALL], 3.0, "a lone DELETEALL")
    actor.stop()


def test_actor_shows_its_subgoal_route(graph, tiny_model_path):
    actor = _actor(graph, tiny_model_path, goal_active=True, goal_x=2.0, goal_y=6.0)  # R0 -> R3: round by R1, R2
    routes = graph.collect(MarkerArray, SUBGOALS_TOPIC)
    feed = Feeder(graph)

    def inputs():
        feed.send_odom(x=2.0, y=2.0)
        feed.state.publish(State(data=[0.1] * 16))

    pump(graph, inputs, lambda: any(len(m.markers) == 3 for m in routes), timeout=10, what="a subgoal route")
    msg = next(m for m in routes if len(m.markers) == 3)
    route, current = ([(p.x, p.y) for p in marker.points] for marker in msg.markers[1:])
    assert msg.markers[0].action == Marker.DELETEALL and len(route) > 5
    assert route[-1] == pytest.approx((2.0, 6.0)) and max(x for x, _ in route) > 4.0  # through R1, R2
    assert current[0][1] < 4.0  # the low level's subgoal is on this side of the wall
    actor.stop()


def test_actor_holds_the_robot_still_without_its_roadmap(graph, tiny_model_path, tmp_path):
    _actor(graph, tiny_model_path, goal_active=True, goal_x=2.0, goal_y=6.0, roadmap_path=str(tmp_path / "no.npz"))
    cmds = graph.collect(Twist, "/cmd_vel")
    statuses = graph.collect(String, "/ojepa/actor_status")
    feed = Feeder(graph)

    def inputs():
        feed.send_odom(x=2.0, y=2.0)
        feed.state.publish(State(data=[0.1] * 16))

    pump(graph, inputs, lambda: len(cmds) >= 3 and statuses, timeout=5, what="stop commands")
    assert np.all(_twist_speeds(cmds) == 0.0) and statuses[-1].data.startswith("fault")


# -- configurator, cost, memory -----------------------------------------------------------------

def test_configurator_sets_goals_refuses_bad_ones_and_applies_tasks(graph, tiny_model_path):
    actor = _actor(graph, tiny_model_path)
    cost = graph.add(CostNode(parameter_overrides=overrides(model_path=str(tiny_model_path))))
    config = graph.add(ConfiguratorNode())
    goals = graph.collect(PoseStamped, "/ojepa/goal", QoSProfile(depth=1, durability=DurabilityPolicy.TRANSIENT_LOCAL))
    pub = Feeder(graph).node.create_publisher(PoseStamped, "/goal_pose", 10)
    graph.wait_for(lambda: all(c.service_is_ready() for c in config._param_clients.values()), 5.0, "parameter services")

    def goal(x, y, frame="odom", yaw=0.0):
        msg = PoseStamped()
        msg.header.frame_id = frame
        msg.pose.position.x, msg.pose.position.y = x, y
        msg.pose.orientation = yaw_to_quaternion(yaw)
        graph.wait_for(lambda: pub.get_subscription_count() > 0, 3.0, "configurator subscription")
        pub.publish(msg)

    for bad in ((float("nan"), 1.0, "odom"), (20.0, 1.0, "odom"), (1.0, 1.0, "map")):
        goal(*bad)
    time.sleep(0.5)
    assert goals == [] and actor.get_parameter("goal_active").value is False

    goal(3.0, 1.5)
    # the configurator pushes to the actor and the cost node separately, and a node sets a request's parameters one
    # by one (this thread can look in between): wait for both pushes whole, and the latched goal
    graph.wait_for(lambda: actor.p["goal_active"] and actor.p["goal_yaw_active"] and cost.p["goal_x"] == 3.0
                   and goals, 3.0, "the actor and the cost node to take the goal")
    assert (actor.p["goal_x"], actor.p["goal_y"]) == (3.0, 1.5) and cost.p["goal_x"] == 3.0
    assert goals and goals[-1].pose.position.x == 3.0
    assert actor.p["goal_yaw_active"] and actor.p["goal_yaw"] == 0.0  # a /goal_pose goal keeps its heading
    goal(3.0, 1.5, yaw=1.2)  # the same place facing elsewhere: a new goal, for the actor alone
    graph.wait_for(lambda: abs(actor.p["goal_yaw"] - 1.2) < 1e-6, 3.0, "the actor to take the goal's yaw")
    assert "goal_yaw" not in cost.p

    config.set_parameters(overrides(task="demo"))
    graph.wait_for(lambda: actor.p["goal_x"] == 6.0, 3.0, "the demo task's goal")
    config.set_parameters(overrides(task="no_such_task"))  # logged and ignored
    assert actor.p["goal_x"] == 6.0

    graph.wait_for(lambda: config._on_cancel(Trigger.Request(), Trigger.Response()).success, 1.0, "cancel")
    graph.wait_for(lambda: not actor.p["goal_active"], 3.0, "cancel to reach the actor")


def test_cost_node_reports_each_term(graph, tiny_model_path):
    from diagnostic_msgs.msg import DiagnosticArray

    graph.add(CostNode(parameter_overrides=overrides(model_path=str(tiny_model_path), goal_active=True,
                                                     goal_x=4.0, goal_y=4.0)))
    totals = graph.collect(Float32, "/ojepa/cost")
    terms = graph.collect(DiagnosticArray, "/ojepa/cost_terms")
    feed = Feeder(graph)
    pump(graph, lambda: (feed.send_odom(v=0.3), feed.state.publish(State(data=[0.2] * 16))),
         lambda: terms and totals, what="cost reports")
    keys = {kv.key: float(kv.value) if kv.key != "bumper" else kv.value for kv in terms[-1].status[0].values}
    assert {"goal_distance", "collision", "speed", "acceleration", "energy", "bumper"} <= set(keys)
    assert math.isclose(sum(v for k, v in keys.items() if k != "bumper"), totals[-1].data, rel_tol=1e-3, abs_tol=1e-3)


def test_memory_records_an_episode_per_goal(graph, tmp_path):
    memory = graph.add(MemoryNode(parameter_overrides=overrides(output_dir=str(tmp_path))))
    talker = Feeder(graph).node
    goal_pub = talker.create_publisher(PoseStamped, "/ojepa/goal",
                                       QoSProfile(depth=1, durability=DurabilityPolicy.TRANSIENT_LOCAL))
    status_pub = talker.create_publisher(String, "/ojepa/actor_status", 10)
    cmd_pub = talker.create_publisher(Twist, "/cmd_vel", 10)
    state_pub = talker.create_publisher(State, "/ojepa/state", 10)
    goal = PoseStamped()
    goal.header.frame_id = "odom"
    goal.pose.position.x = 2.0
    graph.wait_for(lambda: goal_pub.get_subscription_count() > 0, 3.0, "memory subscription")
    goal_pub.publish(goal)
    graph.wait_for(lambda: memory.episode is not None, 3.0, "an episode to open")
    status_pub.publish(String(data="active"))
    for i in range(5):
        cmd = Twist()
        cmd.linear.x = 0.1 * i
        cmd_pub.publish(cmd)
        state_pub.publish(State(data=[float(i)] * 4))
        time.sleep(0.05)
    time.sleep(0.2)
    status_pub.publish(String(data="reached"))
    graph.wait_for(lambda: memory.episode is None, 3.0, "the episode to close")
    (episode,) = list(tmp_path.iterdir())
    topics = [topic for topic, _, _ in read_episode(episode)]
    assert topics.count("/cmd_vel") == 5 and topics.count("/ojepa/state") == 5 and "/ojepa/goal" in topics


def test_world_model_node_publishes_surprise(graph, tiny_model_path):
    graph.add(WorldModelNode(parameter_overrides=overrides(model_path=str(tiny_model_path))))
    surprise = graph.collect(Float32, "/ojepa/surprise")
    feed = Feeder(graph)
    pump(graph, lambda: feed.state.publish(State(data=list(np.random.rand(16)))),
         lambda: len(surprise) >= 2, what="surprise")
    assert all(math.isfinite(s.data) and s.data >= 0 for s in surprise)


# -- simulator -----------------------------------------------------------------------------------

def test_sim_node_moves_on_cmd_vel_and_resets(graph):
    sim = graph.add(SimNode(parameter_overrides=overrides(start_pose=[2.0, 2.0, 0.0])))
    odoms = graph.collect(Odometry, "/odom")
    images = graph.collect(Image, "/camera/image_raw")
    collisions = graph.collect(Bool, "/collision")
    pub = Feeder(graph).node.create_publisher(Twist, "/cmd_vel", 10)
    cmd = Twist()
    cmd.linear.x = 0.4
    pump(graph, lambda: pub.publish(cmd), lambda: odoms and odoms[-1].pose.pose.position.x > 2.3,
         timeout=15, what="the robot to move forward")
    assert images[-1].encoding == "rgb8" and (images[-1].width, images[-1].height) == (64, 64)
    assert odoms[-1].child_frame_id == "base_link" and collisions and not collisions[-1].data
    bad = Twist()
    bad.linear.x = float("nan")
    pub.publish(bad)
    response = sim._on_reset(Trigger.Request(), Trigger.Response())  # called as the service would be
    assert response.success
    graph.wait_for(lambda: abs(odoms[-1].pose.pose.position.x - 2.0) < 0.05, 2.0, "the reset pose")


def test_sim_node_stamps_with_its_own_clock_and_describes_its_camera(graph):
    sim = graph.add(SimNode(parameter_overrides=overrides(image_width=80, image_height=60, camera_fovy=90.0)))
    clocks = graph.collect(Clock, "/clock")
    odoms = graph.collect(Odometry, "/odom")
    images = graph.collect(Image, "/camera/image_raw")
    infos = graph.collect(CameraInfo, "/camera/camera_info")
    graph.wait_for(lambda: len(images) >= 3 and len(infos) >= 3 and len(odoms) >= 10, 15.0, "camera and odometry")
    # every stamp is a tick of the simulation clock on /clock, not wall time (which is ~1.8e9 s); the /clock message
    # of the newest stamps may still be on its way
    stamps = {(m.header.stamp.sec, m.header.stamp.nanosec) for m in list(odoms)[-5:] + list(images)[-2:]}
    graph.wait_for(lambda: stamps <= {(c.clock.sec, c.clock.nanosec) for c in list(clocks)}, 2.0,
                   f"the stamps {sorted(stamps)} on /clock")
    assert all(sec < 600 for sec, _ in stamps)
    image, info = images[-1], next(i for i in reversed(infos) if i.header.stamp == images[-1].header.stamp)
    assert image.header.frame_id == info.header.frame_id == "camera_optical_frame"
    assert (info.width, info.height) == (80, 60)
    f = 30.0 / math.tan(math.radians(45.0))  # half the height over tan(fovy / 2)
    assert np.allclose(info.k, [f, 0, 39.5, 0, f, 29.5, 0, 0, 1]) and np.allclose(info.p[:3], [f, 0, 39.5])
    if TFMessage is None:  # the PyPI wheels: no tf2_msgs, so no /tf (the pose is in /odom)
        assert sim.tf_pub is None and sim.tf_static_pub is None
    else:
        static = graph.collect(TFMessage, "/tf_static", QoSProfile(depth=1, durability=DurabilityPolicy.TRANSIENT_LOCAL))
        dynamic = graph.collect(TFMessage, "/tf")
        graph.wait_for(lambda: static and dynamic, 5.0, "/tf and /tf_static")
        assert {(t.header.frame_id, t.child_frame_id) for t in static[-1].transforms} == {
            ("base_link", "camera_link"), ("camera_link", "camera_optical_frame"), ("base_link", "laser_link")}
        assert [(t.header.frame_id, t.child_frame_id) for t in dynamic[-1].transforms] == [("odom", "base_link")]


def test_sim_node_scans_and_takes_obstacles_dropped_in_and_out(graph):
    """Start at (2, 2) facing +x in the four-room world: the nearest thing ahead is the doorway's far jamb, more
    than 1.5 m away; a box dropped 0.6 m ahead shows in /scan and on the bumper's way, and leaves again."""
    graph.add(SimNode(parameter_overrides=overrides(start_pose=[2.0, 2.0, 0.0], scan_rate=20.0)))
    scans = graph.collect(LaserScan, "/scan")
    pub = Feeder(graph).node.create_publisher(Marker, "/sim/obstacles", 10)

    def ahead() -> float:
        scan = scans[-1]
        i = round((0.0 - scan.angle_min) / scan.angle_increment)
        return scan.ranges[i]

    graph.wait_for(lambda: len(scans) >= 2, 5.0, "a scan")
    assert len(scans[-1].ranges) == 180 and scans[-1].header.frame_id == "laser_link" and ahead() > 1.5
    box = Marker(type=Marker.CUBE, action=Marker.ADD, ns="test", id=1)
    box.header.frame_id = "odom"
    box.pose.position.x, box.pose.position.y = 2.7, 2.0
    box.scale.x = box.scale.y = 0.2
    box.scale.z = 0.5
    pump(graph, lambda: pub.publish(box), lambda: ahead() < 0.65, what="the dropped box in the scan")
    assert ahead() == pytest.approx(0.6, abs=0.03)
    bad = Marker(type=Marker.SPHERE, action=Marker.ADD, ns="test", id=2)  # refused with a log line, nothing changes
    pub.publish(bad)
    delete = Marker(action=Marker.DELETE, ns="test", id=1)
    pump(graph, lambda: pub.publish(delete), lambda: ahead() > 1.5, what="the box taken out again")


def test_actor_drives_toward_a_goal_image(graph, tiny_model_path):
    actor = graph.add(ActorNode(parameter_overrides=overrides(model_path=str(tiny_model_path), hierarchical=False,
                                                              mode1="none", weight_critic=0.0, num_samples=32,
                                                              horizon=4, image_goal_tolerance=1e-9)))
    statuses = graph.collect(String, "/ojepa/actor_status")
    feed = Feeder(graph)
    goal_pub = feed.node.create_publisher(Image, "/goal_image", 1)
    state = [0.1] * 16

    def tick():
        feed.send_odom()
        feed.state.publish(State(data=state))

    bad = rgb_to_image(np.zeros((8, 8, 3), np.uint8), feed.node.get_clock().now().to_msg(), "")
    bad.encoding = "mono16"
    goal_pub.publish(bad)  # refused: the actor stays idle
    for _ in range(5):
        tick()
        time.sleep(0.05)
    assert not actor._image_goal and statuses and statuses[-1].data == "idle"
    goal = rgb_to_image(np.full((48, 80, 3), 90, np.uint8), feed.node.get_clock().now().to_msg(), "")  # any size
    pump(graph, lambda: goal_pub.publish(goal), lambda: actor._image_goal, what="the goal image")
    pump(graph, tick, lambda: statuses and statuses[-1].data == "active",
         what=f"the actor driving toward the goal image: {[m.data for m in statuses]}")
    assert actor.policy.goal is None and actor.policy.goal_features is not None
    for _ in range(10):  # the goal images pumped above may still be queued at the actor: let them land first,
        tick()           # or one arriving after the cancel sets the goal again
        time.sleep(0.05)
    actor.set_parameters([Parameter("goal_active", value=False)])  # the configurator's cancel stops it too
    pump(graph, tick, lambda: statuses[-1].data == "idle", what="the image goal cancelled")


def test_sim_node_wraps_a_gymnasium_env(graph):
    graph.add(SimNode(parameter_overrides=overrides(world="gym", gym_env_id="InvertedPendulum-v5")))
    images = graph.collect(Image, "/camera/image_raw")
    observations = graph.collect(Float64MultiArray, "/sim/observation")
    pub = Feeder(graph).node.create_publisher(Float64MultiArray, "/commands", 10)
    pump(graph, lambda: pub.publish(Float64MultiArray(data=[0.5])),
         lambda: len(images) >= 3 and len(observations) >= 3, what="gym images")
    assert images[-1].width == 64 and len(observations[-1].data) == 4


def test_sim_time_stamps_never_step_back_a_second():
    """The simulator's clock is a sum of 2 ms physics steps; near whole seconds such a sum lands a hair under
    the integer (5.9999999997), which an earlier conversion sent out as 5 s: /clock went back one second."""
    from ojepa_ros.nodes.convert import sec_to_stamp

    t, last = 0.0, -1.0
    for _ in range(30_000):  # one minute of steps
        t += 0.002
        stamp = sec_to_stamp(t)
        value = stamp.sec + stamp.nanosec * 1e-9
        assert abs(value - t) < 1e-9 and value > last and 0 <= stamp.nanosec < 1_000_000_000
        last = value
    assert sec_to_stamp(5.9999999997) == sec_to_stamp(6.0)


# -- namespaces ---------------------------------------------------------------------------------

def test_two_namespaced_robots_keep_to_their_own_topics_and_parameters(graph, tiny_model_path):
    """Every topic is relative: a namespace (`-r __ns:=/robot1`, launch `namespace:=robot1`) moves the whole
    graph, the configurator's parameter pushes included, and two robots on one domain do not hear each other."""
    sims = {ns: graph.add(SimNode(namespace=ns, parameter_overrides=overrides(start_pose=[2.0, 2.0, 0.0])))
            for ns in ("robot1", "robot2")}
    odoms = {ns: graph.collect(Odometry, f"/{ns}/odom") for ns in sims}
    images = graph.collect(Image, "/robot1/camera/image_raw")
    unspaced = graph.collect(Odometry, "/odom")
    actor = graph.add(ActorNode(namespace="robot1", parameter_overrides=overrides(model_path=str(tiny_model_path))))
    config = graph.add(ConfiguratorNode(namespace="robot1", parameter_overrides=overrides(managed_nodes=["actor_node"])))
    assert sims["robot1"].get_fully_qualified_name() == "/robot1/sim_node"
    feeder = Feeder(graph).node
    cmd_pub = feeder.create_publisher(Twist, "/robot1/cmd_vel", 10)
    cmd = Twist()
    cmd.linear.x = 0.4
    pump(graph, lambda: cmd_pub.publish(cmd), lambda: odoms["robot1"] and odoms["robot1"][-1].pose.pose.position.x > 2.3,
         timeout=15, what="robot1 to move")
    assert images and odoms["robot2"] and unspaced == []
    assert abs(odoms["robot2"][-1].pose.pose.position.x - 2.0) < 0.02, "robot2 moved on robot1's command"

    goal_pub = feeder.create_publisher(PoseStamped, "/robot1/goal_pose", 10)
    graph.wait_for(lambda: all(c.service_is_ready() for c in config._param_clients.values()), 5.0,
                   "/robot1/actor_node/set_parameters")
    goal = PoseStamped()
    goal.header.frame_id = "odom"
    goal.pose.position.x, goal.pose.position.y = 3.0, 1.5
    goal.pose.orientation.w = 1.0
    graph.wait_for(lambda: goal_pub.get_subscription_count() > 0, 3.0, "the configurator's goal_pose")
    goal_pub.publish(goal)
    graph.wait_for(lambda: actor.p["goal_active"] and actor.p["goal_x"] == 3.0, 3.0, "robot1's actor to take the goal")


def test_memory_default_folder_is_absolute_under_ros_home(monkeypatch, tmp_path):
    from pathlib import Path as FsPath  # this module's Path is nav_msgs'

    from ojepa_ros.nodes.memory_node import PARAMS as MEMORY_PARAMS, episodes_dir

    assert MEMORY_PARAMS["output_dir"].default == ""
    monkeypatch.setenv("ROS_HOME", str(tmp_path))
    assert episodes_dir("") == tmp_path.resolve() / "ojepa" / "episodes"
    monkeypatch.delenv("ROS_HOME")
    assert episodes_dir("") == FsPath.home().resolve() / ".ros" / "ojepa" / "episodes"
    monkeypatch.chdir(tmp_path)
    assert episodes_dir("runs/x") == tmp_path.resolve() / "runs" / "x"


def test_every_node_runs_on_sim_time_when_asked(graph, tiny_model_path):
    """use_sim_time (ROS 2's own parameter, set by the launch argument and `ojepa agent --use-sim-time`): each
    node's clock then follows /clock."""
    from rclpy.clock import ClockType

    publisher = Feeder(graph).node.create_publisher(Clock, "/clock", 10)
    model = {"model_path": str(tiny_model_path)}
    nodes = [graph.add(cls(parameter_overrides=overrides(use_sim_time=True, **(model if uses_model else {}))))
             for cls, uses_model in ((PerceptionNode, True), (WorldModelNode, True), (CostNode, True),
                                     (ActorNode, True), (ConfiguratorNode, False), (MemoryNode, False))]
    stamp = Clock()
    stamp.clock.sec = 42
    pump(graph, lambda: publisher.publish(stamp),
         lambda: all(n.get_clock().now().nanoseconds == 42_000_000_000 for n in nodes), what="the nodes on /clock")
    assert all(n.get_clock().clock_type == ClockType.ROS_TIME for n in nodes)
