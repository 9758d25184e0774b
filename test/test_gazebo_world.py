"""The Gazebo world (ojepa_ros/sim/gazebo_world.py) against the MuJoCo model the project simulates, the bridge
configuration against the topics the nodes use (README tables), `ign sdf -k` on real files, and bumper_node."""

from __future__ import annotations

import math
import re
import os
import shutil
import subprocess
import time
import xml.etree.ElementTree as ET
from pathlib import Path

import numpy as np
import pytest
import yaml

from ojepa_ros import graph as description
from ojepa_ros.sim.gazebo_world import RobotSettings, build_sdf
from ojepa_ros.sim.nav_env import RoomsNavEnv
from ojepa_ros.sim.world_family import world
from test_readme_tables import README, _type_fits, parse_tables

ROOT = Path(__file__).resolve().parents[1]
WORLDS = ("four_rooms", "seed_0", "seed_1234", "seed_1777")
SIM_PARAMS = yaml.safe_load((ROOT / "config" / "agent.yaml").read_text())["sim_node"]["ros__parameters"]
ROBOT = RobotSettings.from_params(SIM_PARAMS)


def sdf_of(name: str) -> ET.Element:
    return ET.fromstring(build_sdf(world(name), ROBOT))


def numbers(element: ET.Element, path: str) -> np.ndarray:
    return np.array(element.findtext(path).split(), dtype=float)


def mujoco_env(name: str) -> RoomsNavEnv:
    """The MuJoCo model sim_node builds from the same parameters."""
    return RoomsNavEnv(ROBOT.env_config(), world(name))


def rotation(rpy: np.ndarray) -> np.ndarray:
    """SDF's roll-pitch-yaw (fixed axes x, y, z) as a rotation matrix."""
    (cr, cp, cy), (sr, sp, sy) = np.cos(rpy), np.sin(rpy)
    rx = np.array([[1, 0, 0], [0, cr, -sr], [0, sr, cr]])
    ry = np.array([[cp, 0, sp], [0, 1, 0], [-sp, 0, cp]])
    rz = np.array([[cy, -sy, 0], [sy, cy, 0], [0, 0, 1]])
    return rz @ ry @ rx


@pytest.mark.parametrize("name", WORLDS)
def test_every_colliding_mujoco_geom_of_the_layout_has_an_sdf_collision_of_equal_pose_and_size(name):
    import mujoco

    root = sdf_of(name)
    assert root.get("version") == "1.9" and root.find("world").get("name") == name
    floor = root.find("world/model[@name='rooms']")
    assert floor.findtext("static") == "true"
    collisions = {c.get("name"): c for c in floor.iter("collision")}
    env = mujoco_env(name)
    m = env.model
    checked = set()
    for i in range(m.ngeom):
        if m.geom_bodyid[i] != 0 or m.geom_contype[i] == 0:  # the robot's body, or scenery (floors)
            continue
        geom = mujoco.mj_id2name(m, mujoco.mjtObj.mjOBJ_GEOM, i)
        collision = collisions[geom]
        pose = numbers(collision, "pose")
        np.testing.assert_allclose(pose[:3], m.geom_pos[i], atol=1e-6, err_msg=geom)
        np.testing.assert_allclose(m.geom_quat[i], [1, 0, 0, 0], atol=1e-9)
        np.testing.assert_allclose(pose[3:], 0.0, atol=1e-12)
        if m.geom_type[i] == mujoco.mjtGeom.mjGEOM_BOX:
            np.testing.assert_allclose(numbers(collision, "geometry/box/size"), 2 * m.geom_size[i], atol=1e-6)
        else:
            assert m.geom_type[i] == mujoco.mjtGeom.mjGEOM_CYLINDER, geom
            assert float(collision.findtext("geometry/cylinder/radius")) == pytest.approx(m.geom_size[i][0], abs=1e-6)
            assert float(collision.findtext("geometry/cylinder/length")) == pytest.approx(2 * m.geom_size[i][1],
                                                                                         abs=1e-6)
        rgba = numbers(floor, f"link/visual[@name='{geom}_visual']/material/diffuse")
        np.testing.assert_allclose(rgba, m.geom_rgba[i], atol=1e-6)
        checked.add(geom)
    env.close()
    assert checked and set(collisions) - checked == {"ground"}  # nothing collides in Gazebo that MuJoCo lacks
    assert floor.find("link/collision[@name='ground']/geometry/plane") is not None


