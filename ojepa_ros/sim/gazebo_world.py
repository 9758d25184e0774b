"""The rooms world and sim_node's robot as a Gazebo (gz-sim) world in SDF 1.9, from the same layout and constants.

Every obstacle of a `RoomsLayout` becomes a collision and visual of equal pose, size, shape and colour in one
static model; the robot keeps the MuJoCo body (cylinder, mass, yaw inertia), drive limits, camera (resolution,
field of view, mount, intrinsics) and range scanner (beams, range, height) and gets the wheels a diff drive needs.
Gazebo publishes what sim_node does, on the gz topics of `GZ_TOPICS`, which config/gz_bridge.yaml bridges.

Written for Gazebo Harmonic, whose SDF 1.9 spec has a few elements libsdformat12's predates (the lidar's
`visibility_mask`, the camera's `optical_frame_id`); `ign sdf -k` passes them (it keeps elements it does not know).
"""

from __future__ import annotations

import argparse
import math
import xml.etree.ElementTree as ET
from dataclasses import dataclass, fields
from pathlib import Path

from ojepa_ros.sim.nav_env import NavEnvConfig, scan_angles
from ojepa_ros.sim.rooms_world import (
    AMBIENT, CAMERA_PITCH_DOWN, FLOOR_Z, GROUND_RGBA, GROUND_Z, MAX_FORCE, MAX_TORQUE, ROBOT_BODY_HALF_HEIGHT,
    ROBOT_BODY_Z, ROBOT_GEOM_GROUP, ROBOT_MASS, ROBOT_RGBA, ROBOT_YAW_INERTIA, SUN_DIFFUSE, SUN_DIRECTION,
    WHEEL_HALF_WIDTH, WHEEL_INSET, WHEEL_RADIUS, WHEEL_RGBA, Box, RoomsLayout, camera_position, pinhole, topdown_window)

SDF_VERSION = "1.9"
ROBOT = "robot"
# gz transport topics the robot's sensors and systems use (config/gz_bridge.yaml bridges them to the ROS names;
# gz-sim adds /clock, and the camera its CameraInfo beside the image, on /camera/camera_info).
GZ_TOPICS = {"cmd_vel": "/cmd_vel", "odom": "/odom", "tf": "/tf", "image": "/camera/image_raw", "scan": "/scan",
             "contacts": "/bumper/contacts", "touch": "/bumper/touch"}
WHEEL_MASS = 0.2  # kg each, taken out of the body's mass so the robot weighs ROBOT_MASS
CASTER_RADIUS = ROBOT_BODY_Z - ROBOT_BODY_HALF_HEIGHT  # the body's clearance: frictionless casters fill it
ROBOT_VISIBILITY = 1 << ROBOT_GEOM_GROUP  # the robot's visuals: hidden from its own camera and scanner
SENSOR_MASK = 0xFFFFFFFF & ~ROBOT_VISIBILITY
CAMERA_CLIP = (0.01, 100.0)  # m: near as MuJoCo's ~1 cm (a robot touching a wall sees it), far past any floor


@dataclass(frozen=True)
class RobotSettings:
    """What sim_node's parameters (config/agent.yaml) set for the simulated robot: sensors, rates, frames, start."""

    image_width: int
    image_height: int
    camera_fovy: float
    camera_rate: float
    odom_rate: float
    scan_rate: float
    start_pose: tuple[float, float, float]
    odom_frame: str
    base_frame: str
    camera_frame: str
    camera_optical_frame: str
    scan_frame: str

    @classmethod
    def from_params(cls, params: dict) -> RobotSettings:
        """From sim_node's `ros__parameters`; a missing one raises KeyError naming it."""
        missing = [f.name for f in fields(cls) if f.name not in params]
        if missing:
            raise KeyError(f"sim_node parameters lack {missing}")
        return cls(**{f.name: params[f.name] for f in fields(cls)})

    def env_config(self) -> NavEnvConfig:
        """The MuJoCo robot sim_node builds from these parameters."""
        return NavEnvConfig(image_width=self.image_width, image_height=self.image_height,
                            camera_fovy=self.camera_fovy)


