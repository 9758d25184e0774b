"""The collision monitor's geometry (core, no ROS): zones that grow with speed, stop and slowdown, escape allowed."""

from __future__ import annotations

import math

import numpy as np
import pytest
from hypothesis import example, given, settings
from hypothesis import strategies as st

from ojepa_ros.core.collision_monitor import MonitorConfig, arc_poses, check, scan_points, zone_outline

CFG = MonitorConfig(slowdown_margin=0.15, slowdown_time=1.0)  # r 0.18, stop margin 0.05, 2 m/s^2, 0.1 s


def wall_ahead(distance: float, width: float = 2.0) -> np.ndarray:
    """Points of a wall across the robot's path, `distance` m ahead of its centre."""
    ys = np.linspace(-width / 2, width / 2, 81)
    return np.stack([np.full_like(ys, distance), ys], axis=1)


def test_the_stop_zone_grows_with_speed():
    # At 0.5 m/s the base needs 0.05 + 0.0625 m to stop: the stop zone reaches 0.18 + 0.05 + 0.1125 = 0.3425 m.
    assert check(wall_ahead(0.33), (0.5, 0.0), CFG).zone == "stop"
    assert check(wall_ahead(0.33), (0.5, 0.0), CFG).command == (0.0, 0.0)
    # At 0.1 m/s it needs 0.0125 m: the same wall is only in the slowdown zone.
    slow = check(wall_ahead(0.33), (0.1, 0.0), CFG)
    assert slow.zone == "slowdown" and slow.command == pytest.approx((0.03, 0.0))
    assert check(wall_ahead(0.8), (0.5, 0.0), CFG).zone == "slowdown"
    assert check(wall_ahead(1.2), (0.5, 0.0), CFG).zone == "clear"
    assert check(wall_ahead(0.8), (0.05, 0.0), CFG).zone == "clear"


def test_motion_away_from_an_obstacle_and_rotation_in_place_are_allowed():
    touching = wall_ahead(0.2)
    assert check(touching, (-0.2, 0.0), CFG) .zone == "clear"  # backing away from the wall ahead
    assert check(touching, (0.0, 1.0), CFG).command == (0.0, 1.0)  # turning in place sweeps nothing
    assert check(touching, (0.3, 0.5), CFG).zone == "stop"
    behind = -wall_ahead(0.25)
    assert check(behind, (0.5, 0.0), CFG).zone == "clear" and check(behind, (-0.5, 0.0), CFG).zone == "stop"


def test_the_zone_follows_the_arc():
    # A post 0.6 m ahead and 0.6 m to the left: on a left arc of radius 0.6 m the robot drives at it,
    # on the right arc it drives away.
    post = np.array([[0.6, 0.6]])
    assert check(post, (0.5, 0.5 / 0.6), CFG).zone in ("slowdown", "stop")
    assert check(post, (0.5, -0.5 / 0.6), CFG).zone == "clear"
    poses = arc_poses(0.5, 0.5 / 0.6, math.pi / 2 * 0.6, 0.01)  # a quarter circle to the left
    np.testing.assert_allclose(poses[-1], (0.6, 0.6), atol=1e-6)
    np.testing.assert_allclose(arc_poses(-0.5, 0.0, 1.0, 0.1)[-1], (-1.0, 0.0))


def test_scan_points_follow_rep_117():
    ranges = np.array([1.0, np.nan, np.inf, -np.inf, 0.01, 100.0])
    points = scan_points(ranges, 0.0, math.pi / 2, 0.05, 10.0)
    np.testing.assert_allclose(points, [[1.0, 0.0], [0.0, -0.05]], atol=1e-12)  # -inf: at range_min on its beam
    moved = scan_points(np.array([1.0]), 0.0, 0.1, 0.05, 10.0, pose=(0.1, 0.0, math.pi))
    np.testing.assert_allclose(moved, [[-0.9, 0.0]], atol=1e-12)
    assert check(scan_points(np.array([-np.inf]), 0.0, 0.1, 0.05, 10.0), (0.2, 0.0), CFG).zone == "stop"