def test_the_robot_has_the_mujoco_body_mass_camera_and_scanner():
    root = sdf_of("four_rooms")
    env = mujoco_env("four_rooms")
    m, c = env.model, env.config
    robot = root.find("world/model[@name='robot']")
    np.testing.assert_allclose(numbers(robot, "pose"), [*ROBOT.start_pose[:2], 0, 0, 0, ROBOT.start_pose[2]])
    base = robot.find(f"link[@name='{ROBOT.base_frame}']")
    # Body: MuJoCo's collision cylinder, same pose in the robot frame.
    body, geom = base.find("collision[@name='body']"), m.geom("robot_collision")
    assert float(body.findtext("geometry/cylinder/radius")) == pytest.approx(geom.size[0])
    assert float(body.findtext("geometry/cylinder/length")) == pytest.approx(2 * geom.size[1])
    np.testing.assert_allclose(numbers(body, "pose")[:3], geom.pos, atol=1e-9)
    # Mass and yaw inertia of all links together, about the robot's vertical axis.
    robot_body = m.body("robot")
    mass = yaw_inertia = 0.0
    for link in robot.findall("link"):
        pose = numbers(link, "pose") if link.find("pose") is not None else np.zeros(6)
        link_mass = float(link.findtext("inertial/mass"))
        tensor = np.diag([float(link.findtext(f"inertial/inertia/{k}")) for k in ("ixx", "iyy", "izz")])
        world_tensor = rotation(pose[3:]) @ tensor @ rotation(pose[3:]).T
        mass += link_mass
        yaw_inertia += world_tensor[2, 2] + link_mass * (pose[0] ** 2 + pose[1] ** 2)
    assert mass == pytest.approx(robot_body.mass[0])
    assert yaw_inertia == pytest.approx(robot_body.inertia[2])
    # Camera: the MuJoCo camera's mount, viewing direction and field of view; sim_node's image size.
    camera, cam = base.find("sensor[@type='camera']"), m.camera("robot_camera")
    pose = numbers(camera, "pose")
    np.testing.assert_allclose(pose[:3], cam.pos, atol=1e-9)
    quat = np.empty(9)
    import mujoco

    mujoco.mju_quat2Mat(quat, cam.quat)
    mujoco_view = quat.reshape(3, 3) @ [0, 0, -1]  # a MuJoCo camera looks along its -z
    # a gz camera looks along +x; the MJCF writes the axes to 6 digits
    np.testing.assert_allclose(rotation(pose[3:]) @ [1, 0, 0], mujoco_view, atol=1e-6)
    width, height = int(camera.findtext("camera/image/width")), int(camera.findtext("camera/image/height"))
    assert (width, height) == (SIM_PARAMS["image_width"], SIM_PARAMS["image_height"])
    hfov = float(camera.findtext("camera/horizontal_fov"))
    fovy = math.radians(float(cam.fovy[0]))
    assert math.tan(hfov / 2) == pytest.approx(width / height * math.tan(fovy / 2))
    focal = height / 2 / math.tan(fovy / 2)
    intrinsics = camera.find("camera/lens/intrinsics")
    assert [float(intrinsics.findtext(k)) for k in ("fx", "fy", "cx", "cy")] == pytest.approx(
        [focal, focal, (width - 1) / 2, (height - 1) / 2])
    assert float(camera.findtext("update_rate")) == SIM_PARAMS["camera_rate"]
    # Scanner: RoomsNavEnv.scan's beams, angles, range and height.
    lidar = base.find("sensor[@type='gpu_lidar']")
    horizontal = lidar.find("lidar/scan/horizontal")
    assert int(horizontal.findtext("samples")) == len(env.scan_angles) == env.scan().shape[0]
    assert float(horizontal.findtext("min_angle")) == pytest.approx(env.scan_angles[0])
    assert float(horizontal.findtext("max_angle")) == pytest.approx(env.scan_angles[-1])
    assert float(lidar.findtext("lidar/range/max")) == c.scan_range
    assert numbers(lidar, "pose")[2] == pytest.approx(c.scan_height)
    # The robot is invisible to both, as MuJoCo hides its geom group from the camera and the ray cast.
    for visual in robot.iter("visual"):
        flags = int(visual.findtext("visibility_flags"))
        assert flags & int(camera.findtext("camera/visibility_mask")) == 0
        assert flags & int(lidar.findtext("lidar/visibility_mask")) == 0
    # Bumper on the body; diff drive on the wheels, with the MuJoCo actuators' limits.
    assert base.findtext("sensor[@type='contact']/contact/collision") == "body"
    drive = robot.find("plugin[@filename='gz-sim-diff-drive-system']")
    wheels = [robot.find(f"link[@name='{side}_wheel']") for side in ("left", "right")]
    separation = numbers(wheels[0], "pose")[1] - numbers(wheels[1], "pose")[1]
    assert float(drive.findtext("wheel_separation")) == pytest.approx(separation)
    assert float(drive.findtext("wheel_radius")) == pytest.approx(numbers(wheels[0], "pose")[2])
    assert float(drive.findtext("wheel_radius")) == float(wheels[0].findtext("collision/geometry/cylinder/radius"))
    assert float(drive.findtext("max_linear_velocity")) == pytest.approx(env.action_space.high[0])
    assert float(drive.findtext("max_angular_velocity")) == pytest.approx(env.action_space.high[1])
    force = m.actuator_forcerange[0][1]
    assert float(drive.findtext("max_linear_acceleration")) == pytest.approx(force / robot_body.mass[0])
    env.close()