def _fmt(*values: float) -> str:
    return " ".join(f"{v:.9g}" for v in values)


def _add(parent: ET.Element, tag: str, text: str | float | None = None, **attrib: str) -> ET.Element:
    element = ET.SubElement(parent, tag, attrib)
    if text is not None:
        element.text = text if isinstance(text, str) else _fmt(text)
    return element


def _pose(parent: ET.Element, x: float = 0.0, y: float = 0.0, z: float = 0.0, roll: float = 0.0,
          pitch: float = 0.0, yaw: float = 0.0) -> None:
    _add(parent, "pose", _fmt(x, y, z, roll, pitch, yaw))


def _geometry(parent: ET.Element, shape: str, size: tuple[float, ...]) -> None:
    """A box (full sizes x, y, z), cylinder (radius, length), sphere (radius) or plane (normal's size x, y)."""
    geometry = _add(_add(parent, "geometry"), shape)
    if shape == "box":
        _add(geometry, "size", _fmt(*size))
    elif shape == "cylinder":
        _add(geometry, "radius", size[0])
        _add(geometry, "length", size[1])
    elif shape == "sphere":
        _add(geometry, "radius", size[0])
    else:
        _add(geometry, "normal", "0 0 1")
        _add(geometry, "size", _fmt(*size))


def _material(visual: ET.Element, rgba: tuple) -> None:
    material = _add(visual, "material")
    for tag in ("ambient", "diffuse"):
        _add(material, tag, _fmt(*rgba))
    _add(material, "specular", "0 0 0 1")


def _part(link: ET.Element, name: str, shape: str, size: tuple[float, ...], pose: tuple[float, ...],
          rgba: tuple | None, collide: bool = True, visibility: int | None = None) -> ET.Element | None:
    """A collision (when `collide`) and a visual (when `rgba`) of one shape at one pose; returns the collision."""
    collision = None
    if collide:
        collision = _add(link, "collision", name=name)
        _pose(collision, *pose)
        _geometry(collision, shape, size)
    if rgba is not None:
        visual = _add(link, "visual", name=f"{name}_visual")
        _pose(visual, *pose)
        _geometry(visual, shape, size)
        _material(visual, rgba)
        if visibility is not None:
            _add(visual, "visibility_flags", str(visibility))
    return collision


def _obstacle(link: ET.Element, box: Box) -> None:
    """An obstacle standing on the floor, as rooms_world's MJCF places it."""
    pose = (*box.center, box.height / 2)
    if box.shape == "cylinder":
        _part(link, box.name, "cylinder", (box.half_size[0], box.height), pose, box.rgba)
    else:
        _part(link, box.name, "box", (2 * box.half_size[0], 2 * box.half_size[1], box.height), pose, box.rgba)


def _floor_model(world: ET.Element, layout: RoomsLayout) -> None:
    """The ground (a colliding plane under the grey square the top-down view frames), each room's coloured floor
    (scenery only, as in MuJoCo) and every obstacle, in one static model."""
    model = _add(world, "model", name="rooms")
    _add(model, "static", "true")
    link = _add(model, "link", name="floor")
    x0, y0, span = topdown_window(layout)
    middle = (x0 + span / 2, y0 + span / 2)
    _part(link, "ground", "plane", (span, span), (*middle, 0.0), None)
    _part(link, "ground", "box", (span, span, GROUND_Z[1] - GROUND_Z[0]), (*middle, sum(GROUND_Z) / 2),
          GROUND_RGBA, collide=False)
    for room in layout.rooms:
        centre = ((room.xmin + room.xmax) / 2, (room.ymin + room.ymax) / 2, sum(FLOOR_Z) / 2)
        size = (room.xmax - room.xmin, room.ymax - room.ymin, FLOOR_Z[1] - FLOOR_Z[0])
        _part(link, f"{room.name}_floor", "box", size, centre, room.floor_rgba, collide=False)
    for box in layout.obstacles:
        _obstacle(link, box)