def test_non_finite_commands_stop_and_settings_are_checked():
    assert check(wall_ahead(5.0), (math.nan, 0.0), CFG).command == (0.0, 0.0)
    with pytest.raises(ValueError):
        MonitorConfig(stop_margin=0.3, slowdown_margin=0.1)
    with pytest.raises(ValueError):
        MonitorConfig(footprint_radius=0.0)


def test_zone_outline_encloses_the_sweep():
    outline = zone_outline((0.5, 0.0), CFG, "stop")
    assert outline[:, 0].max() == pytest.approx(0.18 + 0.05 + CFG.braking_distance(0.5), abs=1e-6)
    assert zone_outline((0.0, 0.0), CFG, "stop")[:, 0].max() == pytest.approx(0.23)


@settings(max_examples=200, deadline=None)
@given(v=st.floats(-0.5, 0.5), w=st.floats(-1.5, 1.5), gap=st.floats(0.0, 0.05), angle=st.floats(-math.pi, math.pi))
@example(v=0.5, w=0.0, gap=0.0, angle=1.5)  # touching beside the robot: passed closest between two sweep poses
@example(v=0.25, w=-1.0, gap=0.0, angle=1.5)  # turning away from a point at the rim that the arc's start approaches
def test_a_command_never_moves_the_footprint_into_an_obstacle_within_its_braking_distance(v, w, gap, angle):
    """Whatever (v, w): after the monitor, braking from the allowed speed never brings the footprint
    within the stop margin of a point that lies on the way."""
    ahead = CFG.footprint_radius + gap
    point = np.array([[ahead * math.cos(angle), ahead * math.sin(angle)]])
    allowed = check(point, (v, w), CFG).command
    sweep = arc_poses(allowed[0], allowed[1], CFG.braking_distance(allowed[0]), 0.005)
    gaps = np.hypot(*(point[0] - sweep).T)
    assert gaps.min() >= min(gaps[0], CFG.footprint_radius + CFG.stop_margin) - 1e-6


# ---- closed loop in the embedded world: a planner with a wrong idea of the world, the monitor in between ----

def mujoco_scan(env) -> np.ndarray:
    """The embedded robot's own scan (RoomsNavEnv.scan, what sim_node publishes on scan) as points."""
    ranges = env.scan()
    return scan_points(ranges, float(env.scan_angles[0]), float(env.scan_angles[1] - env.scan_angles[0]), 0.05,
                       env.config.scan_range)


@pytest.mark.parametrize("command", [(0.5, 0.0), (0.5, 0.4), (-0.5, 0.0)])
def test_a_planner_driving_at_a_wall_is_stopped_before_contact(command):
    """The planner's world model is wrong (it 'sees' free floor): it commands full speed at the wall. The
    monitor, from the scan alone, stops the robot short of it; without the monitor the same commands hit it."""
    from ojepa_ros.sim.nav_env import RoomsNavEnv

    def run(monitored: bool) -> tuple[bool, float]:
        env = RoomsNavEnv()
        env.reset(seed=0)
        env.set_pose(1.0, 1.0, math.pi if command[0] > 0 else 0.0)  # 0.95 m from the x = 0 wall, facing it
        touched = False
        for _ in range(40):  # 4 s at 10 Hz
            allowed = check(mujoco_scan(env), command, CFG).command if monitored else command
            env.set_command(*allowed)
            touched |= env.advance(0.1) or env.in_collision()
        clearance = env.clearance()
        env.close()
        return touched, clearance

    touched, clearance = run(monitored=True)
    assert not touched and clearance > 0.0
    assert run(monitored=False)[0], "the unmonitored planner should have hit the wall (else this test proves nothing)"


# ---- the node, over real DDS: synthetic scans from a real publisher ----

