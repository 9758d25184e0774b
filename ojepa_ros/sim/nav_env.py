"""Gymnasium env (and real-time API for the sim node) of a camera robot in a rooms world (sim/world_family.py).

The robot carries what a real one does: a forward RGB camera, odometry, a bumper (`in_collision`) and a planar
360-degree range scanner (`scan`, REP-117 ranges: +inf where no return within range).

One MuJoCo model serves both uses: `step` for dataset collection and benchmarks, and
`set_command` / `advance` / `camera_image` for a ROS node that runs the same physics in
real time. Commands are body-frame (v, w); every physics substep turns them into world-frame
velocity targets, which is what makes the planar base non-holonomic (no side slip).
"""
from __future__ import annotations

import math
from dataclasses import dataclass

import cv2
import gymnasium as gym
import mujoco
import numpy as np
from gymnasium import spaces

from ojepa_ros.sim.rooms_world import (
    ROBOT_GEOM_GROUP, RoomsLayout, build_mjcf, clearance, default_layout, room_of, sample_free_pose,
    topdown_window)


def scan_angles(beams: int) -> np.ndarray:
    """Body-frame angles of the scanner's beams over 360 degrees: beam 0 straight back (-pi), counter-clockwise."""
    return -np.pi + 2 * np.pi * np.arange(beams) / beams


@dataclass
class NavEnvConfig:
    image_width: int = 64
    image_height: int = 64
    camera_fovy: float = 90.0
    control_dt: float = 0.1
    physics_dt: float = 0.005
    max_linear: float = 0.5
    max_angular: float = 1.5
    robot_radius: float = 0.18
    goal_tolerance: float = 0.3
    max_steps: int = 400
    scan_beams: int = 180        # over 360 degrees (scan_angles)
    scan_range: float = 4.0      # m; farther returns read +inf
    scan_range_min: float = 0.05  # m: the LaserScan's range_min
    scan_height: float = 0.15    # m above the floor: sees furniture, not the floor