def test_the_world_runs_the_systems_gazebo_needs():
    root = sdf_of("seed_5")
    systems = {p.get("filename") for p in root.iter("plugin")}
    assert {f"gz-sim-{s}-system" for s in ("physics", "sensors", "scene-broadcaster", "user-commands", "contact",
                                           "triggered-publisher", "diff-drive", "odometry-publisher")} <= systems
    odometry = root.find(".//plugin[@filename='gz-sim-odometry-publisher-system']")
    assert (odometry.findtext("odom_frame"), odometry.findtext("robot_base_frame")) == \
        (SIM_PARAMS["odom_frame"], SIM_PARAMS["base_frame"])
    with pytest.raises(ValueError, match="moving"):
        from ojepa_ros.sim.world_family import mover_across

        layout = world("four_rooms")
        build_sdf(layout.with_obstacles(movers=(mover_across(layout, (1, 1), (3, 3), np.random.default_rng(0)),)),
                  ROBOT)


# ros_gz_bridge's message pairs (its README's table) for the types the bridge file uses.
GZ_TYPES = {"rosgraph_msgs/msg/Clock": "gz.msgs.Clock", "geometry_msgs/msg/Twist": "gz.msgs.Twist",
            "nav_msgs/msg/Odometry": "gz.msgs.Odometry", "tf2_msgs/msg/TFMessage": "gz.msgs.Pose_V",
            "sensor_msgs/msg/Image": "gz.msgs.Image", "sensor_msgs/msg/CameraInfo": "gz.msgs.CameraInfo",
            "sensor_msgs/msg/LaserScan": "gz.msgs.LaserScan", "std_msgs/msg/Bool": "gz.msgs.Boolean"}


