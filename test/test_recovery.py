"""Progress checker and recovery behaviours (core/recovery.py) on synthetic inputs, their hook in MpcPolicy, and
the actor recovering in the real simulator over DDS."""

from __future__ import annotations

import math
import time

import numpy as np
import pytest
import torch
from nav_msgs.msg import Odometry
from rclpy.node import Node
from rclpy.parameter import Parameter
from sensor_msgs.msg import LaserScan
from std_msgs.msg import Bool, String
from visualization_msgs.msg import Marker

from ojepa_ros.core.mpc import LOW_LEVEL_ONLY, MpcPolicy
from ojepa_ros.core.recovery import (REAR_CLEARANCE, BackUp, ProgressChecker, Recovery, RecoveryConfig, Spin,
                                     Surroundings, Wait)
from ojepa_ros.core.world_model import WorldModel, WorldModelConfig
from ojepa_ros.nodes.actor_node import ActorNode
from ojepa_ros.nodes.configurator_node import ConfiguratorNode
from ojepa_ros.nodes.convert import odometry_to_array
from ojepa_ros.nodes.perception_node import PerceptionNode
from ojepa_ros.nodes.sim_node import SimNode

DT = 0.1
GOAL = np.array([3.0, 1.0])
NO_POINTS = np.zeros((0, 2))


def around(pose, obstacles=NO_POINTS, scan=NO_POINTS, contact=False) -> Surroundings:
    return Surroundings(np.asarray(pose, dtype=float), np.asarray(obstacles, float).reshape(-1, 2),
                        None if scan is None else np.asarray(scan, float).reshape(-1, 2), contact)


def drive(pose: np.ndarray, command: np.ndarray, dt: float = DT) -> np.ndarray:
    """A unicycle that follows the command exactly."""
    x, y, yaw = pose
    return np.array([x + command[0] * math.cos(yaw) * dt, y + command[0] * math.sin(yaw) * dt, yaw + command[1] * dt])


def test_progress_checker_finds_a_robot_that_sits_still_and_not_one_that_moves():
    checker = ProgressChecker(radius=0.25, angle=0.5, allowance=6.0)
    pose = np.array([1.0, 1.0, 0.0])
    verdicts = [checker.update(pose, GOAL, DT) for _ in range(70)]
    assert "stuck" not in verdicts[:60] and verdicts[60] == "stuck"  # after 6 s, not before
    checker.reset()
    moving = [checker.update(np.array([1.0 + 0.01 * i, 1.0, 0.0]), GOAL, DT) for i in range(200)]  # 0.1 m/s
    assert "stuck" not in moving and moving.count("progress") == 7  # every 0.25 m


def test_progress_checker_counts_turning_toward_the_goal_but_not_away_nor_back_after_a_spin():
    checker = ProgressChecker(radius=0.25, angle=0.5, allowance=1.0)
    checker.update(np.array([1.0, 1.0, math.pi]), GOAL, DT)  # facing away from the goal
    assert checker.update(np.array([1.0, 1.0, math.pi - 0.6]), GOAL, DT) == "progress"
    checker.reset()
    checker.update(np.array([1.0, 1.0, 0.0]), GOAL, DT)  # facing the goal
    assert [checker.update(np.array([1.0, 1.0, 1.0]), GOAL, DT) for _ in range(11)][-1] == "stuck"
    checker.rebase(np.array([1.0, 1.0, 1.5]), GOAL)  # a spin left it facing away; turning back is no progress
    assert checker.update(np.array([1.0, 1.0, 0.0]), GOAL, DT) == ""


def back_up_until_done(backup: BackUp, pose, obstacles=NO_POINTS, scan=NO_POINTS, follow=True):
    commands, pose = [], np.asarray(pose, dtype=float)
    while (command := backup.command(around(pose, obstacles, scan), DT)) is not None:
        commands.append(command)
        pose = drive(pose, command) if follow else pose
        assert len(commands) < 1000
    return np.array(commands), pose