class Bench:
    """Plays the actor (cmd_vel_raw), the scanner (/scan) and the bumper (/collision); hears /cmd_vel."""

    def __init__(self, graph) -> None:
        import time

        from geometry_msgs.msg import Twist
        from rclpy.node import Node
        from sensor_msgs.msg import LaserScan
        from std_msgs.msg import Bool, String

        self.node = graph.add(Node(f"monitor_bench_{time.monotonic_ns()}"))
        self.raw = self.node.create_publisher(Twist, "/cmd_vel_raw", 10)
        self.scan_pub = self.node.create_publisher(LaserScan, "/scan", 10)
        self.bumper = self.node.create_publisher(Bool, "/collision", 10)
        self.out: list[tuple[float, float]] = []
        self.states: list[str] = []
        self.node.create_subscription(Twist, "/cmd_vel", lambda m: self.out.append((m.linear.x, m.angular.z)), 50)
        self.node.create_subscription(String, "/collision_monitor_node/state", lambda m: self.states.append(m.data),
                                      10)

    def scan(self, wall_at: float | None, age: float = 0.0, **fields) -> None:
        """A 360-beam scan with a wall across the front at wall_at m (None: nothing in range)."""
        from rclpy.duration import Duration
        from sensor_msgs.msg import LaserScan

        msg = LaserScan()
        msg.header.stamp = (self.node.get_clock().now() - Duration(seconds=age)).to_msg()
        msg.header.frame_id = "base_link"
        msg.angle_min, msg.angle_increment = -math.pi, 2 * math.pi / 360
        msg.angle_max = msg.angle_min + 359 * msg.angle_increment
        msg.range_min, msg.range_max = 0.05, 10.0
        angles = msg.angle_min + msg.angle_increment * np.arange(360)
        with np.errstate(divide="ignore"):
            ranges = np.where(np.cos(angles) > 0.05, (wall_at or np.inf) / np.cos(angles), np.inf)
        msg.ranges = np.where(ranges > msg.range_max, np.inf, ranges).astype(np.float32).tolist()
        for key, value in fields.items():
            setattr(msg, key, value)
        self.scan_pub.publish(msg)

    def command(self, v: float, w: float = 0.0) -> None:
        from geometry_msgs.msg import Twist

        msg = Twist()
        msg.linear.x, msg.angular.z = v, w
        self.raw.publish(msg)

    def settle(self, graph, wall_at, v, w=0.0, expect=None, timeout=3.0, **scan) -> tuple[float, float]:
        """Scan + command every 50 ms until the output equals `expect` (or just a few rounds)."""
        import time

        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            self.scan(wall_at, **scan)
            self.command(v, w)
            time.sleep(0.05)
            if self.out and (expect is None or np.allclose(self.out[-1], expect, atol=1e-6)):
                return self.out[-1]
        raise AssertionError(f"output {self.out[-1:]} never became {expect}")


def test_monitor_node_passes_slows_and_stops_by_the_scan(graph):
    from ojepa_ros.nodes.collision_monitor_node import CollisionMonitorNode

    graph.add(CollisionMonitorNode())
    bench = Bench(graph)
    graph.wait_for(lambda: bench.raw.get_subscription_count() > 0 and bench.scan_pub.get_subscription_count() > 0,
                   5.0, "the monitor's subscriptions")
    bench.settle(graph, None, 0.4, 0.2, expect=(0.4, 0.2))  # nothing in range: unchanged
    bench.settle(graph, 0.5, 0.4, expect=(0.12, 0.0))  # slowdown zone: x 0.3
    bench.settle(graph, 0.3, 0.4, expect=(0.0, 0.0))  # stop zone
    assert any(s.startswith("stop: obstacle") for s in bench.states)
    bench.settle(graph, 0.3, -0.3, expect=(-0.3, 0.0))  # backing away from it is allowed
    bench.settle(graph, None, 5.0, expect=(0.5, 0.0))  # the robot's hardware limit, whatever was asked
    bench.settle(graph, None, float("nan"), expect=(0.0, 0.0))


