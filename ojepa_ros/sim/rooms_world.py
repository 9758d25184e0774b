"""Floor plans (rooms, doorways, landmarks, furniture, moving obstacles) and their MuJoCo model; python + numpy.

Obstacles are axis-aligned boxes or upright cylinders, so the simulator's own clearance is analytic: it places
starts, goals and furniture, and checks the robot's sensors in tests; nothing the robot learns from reads it.
The four-room world here is one named member of the generated family in sim/world_family.py.
"""
from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

WALL_THICKNESS = 0.1
WALL_HEIGHT = 0.5
ROBOT_GEOM_GROUP = 2  # hidden from the robot's own camera, shown in the top-down view
ROBOT_MASS = 5.0
ROBOT_YAW_INERTIA = 0.1
MAX_FORCE = 10.0  # N: 2 m/s^2 at 5 kg, so acceleration is physical
MAX_TORQUE = 0.6  # N m: 6 rad/s^2
VELOCITY_TIME_CONSTANT = 0.01  # s: stiff tracking keeps side slip under 1 cm/s in tight turns
ROBOT_BODY_HALF_HEIGHT = 0.075  # m: the collision cylinder's half-height
ROBOT_BODY_Z = 0.085  # m: its centre above the floor (so it clears the floor by 1 cm)
WHEEL_RADIUS = 0.05
WHEEL_HALF_WIDTH = 0.015
WHEEL_INSET = 0.005  # m: wheel centres this far inside the rim, just proud of the body
ROBOT_RGBA = (0.95, 0.95, 0.95, 1)
WHEEL_RGBA = (0.1, 0.1, 0.1, 1)
CAMERA_HEIGHT = 0.25
CAMERA_FORWARD = 0.5  # of the radius: the camera sits half-way to the rim
CAMERA_PITCH_DOWN = 0.17  # rad, about 10 degrees
SUN_DIRECTION = (0.3, 0.2, -1.0)
SUN_DIFFUSE = 0.4
AMBIENT = 0.45  # the headlight's ambient light
TOPDOWN_MARGIN = 0.2
GROUND_Z = (-0.013, -0.011)  # m: the grey square's bottom and top, under the rooms' floors
FLOOR_Z = (-0.01, 0.0)  # m: each room's coloured floor (scenery; nothing collides with it)
GROUND_RGBA = (0.5, 0.5, 0.5, 1)


@dataclass(frozen=True)
class Box:
    """Obstacle standing on the floor: an axis-aligned box, or (shape "cylinder") an upright cylinder of
    radius half_size[0]."""

    name: str
    center: tuple[float, float]
    half_size: tuple[float, float]
    height: float
    rgba: tuple
    shape: str = "box"


@dataclass(frozen=True)
class Mover:
    """A box that slides back and forth between a and b at `speed` m/s on its own (a MuJoCo mocap body)."""

    name: str
    a: tuple[float, float]
    b: tuple[float, float]
    half_size: tuple[float, float]
    height: float
    rgba: tuple
    speed: float = 0.3
    phase: float = 0.0  # s of motion already done at t = 0

    def position(self, t: float) -> np.ndarray:
        """Centre (x, y) at time t: a triangle wave between a and b."""
        a, b = np.asarray(self.a, dtype=float), np.asarray(self.b, dtype=float)
        length = float(np.hypot(*(b - a)))
        if length < 1e-9 or self.speed <= 0:
            return a
        travelled = (t + self.phase) * self.speed % (2 * length)
        return a + (b - a) * (min(travelled, 2 * length - travelled) / length)


@dataclass(frozen=True)
class Room:
    name: str
    xmin: float
    ymin: float
    xmax: float
    ymax: float
    floor_rgba: tuple = (0.7, 0.7, 0.7, 1.0)


@dataclass(frozen=True)
class RoomsLayout:
    rooms: tuple[Room, ...]
    obstacles: tuple[Box, ...]
    movers: tuple[Mover, ...] = ()
    name: str = ""

    def with_obstacles(self, extra: tuple[Box, ...] = (), movers: tuple[Mover, ...] = ()) -> RoomsLayout:
        """The same floor with more static obstacles and moving ones (e.g. dropped in front of the robot)."""
        return RoomsLayout(self.rooms, self.obstacles + tuple(extra), self.movers + tuple(movers), self.name)

    def without(self, name: str) -> RoomsLayout:
        """The same floor less the obstacle or mover called `name`."""
        return RoomsLayout(self.rooms, tuple(b for b in self.obstacles if b.name != name),
                           tuple(m for m in self.movers if m.name != name), self.name)

    @property
    def bounds(self) -> tuple[float, float, float, float]:
        """(xmin, ymin, xmax, ymax) of the union of rooms."""
        return (min(r.xmin for r in self.rooms), min(r.ymin for r in self.rooms),
                max(r.xmax for r in self.rooms), max(r.ymax for r in self.rooms))