def test_back_up_drives_its_distance_straight_back_and_stops():
    backup = BackUp(distance=0.15, speed=0.1, footprint_radius=0.18)
    start = np.array([2.0, 2.0, 0.7])
    assert backup.begin(around(start), GOAL, pressed_behind=False) is None
    commands, end = back_up_until_done(backup, start)
    assert np.allclose(commands, [-0.1, 0.0]) and len(commands) == 15
    assert math.hypot(*(end[:2] - start[:2])) == pytest.approx(0.15, abs=1e-6)
    assert np.dot(end[:2] - start[:2], (math.cos(0.7), math.sin(0.7))) < 0  # backward


def test_back_up_gives_up_when_the_base_does_not_follow():
    backup = BackUp(distance=0.15, speed=0.1, footprint_radius=0.18)
    backup.begin(around([2.0, 2.0, 0.0]), GOAL, pressed_behind=False)
    commands, _ = back_up_until_done(backup, [2.0, 2.0, 0.0], follow=False)
    assert len(commands) == 40  # twice its 1.5 s plus 1 s, then it stops asking


@pytest.mark.parametrize("yaw", [0.0, 1.2, -2.5])
def test_back_up_refuses_a_rear_with_a_perceived_obstacle_or_a_scan_return(yaw):
    """A point 0.3 m behind the centre (0.12 m behind the rim) is inside the 0.15 m back-up's sweep."""
    backup = BackUp(distance=0.15, speed=0.1, footprint_radius=0.18)
    pose = np.array([2.0, 2.0, yaw])
    behind_odom = pose[:2] - 0.3 * np.array([math.cos(yaw), math.sin(yaw)])
    assert "behind" in backup.begin(around(pose, obstacles=behind_odom), GOAL, False)
    assert "behind" in backup.begin(around(pose, scan=[-0.3, 0.0]), GOAL, False)  # base frame
    assert "no fresh scan" in backup.begin(around(pose, scan=None), GOAL, False)
    assert backup.begin(around(pose, contact=True), GOAL, False) is None  # backs off a front contact
    assert "reversing" in backup.begin(around(pose), GOAL, pressed_behind=True)
    ahead_and_beside = [[0.3, 0.0], [0.0, 0.3], [0.0, -0.3]]  # in front, at the sides: the rear is free
    assert backup.begin(around(pose, scan=ahead_and_beside), GOAL, False) is None


def test_back_up_stops_when_something_appears_behind():
    backup = BackUp(distance=0.15, speed=0.1, footprint_radius=0.18)
    pose = np.array([2.0, 2.0, 0.0])
    backup.begin(around(pose), GOAL, False)
    assert backup.command(around(pose), DT) is not None
    assert backup.command(around(pose, scan=[-0.35, 0.0]), DT) is None


def test_back_up_stands_while_a_scan_is_late_and_goes_on_with_the_next():
    backup = BackUp(distance=0.15, speed=0.1, footprint_radius=0.18)
    pose = np.array([2.0, 2.0, 0.0])
    backup.begin(around(pose), GOAL, False)
    np.testing.assert_array_equal(backup.command(around(pose, scan=None), DT), [0.0, 0.0])
    assert backup.command(around(pose), DT)[0] < 0


def test_back_up_never_drives_into_a_point_it_knows_of():
    """Random clouds behind the robot: whenever it moves, the swept footprint keeps REAR_CLEARANCE from every point."""
    rng = np.random.default_rng(0)
    runs = moved = 0
    for _ in range(300):
        backup = BackUp(distance=0.15, speed=0.1, footprint_radius=0.18)
        scan = rng.uniform([-0.8, -0.6], [0.1, 0.6], size=(rng.integers(1, 4), 2))
        scan = scan[np.hypot(*scan.T) > 0.2]  # none inside the body
        pose = np.array([0.0, 0.0, 0.0])
        if backup.begin(around(pose, scan=scan), GOAL, False):
            continue
        runs += 1
        commands, end = back_up_until_done(backup, pose, scan=scan)
        moved += len(commands) > 0
        centres = np.linspace(0.0, end[0], 20)  # the centre's path, straight back along x
        gaps = np.hypot(scan[:, None, 0] - centres[None], scan[:, None, 1]).min(axis=1) - 0.18
        now = np.hypot(*scan.T) - 0.18
        assert ((gaps >= REAR_CLEARANCE - 1e-9) | (gaps >= now - 1e-9)).all()  # clear, or not approached
    assert runs > 50 and moved == runs