def _inertial(link: ET.Element, mass: float, ixx: float, iyy: float, izz: float, z: float = 0.0) -> None:
    inertial = _add(link, "inertial")
    _pose(inertial, z=z)
    _add(inertial, "mass", mass)
    inertia = _add(inertial, "inertia")
    for tag, value in (("ixx", ixx), ("ixy", 0.0), ("ixz", 0.0), ("iyy", iyy), ("iyz", 0.0), ("izz", izz)):
        _add(inertia, tag, value)


def _frictionless(collision: ET.Element) -> None:
    ode = _add(_add(_add(collision, "surface"), "friction"), "ode")
    _add(ode, "mu", 0.0)
    _add(ode, "mu2", 0.0)


def wheel_inertia() -> tuple[float, float]:
    """(about the axle, about a diameter) of one wheel: a solid cylinder."""
    axle = WHEEL_MASS * WHEEL_RADIUS ** 2 / 2
    return axle, WHEEL_MASS * (3 * WHEEL_RADIUS ** 2 + (2 * WHEEL_HALF_WIDTH) ** 2) / 12


def _camera(link: ET.Element, robot: RobotSettings, radius: float) -> None:
    """sim_node's camera: its mount and pitch, resolution, field of view and pinhole intrinsics."""
    sensor = _add(link, "sensor", name="camera", type="camera")
    _pose(sensor, *camera_position(radius), pitch=CAMERA_PITCH_DOWN)  # a positive pitch tilts x (forward) down
    _add(sensor, "always_on", "true")
    _add(sensor, "update_rate", robot.camera_rate)
    _add(sensor, "topic", GZ_TOPICS["image"])
    _add(sensor, "gz_frame_id", robot.camera_optical_frame)
    camera = _add(sensor, "camera")
    f, cx, cy = pinhole(robot.image_width, robot.image_height, robot.camera_fovy)
    _add(camera, "horizontal_fov", 2 * math.atan(robot.image_width / 2 / f))
    image = _add(camera, "image")
    _add(image, "width", str(robot.image_width))
    _add(image, "height", str(robot.image_height))
    _add(image, "format", "R8G8B8")
    clip = _add(camera, "clip")
    _add(clip, "near", CAMERA_CLIP[0])
    _add(clip, "far", CAMERA_CLIP[1])
    intrinsics = _add(_add(camera, "lens"), "intrinsics")
    for tag, value in (("fx", f), ("fy", f), ("cx", cx), ("cy", cy), ("s", 0.0)):
        _add(intrinsics, tag, value)
    _add(camera, "optical_frame_id", robot.camera_optical_frame)
    _add(camera, "visibility_mask", str(SENSOR_MASK))


def _lidar(link: ET.Element, robot: RobotSettings, env: NavEnvConfig) -> None:
    """RoomsNavEnv.scan as a planar gpu_lidar: its beams (first and last angle), range and height."""
    sensor = _add(link, "sensor", name="scan", type="gpu_lidar")
    _pose(sensor, z=env.scan_height)
    _add(sensor, "always_on", "true")
    _add(sensor, "update_rate", robot.scan_rate)
    _add(sensor, "topic", GZ_TOPICS["scan"])
    _add(sensor, "gz_frame_id", robot.scan_frame)
    lidar = _add(sensor, "lidar")
    scan = _add(lidar, "scan")
    angles = scan_angles(env.scan_beams)
    horizontal = _add(scan, "horizontal")
    for tag, value in (("samples", str(env.scan_beams)), ("resolution", 1.0), ("min_angle", float(angles[0])),
                       ("max_angle", float(angles[-1]))):
        _add(horizontal, tag, value)
    vertical = _add(scan, "vertical")
    for tag, value in (("samples", "1"), ("resolution", 1.0), ("min_angle", 0.0), ("max_angle", 0.0)):
        _add(vertical, tag, value)
    ranges = _add(lidar, "range")
    _add(ranges, "min", env.scan_range_min)
    _add(ranges, "max", env.scan_range)
    _add(ranges, "resolution", 0.01)
    _add(lidar, "visibility_mask", str(SENSOR_MASK))