def _gz_topics(root: ET.Element) -> dict[str, set[str]]:
    """What the world publishes and subscribes on gz transport, read from the SDF."""
    published = {s.findtext("topic") for s in root.iter("sensor") if s.findtext("topic")}
    published |= {c.findtext("topic") for c in root.iter("contact")}
    published |= {p.findtext(k) for p in root.iter("plugin") for k in ("odom_topic", "tf_topic") if p.findtext(k)}
    published |= {o.get("topic") for o in root.iter("output")}
    camera = next(s for s in root.iter("sensor") if s.get("type") == "camera")
    published.add(camera.findtext("topic").rsplit("/", 1)[0] + "/camera_info")  # gz-sensors' sibling topic
    published.add("/clock")  # gz-sim's own
    subscribed = {root.find(".//plugin[@filename='gz-sim-diff-drive-system']").findtext("topic")}
    return {"GZ_TO_ROS": published, "ROS_TO_GZ": subscribed}


def test_the_bridge_carries_what_the_nodes_use_of_sim_node_with_the_types_the_readme_gives():
    bridge = yaml.safe_load((ROOT / "config" / "gz_bridge.yaml").read_text())
    gz = _gz_topics(sdf_of("four_rooms"))
    tables = parse_tables(README.read_text())
    assert not tables.problems

    lines = README.read_text().splitlines()

    def rows(node: str, kind: str) -> dict[str, str]:
        """Name -> type of a node's rows, less those whose notes say they are the gym world's."""
        return {n: t for r in tables.rows if r.node == node and r.kind == kind
                and not re.search(r"\(gym[);]", lines[r.line - 1]) for n, t in zip(r.names, r.types)}

    agent = [s.name for s in description.AGENT]
    consumed = {n for node in agent for n in rows(node, "sub")}
    produced = {n for node in agent for n in rows(node, "pub")}
    bridged: dict[tuple[str, str], str] = {}
    for entry in bridge:
        assert set(entry) == {"ros_topic_name", "gz_topic_name", "ros_type_name", "gz_type_name", "direction"}
        assert entry["gz_topic_name"] in gz[entry["direction"]], entry
        assert GZ_TYPES[entry["ros_type_name"]] == entry["gz_type_name"], entry
        name = "/" + entry["ros_topic_name"].lstrip("/")
        bridged[(entry["direction"], name)] = entry["ros_type_name"]
        # A topic sim_node publishes (GZ_TO_ROS) or subscribes to (ROS_TO_GZ), or the one bumper_node reads.
        documented = {**rows("sim_node", "pub" if entry["direction"] == "GZ_TO_ROS" else "sub"),
                      **rows("bumper_node", "sub")}
        assert name in documented, f"{name} is none of sim_node's topics in that direction nor bumper_node's input"
        assert _type_fits("pub", documented[name], entry["ros_type_name"]), (entry, documented[name])
    # Everything an agent node takes from sim_node (and the clock), and the base command it sends, is carried;
    # the bumper level comes from bumper_node, which the gazebo graph starts.
    bumper = rows("bumper_node", "pub")
    for name, documented in rows("sim_node", "pub").items():
        if name in consumed and name not in bumper or name == "/clock":
            assert _type_fits("pub", documented, bridged[("GZ_TO_ROS", name)]), name
    assert set(bumper) & consumed == {"/collision"} and "bumper_node" in [s.name for s in description.nodes("gazebo")]
    for name in set(rows("sim_node", "sub")) & produced:
        assert _type_fits("sub", rows("sim_node", "sub")[name], bridged[("ROS_TO_GZ", name)]), name
    assert ("ROS_TO_GZ", "/cmd_vel") in bridged and ("GZ_TO_ROS", "/scan") in bridged


def _ign_check(path: Path) -> subprocess.CompletedProcess:
    return subprocess.run(["ign", "sdf", "-k", str(path)], capture_output=True, text=True, timeout=60)