class RoomsNavEnv(gym.Env):
    """Reach a goal (x, y) from camera images + odometry; reward is progress towards the goal."""

    metadata = {"render_modes": ["rgb_array"], "render_fps": 10}

    def __init__(self, config: NavEnvConfig | None = None, layout: RoomsLayout | None = None):
        self.config = c = config or NavEnvConfig()
        self.render_mode = "rgb_array"
        self._renderers: dict[tuple[int, int], mujoco.Renderer] = {}
        self._substeps = max(1, round(c.control_dt / c.physics_dt))
        self._camera_option = mujoco.MjvOption()
        self._camera_option.geomgroup[ROBOT_GEOM_GROUP] = 0  # the robot must not block its own view
        angles = self.scan_angles = scan_angles(c.scan_beams)
        self._scan_dirs = np.stack((np.cos(angles), np.sin(angles), np.zeros_like(angles)), axis=1)
        self.set_layout(layout or default_layout())
        self._command = np.zeros(2)
        self._pending_time = 0.0
        self._goal: np.ndarray | None = None
        self._steps = 0
        limits = np.array([c.max_linear, c.max_angular], dtype=np.float32)
        self.action_space = spaces.Box(-limits, limits, dtype=np.float32)
        self.observation_space = spaces.Dict({
            "image": spaces.Box(0, 255, (c.image_height, c.image_width, 3), np.uint8),
            "odom": spaces.Box(-np.inf, np.inf, (5,), np.float32),
            "scan": spaces.Box(0.0, np.inf, (c.scan_beams,), np.float32),
        })

    def set_layout(self, layout: RoomsLayout) -> None:
        """Rebuild the world as `layout` (a new MuJoCo model); the robot keeps its pose, velocity and the clock."""
        c = self.config
        old = getattr(self, "data", None)
        self.close()
        self.layout = layout
        self.model = mujoco.MjModel.from_xml_string(
            build_mjcf(layout, c.image_width, c.image_height, c.camera_fovy, c.robot_radius))
        self.model.opt.timestep = c.physics_dt
        self.data = mujoco.MjData(self.model)
        self._robot_geom = self.model.geom("robot_collision").id
        self._robot_body = self.model.body("robot").id
        names = [b.name for b in layout.obstacles] + [m.name for m in layout.movers]
        self._obstacle_geoms = np.array([self.model.geom(n).id for n in names])
        self._mocap = [(self.model.body(f"{m.name}_body").mocapid[0], m) for m in layout.movers]
        if old is None:
            self.set_pose(*sample_free_pose(layout, np.random.default_rng(0)))
        else:
            self.data.qpos[:], self.data.qvel[:], self.data.time = old.qpos, old.qvel, old.time
            self._move_movers()
            mujoco.mj_forward(self.model, self.data)

    # ---- real-time API (used by the ROS sim node) ----

    @property
    def sim_time(self) -> float:
        return float(self.data.time)

    @property
    def goal(self) -> tuple[float, float] | None:
        return None if self._goal is None else (float(self._goal[0]), float(self._goal[1]))

    @goal.setter
    def goal(self, value: tuple[float, float] | None) -> None:
        self._goal = None if value is None else np.asarray(value, dtype=np.float64).reshape(2)

    def set_command(self, v: float, w: float) -> None:
        """Body-frame speed command, clipped to the motor limits; NaN means stop."""
        cmd = np.nan_to_num(np.array([v, w], dtype=np.float64), nan=0.0)
        self._command = np.clip(cmd, self.action_space.low, self.action_space.high)

    def advance(self, duration: float) -> bool:
        """Run physics for `duration` s under the current command; True if the robot hit anything.

        Time not covering a whole substep is carried over, so many short calls add up exactly.
        """
        self._pending_time += duration
        n = int(self._pending_time / self.config.physics_dt + 1e-9)
        self._pending_time -= n * self.config.physics_dt
        return self._run(n)

    def set_pose(self, x: float, y: float, yaw: float) -> None:
        """Teleport the robot, at rest."""
        self.data.qpos[:] = (x, y, yaw)
        self.data.qvel[:] = 0.0
        mujoco.mj_forward(self.model, self.data)

    def odometry(self) -> np.ndarray:
        """[x, y, yaw, v, w]: pose plus measured body-forward speed and yaw rate."""
        x, y, yaw = self.data.qpos
        vx, vy, w = self.data.qvel
        v = vx * np.cos(yaw) + vy * np.sin(yaw)
        return np.array([x, y, np.arctan2(np.sin(yaw), np.cos(yaw)), v, w], dtype=np.float64)

    def in_collision(self) -> bool:
        geoms = self.data.contact.geom[: self.data.ncon]
        robot = (geoms == self._robot_geom).any(axis=1)
        obstacle = np.isin(geoms, self._obstacle_geoms).any(axis=1)
        return bool(np.any(robot & obstacle))

    def clearance(self) -> float:
        """Free space between the robot's rim and the nearest obstacle (negative when pressed in): the simulator's
        own geometry, for placing things and checking sensors; never a training label."""
        return float(clearance(self.layout, self.data.qpos[:2], self.data.time)) - self.config.robot_radius

    def scan(self) -> np.ndarray:
        """Planar range scan [scan_beams] float32 from the robot's centre at scan_height, in the body frame
        (angles self.scan_angles); +inf where nothing is within scan_range. The robot's own body is excluded."""
        c = self.config
        x, y, yaw = self.data.qpos
        cos, sin = math.cos(yaw), math.sin(yaw)
        dirs = self._scan_dirs @ np.array([[cos, sin, 0.0], [-sin, cos, 0.0], [0.0, 0.0, 1.0]])
        dist = np.empty(c.scan_beams)
        geoms = np.empty(c.scan_beams, dtype=np.int32)
        mujoco.mj_multiRay(self.model, self.data, np.array([x, y, c.scan_height]), dirs.ravel(), None, 1,
                           self._robot_body, geoms, dist, None, c.scan_beams, c.scan_range)
        dist[(geoms < 0) | (dist > c.scan_range)] = np.inf
        return dist.astype(np.float32)

    def image_at(self, x: float, y: float, yaw: float) -> np.ndarray:
        """What the camera would see from pose (x, y, yaw) now (e.g. a goal image); the robot is not moved."""
        qpos, qvel = self.data.qpos.copy(), self.data.qvel.copy()
        self.set_pose(x, y, yaw)
        image = self.camera_image()
        self.data.qpos[:], self.data.qvel[:] = qpos, qvel
        mujoco.mj_forward(self.model, self.data)
        return image

    def camera_image(self) -> np.ndarray:
        c = self.config
        renderer = self._renderer(c.image_height, c.image_width)
        renderer.update_scene(self.data, camera="robot_camera", scene_option=self._camera_option)
        return renderer.render()

    # ---- Gymnasium API ----

    def reset(self, *, seed: int | None = None, options: dict | None = None):
        super().reset(seed=seed)
        options = options or {}
        mujoco.mj_resetData(self.model, self.data)
        self._move_movers()
        start = options.get("start")
        self.set_pose(*(sample_free_pose(self.layout, self.np_random) if start is None else start))
        goal = options.get("goal")
        while goal is None:
            x, y, _ = sample_free_pose(self.layout, self.np_random)
            if np.hypot(x - self.data.qpos[0], y - self.data.qpos[1]) > 2 * self.config.goal_tolerance:
                goal = (x, y)
        self.goal = goal
        self._command = np.zeros(2)
        self._pending_time = 0.0
        self._steps = 0
        return self._observation(), self._info(collision=False)

    def step(self, action):
        self.set_command(*np.asarray(action, dtype=np.float64).reshape(2))
        before = self._distance()
        collision = self._run(self._substeps)
        self._steps += 1
        after = self._distance()
        progress = before - after
        reward = float(progress) if np.isfinite(progress) else 0.0
        terminated = bool(after <= self.config.goal_tolerance)
        truncated = self._steps >= self.config.max_steps
        return self._observation(), reward, terminated, truncated, self._info(collision)

    def render(self) -> np.ndarray:
        return self.camera_image()

    def render_topdown(self, size: int = 256, trajectory: np.ndarray | None = None,
                       goal: tuple[float, float] | None = None) -> np.ndarray:
        """Overhead view of the whole floor with a trajectory polyline and the goal (default: current goal)."""
        renderer = self._renderer(size, size)
        renderer.update_scene(self.data, camera="topdown")
        image = np.ascontiguousarray(renderer.render())
        x0, y0, span = topdown_window(self.layout)

        def to_px(xy: np.ndarray) -> np.ndarray:
            xy = np.asarray(xy, dtype=np.float64).reshape(-1, 2)
            cols = (xy[:, 0] - x0) / span * size
            rows = (y0 + span - xy[:, 1]) / span * size
            return np.round(np.stack([cols, rows], axis=1)).astype(np.int32)

        if trajectory is not None and len(trajectory) > 1:
            cv2.polylines(image, [to_px(np.asarray(trajectory)[:, :2])], False, (255, 60, 0), 2, cv2.LINE_AA)
        goal = self.goal if goal is None else goal
        if goal is not None:
            radius = max(2, int(round(self.config.goal_tolerance / span * size)))
            cv2.circle(image, tuple(int(v) for v in to_px(goal)[0]), radius, (0, 160, 0), 2, cv2.LINE_AA)
        return image

    def close(self) -> None:
        """Free the renderers (the model stays usable; they are made again on the next render)."""
        for renderer in self._renderers.values():
            renderer.close()
        self._renderers.clear()

    # ---- internals ----

    def _renderer(self, height: int, width: int) -> mujoco.Renderer:
        if (height, width) not in self._renderers:
            self._renderers[(height, width)] = mujoco.Renderer(self.model, height, width)
        return self._renderers[(height, width)]

    def _run(self, substeps: int) -> bool:
        """Physics substeps with world-frame velocity targets from the body command (no side slip)."""
        v, w = (float(u) for u in self._command)
        ctrl, qpos = self.data.ctrl, self.data.qpos
        collided = False
        for _ in range(substeps):
            ctrl[0] = v * math.cos(qpos[2])
            ctrl[1] = v * math.sin(qpos[2])
            ctrl[2] = w
            if self._mocap:
                self._move_movers()
            mujoco.mj_step(self.model, self.data)
            collided = collided or (self.data.ncon > 0 and self.in_collision())
        return collided

    def _move_movers(self) -> None:
        for mocap_id, mover in self._mocap:
            self.data.mocap_pos[mocap_id, :2] = mover.position(self.data.time)

    def _distance(self) -> float:
        if self._goal is None:
            return float("nan")
        return float(np.hypot(*(self.data.qpos[:2] - self._goal)))

    def _observation(self) -> dict[str, np.ndarray]:
        return {"image": self.camera_image(), "odom": self.odometry().astype(np.float32), "scan": self.scan()}

    def _info(self, collision: bool) -> dict:
        x, y, yaw = self.odometry()[:3]
        return {"collision": bool(collision), "clearance": self.clearance(), "pose": (float(x), float(y), float(yaw)),
                "goal": self.goal, "distance_to_goal": self._distance(),
                "room": room_of(self.layout, float(x), float(y))}