def _plugin(parent: ET.Element, system: str, cls: str, **settings: str | float) -> ET.Element:
    plugin = _add(parent, "plugin", filename=f"gz-sim-{system}-system", name=f"gz::sim::systems::{cls}")
    for tag, value in settings.items():
        _add(plugin, tag, value)
    return plugin


def _robot_model(world: ET.Element, robot: RobotSettings) -> None:
    """The MuJoCo robot on two driven wheels and two frictionless casters, with its camera, scanner and bumper."""
    env = robot.env_config()
    radius, wheel_y = env.robot_radius, env.robot_radius - WHEEL_INSET
    model = _add(world, "model", name=ROBOT)
    _pose(model, robot.start_pose[0], robot.start_pose[1], 0.0, yaw=robot.start_pose[2])
    base = _add(model, "link", name=robot.base_frame)
    axle, diameter = wheel_inertia()
    wheels_yaw = 2 * (diameter + WHEEL_MASS * wheel_y ** 2)  # the wheels' share of the robot's yaw inertia
    _inertial(base, ROBOT_MASS - 2 * WHEEL_MASS, ROBOT_YAW_INERTIA, ROBOT_YAW_INERTIA,
              ROBOT_YAW_INERTIA - wheels_yaw, z=ROBOT_BODY_Z)
    _part(base, "body", "cylinder", (radius, 2 * ROBOT_BODY_HALF_HEIGHT), (0.0, 0.0, ROBOT_BODY_Z),
          ROBOT_RGBA, visibility=ROBOT_VISIBILITY)
    for name, x in (("front_caster", radius / 2), ("rear_caster", -radius / 2)):
        _frictionless(_part(base, name, "sphere", (CASTER_RADIUS,), (x, 0.0, CASTER_RADIUS), None))
    _camera(base, robot, radius)
    _lidar(base, robot, env)
    bumper = _add(base, "sensor", name="bumper", type="contact")
    _add(bumper, "always_on", "true")
    _add(bumper, "update_rate", robot.odom_rate)
    contact = _add(bumper, "contact")
    _add(contact, "collision", "body")
    _add(contact, "topic", GZ_TOPICS["contacts"])
    for side, sign in (("left", 1.0), ("right", -1.0)):
        wheel = _add(model, "link", name=f"{side}_wheel")
        _pose(wheel, 0.0, sign * wheel_y, WHEEL_RADIUS, roll=-math.pi / 2)  # its z (the axle) along +y
        _inertial(wheel, WHEEL_MASS, diameter, diameter, axle)
        _part(wheel, f"{side}_wheel", "cylinder", (WHEEL_RADIUS, 2 * WHEEL_HALF_WIDTH), (), WHEEL_RGBA,
              visibility=ROBOT_VISIBILITY)
        joint = _add(model, "joint", name=f"{side}_wheel_joint", type="revolute")
        _add(joint, "parent", robot.base_frame)
        _add(joint, "child", f"{side}_wheel")
        _add(_add(joint, "axis"), "xyz", "0 0 1")
    limits = {"linear_velocity": env.max_linear, "angular_velocity": env.max_angular,
              "linear_acceleration": MAX_FORCE / ROBOT_MASS, "angular_acceleration": MAX_TORQUE / ROBOT_YAW_INERTIA}
    _plugin(model, "diff-drive", "DiffDrive", left_joint="left_wheel_joint", right_joint="right_wheel_joint",
            wheel_separation=2 * wheel_y, wheel_radius=WHEEL_RADIUS, topic=GZ_TOPICS["cmd_vel"],
            **{f"max_{k}": v for k, v in limits.items()}, **{f"min_{k}": -v for k, v in limits.items()})
    # Ground truth in the world frame, as sim_node's odometry (the diff drive's own goes to its default topic).
    _plugin(model, "odometry-publisher", "OdometryPublisher", odom_frame=robot.odom_frame,
            robot_base_frame=robot.base_frame, odom_publish_frequency=robot.odom_rate, odom_topic=GZ_TOPICS["odom"],
            tf_topic=GZ_TOPICS["tf"], dimensions="2")