def test_spin_turns_toward_the_freer_side_up_to_its_angle():
    spin = Spin(angle=math.pi / 2, speed=0.8)
    pose = np.array([2.0, 2.0, 0.0])
    wall_left = [[0.0, 0.4], [0.2, 0.4], [-0.2, 0.4]]
    assert spin.begin(around(pose, scan=wall_left), GOAL, False) is None
    commands = []
    while (command := spin.command(around(pose), DT)) is not None:
        commands.append(command)
        pose = drive(pose, command)
    assert np.allclose(np.array(commands)[:, 0], 0.0) and (np.array(commands)[:, 1] < 0).all()  # right, in place
    assert abs(pose[2]) == pytest.approx(math.pi / 2, abs=0.8 * DT)
    assert "bumper" in spin.begin(around(pose, contact=True), GOAL, False)


def test_spin_without_anything_to_tell_the_sides_apart_turns_toward_the_goal():
    spin = Spin(angle=1.0, speed=0.8)
    spin.begin(around([2.0, 2.0, 0.0]), np.array([2.0, 5.0]), False)  # goal to the left
    assert spin.command(around([2.0, 2.0, 0.0]), DT)[1] > 0


def test_wait_holds_still_for_its_duration():
    wait = Wait(duration=1.0)
    wait.begin(around([1.0, 1.0, 0.0]), GOAL, False)
    commands = []
    while (command := wait.command(around([1.0, 1.0, 0.0]), DT)) is not None:
        commands.append(command)
    assert len(commands) == 10 and not np.any(commands)


def run_recovery(recovery: Recovery, pose, steps: int, scan=NO_POINTS, commanded=(0.0, 0.0)) -> tuple[list, np.ndarray]:
    """Drive the recovery's commands on a unicycle; the planner (None) holds the robot still."""
    log, pose = [], np.asarray(pose, dtype=float)
    for _ in range(steps):
        out = recovery.step(around(pose, scan=scan), GOAL, np.asarray(commanded), DT)
        log.append(out)
        if out is not None:
            pose = drive(pose, out.command)
    return log, pose


def test_recovery_runs_back_up_spin_wait_then_hands_back_and_gives_up_after_max_recoveries():
    recovery = Recovery(RecoveryConfig(max_recoveries=2))
    log, _ = run_recovery(recovery, [1.0, 1.0, 0.0], 400)
    starts = [out.started for out in log if out is not None and out.started]
    assert [s.split(" (")[0] for s in starts] == ["back_up #1", "spin #2", "wait #3",
                                                  "back_up #4", "spin #5", "wait #6"]
    assert "no progress for 6.0 s; recovery 1 of 2" in starts[0] and "recovery 2 of 2" in starts[3]
    first = next(i for i, out in enumerate(log) if out is not None)
    assert first == 60 and log[first - 1] is None  # the planner drove until the allowance ran out
    assert sum(out.clear_obstacles for out in log if out is not None) == 2  # at each wait's start
    failed = [out for out in log if out is not None and out.failed]
    assert failed and failed[0].failed.startswith("stuck: no progress") and "after 2 recoveries" in failed[0].failed
    assert all(not np.any(out.command) for out in failed)


def test_progress_between_recoveries_starts_the_count_again():
    recovery = Recovery(RecoveryConfig(max_recoveries=1))
    log, pose = run_recovery(recovery, [1.0, 1.0, 0.0], 120)
    assert recovery.in_a_row == 1 and not recovery.failed
    for i in range(30):  # the planner drives 0.3 m toward the goal
        recovery.step(around(pose + (0.01 * i, 0.0, 0.0)), GOAL, np.array([0.1, 0.0]), DT)
    assert recovery.in_a_row == 0
    run_recovery(recovery, pose + (0.3, 0.0, 0.0), 70)
    assert recovery.in_a_row == 1 and not recovery.failed


def test_a_contact_while_driving_holds_until_the_bumper_releases_then_backs_up():
    recovery = Recovery(RecoveryConfig())
    pose, forward = np.array([1.0, 1.0, 0.0]), np.array([0.3, 0.0])
    assert recovery.step(around(pose), GOAL, forward, DT) is None
    held = [recovery.step(around(pose, contact=True), GOAL, forward, DT) for _ in range(3)]
    assert all(out.behaviour == "hold" and not np.any(out.command) and not out.started for out in held)
    out = recovery.step(around(pose), GOAL, np.zeros(2), DT)  # released
    assert out.started.startswith("back_up #1 (bumper contact driving forward") and out.command[0] < 0