def test_monitor_node_stops_on_stale_or_malformed_scans_and_the_bumper(graph):
    import time

    from std_msgs.msg import Bool

    from ojepa_ros.nodes.collision_monitor_node import CollisionMonitorNode

    graph.add(CollisionMonitorNode())
    bench = Bench(graph)
    graph.wait_for(lambda: bench.raw.get_subscription_count() > 0, 5.0, "the monitor's subscriptions")
    bench.settle(graph, None, 0.3, expect=(0.3, 0.0))
    bench.settle(graph, None, 0.3, expect=(0.0, 0.0), age=0.5)  # a scan captured 0.5 s ago: stale
    bench.settle(graph, None, 0.3, expect=(0.3, 0.0))
    for bad in ({"ranges": []}, {"angle_increment": 0.0}, {"range_min": math.nan}, {"range_max": 0.0},
                {"angle_increment": 1.0}):  # 360 beams of 1 rad: not one turn
        bench.settle(graph, None, 0.3, expect=(0.0, 0.0), **bad)
        bench.settle(graph, None, 0.3, expect=(0.3, 0.0))
    bench.bumper.publish(Bool(data=True))  # closed while driving forward
    bench.settle(graph, None, 0.3, expect=(0.0, 0.0))
    bench.settle(graph, None, -0.1, expect=(-0.1, 0.0))  # straight back, off the contact: let out
    bench.settle(graph, None, 0.0, 0.5, expect=(0.0, 0.0))  # turning while pressed scrapes: stopped
    bench.settle(graph, None, 0.3, expect=(0.0, 0.0))  # further into it: stopped
    bench.bumper.publish(Bool(data=False))
    bench.settle(graph, None, 0.3, expect=(0.3, 0.0))
    # The scanner goes silent while the command stays: the monitor stops the robot on its own, no new command.
    count = len(bench.out)
    for _ in range(3):
        bench.command(0.3)
        time.sleep(0.05)
    graph.wait_for(lambda: np.allclose(bench.out[-1], 0.0), 1.0, "a stop once the last scan is 0.3 s old")
    assert len(bench.out) > count


def test_monitor_node_settings_cannot_be_switched_off(graph):
    from rclpy.parameter import Parameter

    from ojepa_ros.nodes.collision_monitor_node import CollisionMonitorNode

    node = graph.add(CollisionMonitorNode(parameter_overrides=[Parameter("stop_margin", value=0.0),
                                                               Parameter("scan_timeout", value=100.0)]))
    assert node.get_parameter("stop_margin").value == 0.05 and node.get_parameter("scan_timeout").value == 0.3
    for name, value in (("stop_margin", 0.5), ("footprint_radius", 0.1), ("scan_timeout", 0.5)):
        (result,) = node.set_parameters([Parameter(name, value=value)])
        assert not result.successful  # read-only: not even within range
    (described,) = node.describe_parameters(["stop_margin"])
    assert described.read_only and described.floating_point_range[0].from_value == 0.02


def test_the_graph_puts_the_monitor_between_the_actor_and_the_base(graph, tiny_model_path):
    from rclpy.parameter import Parameter

    from ojepa_ros import graph as description
    from ojepa_ros.nodes.actor_node import ActorNode

    for sim in description.LAUNCH_SIMS:
        names = [spec.name for spec in description.nodes(sim)]
        assert "collision_monitor_node" in names
    (actor_spec,) = [spec for spec in description.nodes("rooms") if spec.name == "actor_node"]
    assert actor_spec.remap_args() == ["-r", "cmd_vel:=cmd_vel_raw"]
    actor = graph.add(ActorNode(cli_args=["--ros-args", *actor_spec.remap_args()],
                                parameter_overrides=[Parameter("model_path", value=str(tiny_model_path))]))
    assert actor.cmd_pub.topic_name == "/cmd_vel_raw"