def _world_systems(world: ET.Element, env: NavEnvConfig) -> None:
    """Physics at MuJoCo's step, sensors, scene broadcaster, user commands, contacts; each bumper contact message
    also goes out as a Boolean `true` on the touch topic (bridged to ROS, where bumper_node holds it as a level)."""
    physics = _add(world, "physics", name="mujoco_step", type="ignored")
    _add(physics, "max_step_size", env.physics_dt)
    _add(physics, "real_time_factor", 1.0)
    _plugin(world, "physics", "Physics")
    _add(_plugin(world, "sensors", "Sensors"), "render_engine", "ogre2")
    _plugin(world, "scene-broadcaster", "SceneBroadcaster")
    _plugin(world, "user-commands", "UserCommands")
    _plugin(world, "contact", "Contact")
    touch = _plugin(world, "triggered-publisher", "TriggeredPublisher")
    _add(touch, "input", type="gz.msgs.Contacts", topic=GZ_TOPICS["contacts"])
    _add(touch, "output", "data: true", type="gz.msgs.Boolean", topic=GZ_TOPICS["touch"])


def build_sdf(layout: RoomsLayout, robot: RobotSettings) -> str:
    """The SDF world of `layout` with sim_node's robot at its start pose, lit as the MuJoCo scene (no shadows)."""
    if layout.movers:
        raise ValueError(f"layout {layout.name!r} has moving obstacles: no Gazebo counterpart is generated for them")
    env = robot.env_config()
    sdf = ET.Element("sdf", version=SDF_VERSION)
    world = _add(sdf, "world", name=layout.name or "rooms")
    _world_systems(world, env)
    scene = _add(world, "scene")
    _add(scene, "ambient", _fmt(AMBIENT, AMBIENT, AMBIENT, 1.0))
    _add(scene, "background", "0.8 0.8 0.8 1")
    _add(scene, "shadows", "false")
    sun = _add(world, "light", name="sun", type="directional")
    _add(sun, "cast_shadows", "false")
    _pose(sun, z=10.0)
    _add(sun, "diffuse", _fmt(SUN_DIFFUSE, SUN_DIFFUSE, SUN_DIFFUSE, 1.0))
    _add(sun, "specular", "0 0 0 1")
    _add(sun, "direction", _fmt(*SUN_DIRECTION))
    _floor_model(world, layout)
    _robot_model(world, robot)
    ET.indent(sdf)
    return '<?xml version="1.0"?>\n' + ET.tostring(sdf, encoding="unicode") + "\n"


def main(argv: list[str] | None = None) -> int:
    """`ojepa gazebo-world`: write the SDF of a world of the family, robot settings from sim_node's parameters."""
    import yaml

    from ojepa_ros.paths import config_file
    from ojepa_ros.sim.world_family import world

    parser = argparse.ArgumentParser(prog="ojepa gazebo-world", description=__doc__.splitlines()[0])
    parser.add_argument("--world", help="four_rooms or seed_N (default: sim_node's rooms_layout in --config)")
    parser.add_argument("--out", type=Path, required=True, help="the .sdf file to write")
    parser.add_argument("--config", type=Path, default=config_file("agent.yaml"),
                        help="parameters file whose sim_node section sets the robot's sensors, rates and frames")
    args = parser.parse_args(argv)
    params = (yaml.safe_load(args.config.read_text()) or {}).get("sim_node", {}).get("ros__parameters", {})
    name = args.world or params.get("rooms_layout", "four_rooms")
    try:
        text = build_sdf(world(name), RobotSettings.from_params(params))
    except (KeyError, ValueError) as error:
        parser.error(str(error))
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(text)
    print(f"gazebo-world: wrote {name} to {args.out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