Door = tuple[str, float, tuple[float, float]]  # (axis of the wall line, its coordinate, opening (lo, hi))

# R0 = SW, R1 = SE, R2 = NE, R3 = NW. No R3<->R0 door: R0->R3 must pass R1 and R2.
_ROOMS = (Room("R0", 0, 0, 4, 4, (0.85, 0.75, 0.55, 1)), Room("R1", 4, 0, 8, 4, (0.6, 0.7, 0.85, 1)),
          Room("R2", 4, 4, 8, 8, (0.6, 0.8, 0.55, 1)), Room("R3", 0, 4, 4, 8, (0.8, 0.6, 0.8, 1)))
_DOORS: tuple[Door, ...] = (("x", 4.0, (1.5, 2.5)), ("y", 4.0, (5.5, 6.5)), ("x", 4.0, (5.5, 6.5)))
_WALL_RGBA = ((0.6, 0.25, 0.15, 1), (0.15, 0.2, 0.5, 1), (0.1, 0.4, 0.2, 1), (0.4, 0.15, 0.45, 1))
# Landmarks (centre, rgba) >= 0.8 m from room centres and doorways, so random starts fit.
_LANDMARKS = (
    (((0.7, 0.7), (1.0, 0.9, 0.0, 1)), ((3.3, 3.3), (0.9, 0.1, 0.1, 1))),
    (((7.3, 0.7), (0.9, 0.0, 0.9, 1)), ((7.3, 3.3), (0.05, 0.05, 0.05, 1))),
    (((7.3, 7.3), (0.0, 0.9, 0.9, 1)), ((4.7, 7.3), (1.0, 1.0, 1.0, 1))),
    (((0.7, 4.7), (0.1, 0.2, 1.0, 1)), ((2.0, 7.3), (1.0, 0.5, 0.0, 1))),
)
LANDMARK_HALF = 0.15
LANDMARK_HEIGHT = 0.5


def _intervals_minus(lo: float, hi: float, gaps: list[tuple[float, float]]) -> list[tuple[float, float]]:
    """[lo, hi] with the door openings cut out."""
    out, start = [], lo
    for g0, g1 in sorted(gaps):
        if g1 <= lo or g0 >= hi:
            continue
        if g0 > start:
            out.append((start, g0))
        start = max(start, g1)
    if start < hi:
        out.append((start, hi))
    return out


def room_walls(room: Room, bounds: tuple[float, float, float, float], doors: tuple[Door, ...],
                rgba: tuple) -> list[Box]:
    """Wall skins on the room's own side of each wall line, so each room shows its own colour.

    An interior wall is two half-thickness skins (one per room); an outer wall is one full skin.
    """
    half = WALL_THICKNESS / 2
    boxes = []
    # (side, axis of the wall line, line coordinate, inward sign, span along the wall)
    sides = (("W", "x", room.xmin, 1, (room.ymin, room.ymax)), ("E", "x", room.xmax, -1, (room.ymin, room.ymax)),
             ("S", "y", room.ymin, 1, (room.xmin, room.xmax)), ("N", "y", room.ymax, -1, (room.xmin, room.xmax)))
    outer = {"x": (bounds[0], bounds[2]), "y": (bounds[1], bounds[3])}
    along_outer = {"x": (bounds[1], bounds[3]), "y": (bounds[0], bounds[2])}
    for side, axis, line, inward, (lo, hi) in sides:
        if line in outer[axis]:
            across_c, across_h = line, half
            # Outer walls reach past the building's corners so it has no notches.
            lo -= half if lo == along_outer[axis][0] else 0.0
            hi += half if hi == along_outer[axis][1] else 0.0
        else:
            across_c, across_h = line + inward * half / 2, half / 2
        gaps = [g for a, c, g in doors if a == axis and c == line]
        for k, (s0, s1) in enumerate(_intervals_minus(lo, hi, gaps)):
            along_c, along_h = (s0 + s1) / 2, (s1 - s0) / 2
            center = (across_c, along_c) if axis == "x" else (along_c, across_c)
            size = (across_h, along_h) if axis == "x" else (along_h, across_h)
            boxes.append(Box(f"{room.name}_wall_{side}{k}", center, size, WALL_HEIGHT, rgba))
    return boxes