@pytest.mark.skipif(shutil.which("ign") is None and os.environ.get("OJEPA_REQUIRE_IGN") != "1",
                    reason="no `ign` (Debian: ignition-tools, libsdformat-dev); CI sets OJEPA_REQUIRE_IGN=1")
def test_libsdformat_says_the_worlds_are_valid(tmp_path):
    from ojepa_ros import cli

    for name in WORLDS:
        out = tmp_path / f"{name}.sdf"
        assert cli.main(["gazebo-world", "--world", name, "--out", str(out)]) == 0
        result = _ign_check(out)
        assert result.returncode == 0 and "Valid." in result.stdout, (name, result.stdout, result.stderr)
    # The check can fail: a joint naming a link the model lacks is refused.
    broken = tmp_path / "broken.sdf"
    broken.write_text((tmp_path / "four_rooms.sdf").read_text().replace(
        f"<parent>{ROBOT.base_frame}</parent>", "<parent>no_such_link</parent>"))
    result = _ign_check(broken)
    assert result.returncode != 0 and "no_such_link" in result.stderr + result.stdout


def test_the_cli_takes_the_world_from_the_parameters_file(tmp_path, capsys):
    from ojepa_ros import cli

    params = tmp_path / "agent.yaml"
    params.write_text(yaml.safe_dump({"sim_node": {"ros__parameters": {**SIM_PARAMS, "rooms_layout": "seed_42",
                                                                       "image_width": 96}}}))
    out = tmp_path / "w.sdf"
    assert cli.main(["gazebo-world", "--config", str(params), "--out", str(out)]) == 0
    root = ET.parse(out).getroot()
    assert root.find("world").get("name") == "seed_42"
    assert root.findtext(".//sensor[@type='camera']/camera/image/width") == "96"
    params.write_text(yaml.safe_dump({"sim_node": {"ros__parameters": {k: v for k, v in SIM_PARAMS.items()
                                                                       if k != "scan_frame"}}}))
    with pytest.raises(SystemExit):
        cli.main(["gazebo-world", "--config", str(params), "--out", str(out)])
    assert "scan_frame" in capsys.readouterr().err


def test_bumper_node_turns_touches_into_the_collision_level(graph):
    """True from a touch until `hold` s after the last one, false otherwise; `false` touches change nothing."""
    from rclpy.node import Node
    from rclpy.parameter import Parameter
    from std_msgs.msg import Bool

    from ojepa_ros.nodes.bumper_node import BumperNode

    hold = 0.2
    graph.add(BumperNode(parameter_overrides=[Parameter("hold", value=hold), Parameter("rate", value=50.0)]))
    levels: list[tuple[float, bool]] = []
    probe = graph.add(Node("bumper_probe"))
    probe.create_subscription(Bool, "collision", lambda m: levels.append((time.monotonic(), m.data)), 10)
    touch = probe.create_publisher(Bool, "bumper/touch", 10)
    graph.wait_for(lambda: touch.get_subscription_count() > 0 and len(levels) >= 5, 10, "collision at its rate")
    touch.publish(Bool(data=False))
    time.sleep(0.1)
    assert not any(level for _, level in levels)
    start = len(levels)
    for _ in range(12):  # touching for ~0.6 s: one touch every 50 ms
        touch.publish(Bool(data=True))
        time.sleep(0.05)
    graph.wait_for(lambda: len(levels) > start and not levels[-1][1] and any(v for _, v in levels[start:]), 5,
                   "collision back to false after the touches")
    run = levels[start:]
    first_true = next(i for i, (_, v) in enumerate(run) if v)
    first_false = next(i for i, (_, v) in enumerate(run) if i > first_true and not v)
    assert all(v for _, v in run[first_true:first_false])  # no gap while touching
    assert 0.55 + hold / 2 <= run[first_false][0] - run[first_true][0] <= 0.55 + hold + 0.5