def test_a_front_contact_that_stays_is_backed_off_and_one_made_reversing_is_not():
    recovery = Recovery(RecoveryConfig(wait_duration=0.5))
    pose = np.array([1.0, 1.0, 0.0])
    outs = [recovery.step(around(pose, contact=True), GOAL, np.array([0.3, 0.0]), DT) for _ in range(7)]
    started = [out.started for out in outs if out.started]
    assert len(started) == 1 and started[0].startswith("back_up #1")  # pinned in front: back off, still pressed
    assert outs[-1].command[0] < 0 and outs[-1].command[1] == 0
    recovery.reset()
    assert recovery.step(around(pose, contact=True), GOAL, np.array([-0.1, 0.0]), DT).behaviour == "hold"
    out = recovery.step(around(pose), GOAL, np.zeros(2), DT)
    assert out.started.startswith("spin #1") and "back_up: the contact was made reversing" in out.started


def tiny_policy(**params) -> MpcPolicy:
    torch.manual_seed(0)
    model = WorldModel(WorldModelConfig(embed_dim=16, hidden_dim=32, channels=(8, 8, 8, 8)))
    return MpcPolicy.from_config(model, {**LOW_LEVEL_ONLY, "num_samples": 32, "horizon": 8, "recovery_enabled": True,
                                         "movement_time_allowance": 1.0, **params}, seed=0)


def test_the_policy_sends_recovery_commands_through_its_limiter_and_stops_a_goal_given_up():
    policy = tiny_policy(max_recoveries=1, max_linear_velocity=0.05, max_linear_acceleration=0.2,
                         backup_distance=0.05, spin_angle=0.2)
    state = torch.zeros(policy.model.cfg.embed_dim)  # never changes: the robot is stuck
    xy = policy.model.pose(state)[:2].numpy()
    policy.set_goal((xy[0] + 2.0, xy[1]))
    steps, last = [], np.zeros(2)
    for _ in range(80):
        step = policy.act(state, (0.0, 0.0), odom_xy=xy, dt=DT, scan=NO_POINTS)
        assert abs(step.command[0]) <= 0.05 + 1e-9 and abs(step.command[0] - last[0]) <= 0.2 * DT + 1e-9
        last = step.command
        steps.append(step)
    statuses = [s.status for s in steps]
    first = statuses.index("recovery")
    assert statuses[:first] == ["ok"] * 10 and steps[first].recovery.startswith("back_up #1 (no progress")
    backing = [s.command[0] for s in steps if s.recovery.startswith("back_up")]
    assert min(backing) == pytest.approx(-0.05)  # asked for 0.1 m/s, limited to 0.05
    assert statuses[-1] == "failed" and steps[-1].recovery.startswith("stuck: no progress")
    assert not np.any(steps[-1].command)
    policy.set_goal((xy[0] + 3.0, xy[1]))  # a new goal starts afresh
    assert policy.act(state, (0.0, 0.0), odom_xy=xy, dt=DT).status == "ok"


def test_wait_clears_the_perceived_obstacles_and_recovery_can_be_switched_off():
    policy = tiny_policy(spin_angle=0.1)
    state = torch.zeros(policy.model.cfg.embed_dim)
    pose = policy.model.pose(state).numpy()
    policy.set_goal((pose[0] + 2.0, pose[1]))
    policy.memory.add_contact(pose, 0.2, forward=True)  # points a newer view does not carve away
    notes = []
    for _ in range(60):
        remembered = len(policy.memory.points())
        step = policy.act(state, (0.0, 0.0), odom_xy=pose[:2], dt=DT, scan=None)
        notes.append(step.recovery)
        if step.recovery.startswith("wait #"):
            break
    assert any(n.startswith("spin #1") and "skipped back_up: no fresh scan of the rear" in n for n in notes)
    assert remembered > 0 and len(policy.memory.points()) == 0
    assert tiny_policy(recovery_enabled=False).recovery is None
    with pytest.raises(ValueError, match="backup_speed"):
        tiny_policy(backup_speed=2.0)