def default_layout() -> RoomsLayout:
    """The 8 m x 8 m, 2x2-room floor with three doorways (none between R3 and R0)."""
    bounds = RoomsLayout(_ROOMS, ()).bounds
    obstacles: list[Box] = []
    for room, wall_rgba, landmarks in zip(_ROOMS, _WALL_RGBA, _LANDMARKS):
        obstacles += room_walls(room, bounds, _DOORS, wall_rgba)
        obstacles += [Box(f"{room.name}_landmark_{k}", c, (LANDMARK_HALF, LANDMARK_HALF), LANDMARK_HEIGHT, rgba)
                      for k, (c, rgba) in enumerate(landmarks)]
    return RoomsLayout(_ROOMS, tuple(obstacles), name="four_rooms")


def clearance(layout: RoomsLayout, xy: np.ndarray, t: float = 0.0) -> np.ndarray:
    """Distance from each point (..., 2) to the nearest obstacle (movers where they are at time t); 0 inside one."""
    xy = np.asarray(xy, dtype=np.float64)
    boxes = [b for b in layout.obstacles if b.shape == "box"]
    boxes += [Box(m.name, tuple(m.position(t)), m.half_size, m.height, m.rgba) for m in layout.movers]
    cylinders = [b for b in layout.obstacles if b.shape == "cylinder"]
    best = np.full(xy.shape[:-1], np.inf)
    if boxes:
        centers = np.array([b.center for b in boxes])
        halves = np.array([b.half_size for b in boxes])
        outside = np.maximum(np.abs(xy[..., None, :] - centers) - halves, 0.0)
        best = np.minimum(best, np.sqrt((outside**2).sum(-1)).min(-1))
    if cylinders:
        centers = np.array([c.center for c in cylinders])
        radii = np.array([c.half_size[0] for c in cylinders])
        gap = np.linalg.norm(xy[..., None, :] - centers, axis=-1) - radii
        best = np.minimum(best, np.maximum(gap, 0.0).min(-1))
    return best


def doorways(layout: RoomsLayout) -> list[tuple[np.ndarray, np.ndarray]]:
    """(centre, unit normal) of every opening in a wall shared by two rooms, found from the geometry."""
    found = []
    for i, a in enumerate(layout.rooms):
        for b in layout.rooms[i + 1:]:
            for axis, line in ((0, a.xmax), (0, a.xmin), (1, a.ymax), (1, a.ymin)):
                if line not in ((b.xmin, b.xmax) if axis == 0 else (b.ymin, b.ymax)):
                    continue
                lo = max(a.ymin, b.ymin) if axis == 0 else max(a.xmin, b.xmin)
                hi = min(a.ymax, b.ymax) if axis == 0 else min(a.xmax, b.xmax)
                if hi <= lo:
                    continue
                along = np.linspace(lo, hi, 161)
                across = np.full_like(along, line)
                pts = np.stack((across, along) if axis == 0 else (along, across), axis=1)
                walls = RoomsLayout(layout.rooms, tuple(o for o in layout.obstacles if "_wall_" in o.name))
                open_pts = pts[clearance(walls, pts) > 0.05]
                if len(open_pts):
                    found.append((open_pts.mean(0), np.eye(2)[axis]))
    return found


def room_of(layout: RoomsLayout, x: float, y: float) -> int | None:
    """Index of the room containing (x, y), or None outside every room."""
    for i, r in enumerate(layout.rooms):
        if r.xmin <= x <= r.xmax and r.ymin <= y <= r.ymax:
            return i
    return None


def sample_free_pose(layout: RoomsLayout, rng: np.random.Generator, room: int | None = None,
                     margin: float = 0.45) -> tuple[float, float, float]:
    """Uniform (x, y, yaw) in a room (random if None) at least `margin` from every obstacle."""
    r = layout.rooms[int(rng.integers(len(layout.rooms))) if room is None else room]
    for _ in range(100):
        xy = rng.uniform((r.xmin, r.ymin), (r.xmax, r.ymax), size=(64, 2))
        ok = np.flatnonzero(clearance(layout, xy) >= margin)
        if ok.size:
            x, y = xy[ok[0]]
            return float(x), float(y), float(rng.uniform(-np.pi, np.pi))
    raise RuntimeError(f"no free pose with margin {margin} m in room {r.name}")


def topdown_window(layout: RoomsLayout) -> tuple[float, float, float]:
    """(x0, y0, span): the square of the floor the top-down camera sees, lower-left corner first."""
    xmin, ymin, xmax, ymax = layout.bounds
    span = max(xmax - xmin, ymax - ymin) + 2 * TOPDOWN_MARGIN
    return (xmin + xmax - span) / 2, (ymin + ymax - span) / 2, span


def camera_position(robot_radius: float) -> tuple[float, float, float]:
    """Where the camera sits in the robot's frame (x forward, z up; the frame's origin on the floor)."""
    return (robot_radius * CAMERA_FORWARD, 0.0, CAMERA_HEIGHT)


# camera_link -> optical frame: the fixed REP-103 rotation (roll -90 deg, yaw -90 deg), x y z w.
OPTICAL_ROTATION = (-0.5, 0.5, -0.5, 0.5)


def static_frames(robot_radius: float, scan_height: float) -> list[tuple[str, str, tuple, tuple]]:
    """The robot's fixed frames as (parent, child, xyz, quaternion xyzw), named by sim_node's frame parameters:
    base -> camera (its mount, pitched down), camera -> optical frame, base -> scanner (at the base's centre)."""
    half = CAMERA_PITCH_DOWN / 2.0  # a positive pitch about y tilts x (forward) down
    return [("base_frame", "camera_frame", camera_position(robot_radius), (0.0, math.sin(half), 0.0, math.cos(half))),
            ("camera_frame", "camera_optical_frame", (0.0, 0.0, 0.0), OPTICAL_ROTATION),
            ("base_frame", "scan_frame", (0.0, 0.0, scan_height), (0.0, 0.0, 0.0, 1.0))]


def pinhole(width: int, height: int, fovy_deg: float) -> tuple[float, float, float]:
    """(f, cx, cy) of the ideal pinhole MuJoCo renders with vertical field of view fovy and square pixels,
    pixel centres at integer coordinates."""
    return (height / 2.0) / math.tan(math.radians(fovy_deg) / 2.0), (width - 1) / 2.0, (height - 1) / 2.0


def _fmt(*values: float) -> str:
    return " ".join(f"{v:.6g}" for v in values)


def _box_geom(name: str, center: tuple[float, float], half: tuple[float, float], z: tuple[float, float],
              rgba: tuple, collide: bool, shape: str = "box") -> str:
    """One box (or cylinder of radius half[0]) geom spanning heights z = (bottom, top); non-colliding ones are
    scenery only."""
    flag = int(collide)
    size = _fmt(*half, (z[1] - z[0]) / 2) if shape == "box" else _fmt(half[0], (z[1] - z[0]) / 2)
    return (f'\n    <geom name="{name}" type="{shape}" size="{size}"'
            f' pos="{_fmt(*center, (z[0] + z[1]) / 2)}" rgba="{_fmt(*rgba)}" contype="{flag}" conaffinity="{flag}"/>')


def _mover_body(mover: Mover) -> str:
    """A mocap body (moved by the simulator every physics step) holding one colliding box."""
    x, y = mover.position(0.0)
    geom = _box_geom(mover.name, (0.0, 0.0), mover.half_size, (0.0, mover.height), mover.rgba, True)
    return f'\n    <body name="{mover.name}_body" mocap="true" pos="{_fmt(x, y, 0.0)}">{geom}\n    </body>'