@pytest.mark.parametrize("rear_blocked", [False, True])
def test_a_robot_boxed_in_front_in_the_real_sim_recovers_and_says_so(graph, tiny_model_path, rear_blocked):
    """sim_node, perception_node and actor_node over DDS; a box 0.17 m in front of the robot's rim (and, in one
    case, one 0.07 m behind it: still inside the back-up's reach after the robot crept forward a little). Limited to 0.05 m/s the robot cannot make progress: a recovery starts, with one
    status line; it backs up when the scan shows the rear free, and spins instead when it does not. No contact."""
    def node(cls, **values):
        return graph.add(cls(parameter_overrides=[Parameter("use_sim_time", value=True),
                                                  *(Parameter(k, value=v) for k, v in values.items())]))

    node(SimNode, start_pose=[2.0, 2.0, 0.0], scan_rate=20.0)
    node(PerceptionNode, model_path=str(tiny_model_path))
    actor = node(ActorNode, model_path=str(tiny_model_path), hierarchical=False, mode1="none", weight_critic=0.0,
                 num_samples=32, horizon=8, max_linear_velocity=0.05, movement_time_allowance=1.0)
    statuses, scans = graph.collect(String, "/ojepa/actor_status"), graph.collect(LaserScan, "/scan")
    contacts, odoms = graph.collect(Bool, "/collision"), graph.collect(Odometry, "/odom")
    dropper = graph.add(Node("box_dropper")).create_publisher(Marker, "/sim/obstacles", 10)
    boxes = [(2.45, 2.0)] + ([(1.65, 2.0)] if rear_blocked else [])
    for i, (x, y) in enumerate(boxes):
        box = Marker(type=Marker.CUBE, action=Marker.ADD, ns="test", id=i)
        box.header.frame_id = "odom"
        box.pose.position.x, box.pose.position.y = x, y
        box.scale.x, box.scale.y, box.scale.z = 0.2, 0.6, 0.5
        dropper.publish(box)

    def seen(bearing: float) -> float:
        scan = scans[-1]
        return scan.ranges[round((bearing - scan.angle_min) / scan.angle_increment) % len(scan.ranges)]

    graph.wait_for(lambda: scans and seen(0.0) < 0.4 and (seen(math.pi) < 0.4) == rear_blocked, 20.0, "the boxes")
    actor.set_parameters([Parameter("goal_x", value=3.5), Parameter("goal_y", value=2.0),
                          Parameter("goal_active", value=True)])
    graph.wait_for(lambda: any(s.data.startswith("recovery: ") for s in statuses), 30.0, "a recovery")
    line = next(s.data for s in statuses if s.data.startswith("recovery: "))
    x, y, yaw = odometry_to_array(odoms[-1])[:3]  # the untrained planner may have turned the robot by then

    def reversed_by() -> float:
        """m the robot moved backward along its heading at the recovery's start."""
        now = odoms[-1].pose.pose.position
        return -((now.x - x) * math.cos(yaw) + (now.y - y) * math.sin(yaw))

    if rear_blocked:
        assert line.startswith("recovery: spin #1 (no progress") and "skipped back_up: an obstacle" in line, line
    else:
        assert line.startswith("recovery: back_up #1 (no progress"), line
        graph.wait_for(lambda: reversed_by() > 0.05, 10.0, "the robot to back up")
    assert not any(c.data for c in contacts)


def test_the_configurator_ends_a_goal_the_actor_gave_up(graph):
    """As after `reached`: the same goal may then be sent again."""
    config = graph.add(ConfiguratorNode())
    from ojepa_ros.nodes.qos import LATCHED

    # Latched as the actor's: the configurator subscribes transient local, which a volatile publisher does not meet.
    status = graph.add(Node("actor_status_stand_in")).create_publisher(String, "/ojepa/actor_status", LATCHED)
    config.active_goal = (3.0, 1.5, None)
    graph.wait_for(lambda: status.get_subscription_count() > 0, 5.0, "the configurator's subscription")
    status.publish(String(data="recovery: back_up #1 (no progress for 6.0 s; recovery 1 of 4)"))
    time.sleep(0.3)
    assert config.active_goal == (3.0, 1.5, None)
    status.publish(String(data="failed: stuck: no progress for 6.0 s after 4 recoveries in a row"))
    graph.wait_for(lambda: config.active_goal is None, 3.0, "the goal to end")