def _robot_xml(radius: float, camera_fovy: float) -> str:
    """Planar base: slide-x, slide-y, hinge-z joints; the env maps (v, w) to their velocity targets.

    The camera sits half-way to the rim: a robot touching a wall still has it ~9 cm from the wall.
    """
    wheel_y = radius - WHEEL_INSET
    wheel = f'type="cylinder" size="{_fmt(WHEEL_RADIUS, WHEEL_HALF_WIDTH)}" rgba="{_fmt(*WHEEL_RGBA)}"'
    up = (np.sin(CAMERA_PITCH_DOWN), 0.0, np.cos(CAMERA_PITCH_DOWN))
    scenery = f'group="{ROBOT_GEOM_GROUP}" contype="0" conaffinity="0"'
    return f"""
    <body name="robot">
      <joint name="robot_x" type="slide" axis="1 0 0"/>
      <joint name="robot_y" type="slide" axis="0 1 0"/>
      <joint name="robot_yaw" type="hinge" axis="0 0 1"/>
      <inertial pos="0 0 {_fmt(ROBOT_BODY_Z)}" mass="{ROBOT_MASS}" diaginertia="{_fmt(*[ROBOT_YAW_INERTIA] * 3)}"/>
      <geom name="robot_collision" type="cylinder" size="{_fmt(radius, ROBOT_BODY_HALF_HEIGHT)}"
            pos="0 0 {_fmt(ROBOT_BODY_Z)}"
            rgba="{_fmt(*ROBOT_RGBA)}" group="{ROBOT_GEOM_GROUP}" contype="1" conaffinity="1"/>
      <geom type="box" size="0.04 0.04 0.01" pos="{_fmt(radius * 0.6)} 0 0.17" rgba="1 0.3 0 1" {scenery}/>
      <geom {wheel} pos="0 {_fmt(wheel_y, WHEEL_RADIUS)}" euler="90 0 0" {scenery}/>
      <geom {wheel} pos="0 {_fmt(-wheel_y, WHEEL_RADIUS)}" euler="90 0 0" {scenery}/>
      <camera name="robot_camera" pos="{_fmt(*camera_position(radius))}" xyaxes="0 -1 0 {_fmt(*up)}"
              fovy="{_fmt(camera_fovy)}"/>
    </body>"""


def _velocity_actuator(joint: str, inertia: float, limit: float) -> str:
    """Velocity servo with time constant VELOCITY_TIME_CONSTANT, saturating at a physical force limit."""
    return (f'\n    <velocity joint="{joint}" kv="{_fmt(inertia / VELOCITY_TIME_CONSTANT)}" forcelimited="true"'
            f' forcerange="{_fmt(-limit, limit)}"/>')


def build_mjcf(layout: RoomsLayout, image_width: int, image_height: int, camera_fovy: float,
               robot_radius: float) -> str:
    """MJCF of the floor, the robot and its actuators, built for fast software rendering.

    No shadows, no skybox and no plane geoms (MuJoCo tessellates planes): together they cost
    several times the ~1 ms a 64x64 frame takes without them. The near clipping plane (a fraction
    of the model extent) is ~1 cm so a robot touching a wall sees the wall, not through it. The
    offscreen buffer is at least 1024 px so top-down views up to that size share the model.
    """
    x0, y0, span = topdown_window(layout)
    middle = (x0 + span / 2, y0 + span / 2)
    scenery = _box_geom("ground", middle, (span / 2, span / 2), GROUND_Z, GROUND_RGBA, False)
    scenery += "".join(
        _box_geom(f"{r.name}_floor", ((r.xmin + r.xmax) / 2, (r.ymin + r.ymax) / 2),
                  ((r.xmax - r.xmin) / 2, (r.ymax - r.ymin) / 2), FLOOR_Z, r.floor_rgba, False)
        for r in layout.rooms)
    obstacles = "".join(_box_geom(b.name, b.center, b.half_size, (0.0, b.height), b.rgba, True, b.shape)
                        for b in layout.obstacles)
    obstacles += "".join(_mover_body(m) for m in layout.movers)
    actuators = (_velocity_actuator("robot_x", ROBOT_MASS, MAX_FORCE)
                 + _velocity_actuator("robot_y", ROBOT_MASS, MAX_FORCE)
                 + _velocity_actuator("robot_yaw", ROBOT_YAW_INERTIA, MAX_TORQUE))
    off = max(image_width, image_height, 1024)
    return f"""<mujoco model="ojepa_rooms">
  <option integrator="implicitfast"/>
  <visual>
    <global offwidth="{off}" offheight="{off}"/>
    <map znear="0.001" zfar="5"/>
    <headlight ambient="{_fmt(*[AMBIENT] * 3)}" diffuse="0.35 0.35 0.35" specular="0 0 0"/>
    <quality shadowsize="0"/>
  </visual>
  <worldbody>
    <light name="sun" directional="true" castshadow="false" pos="0 0 10" dir="{_fmt(*SUN_DIRECTION)}"
           diffuse="{_fmt(*[SUN_DIFFUSE] * 3)}" specular="0 0 0"/>
    <camera name="topdown" projection="orthographic" fovy="{_fmt(span)}" pos="{_fmt(*middle, 20)}"/>\
{scenery}{obstacles}{_robot_xml(robot_radius, camera_fovy)}
  </worldbody>
  <actuator>{actuators}
  </actuator>
</mujoco>
"""
