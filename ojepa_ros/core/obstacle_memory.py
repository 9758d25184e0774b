"""A short memory of what the camera showed to be in the way: the seeds' "perception combined with previously
acquired information", so an obstacle that left the 90-degree view while turning still counts.

Each control step the world model reads the nearest obstacle per sector of the camera's view from the
current state (`WorldModel.ranges`); each return becomes a point at its sector's middle bearing, placed in the
odometry frame with the current odometry pose (relative motion only: a constant odometry offset moves the
robot and its points together). Points live for `keep` steps; a newer view that sees free space through an
old point removes it (so a box that moved away, or a misreading, does not linger). A bumper contact adds an
arc of points at the rim on the side the robot was driving to (`add_contact`): the camera may not see what
touches the body beside it, the bumper does, and a newer view does not carve those away. The planar range scan
(`add_scan`) clears what it sees through, as a costmap's raytrace does: a camera point placed at its sector's
middle while the box stood at the sector's edge, or a misread range, closed gaps the robot fits through. Its
returns near the robot become points as well: the camera misses what is beside or behind the body, and the
collision monitor, which stops every command into those returns, otherwise held back a planner that did not know
why. Nothing here is a map: points older than a few seconds are gone, and no position is ever looked up in
anything learned.
"""

from __future__ import annotations

from collections import deque

import numpy as np

MAX_COORDINATE = 1e6  # m
CONTACT_ARC = np.radians(np.linspace(-60.0, 60.0, 9))  # bearings of a contact's points around the driving direction
RAY_WIDTH = 0.05  # rad either side of a remembered point's bearing: the scan returns that judge it (2-degree beams)


class ObstacleMemory:
    """add(pose, ranges) each control step; points() -> [P, 2] odometry-frame obstacle points."""

    def __init__(self, sector_edges: np.ndarray, cap: float, keep: int = 30, carve_margin: float = 0.15,
                 scan_range: float = 0.0, scan_margin: float = 0.1) -> None:
        """sector_edges [K+1] (rad, counter-clockwise from straight ahead); a range within 5 % of `cap` is no
        return; `keep` steps a point lives; carve_margin m: how much farther than an old point the camera must
        now see free space along its bearing for the point to go; scan_margin m: the same for the scan.
        scan_range m from the centre: scan returns nearer than this become points (0: the scan only clears)."""
        self.edges = np.asarray(sector_edges, dtype=np.float64)
        self.cap, self.keep, self.carve_margin = float(cap), int(keep), float(carve_margin)
        self.scan_range, self.scan_margin = float(scan_range), float(scan_margin)
        # One point per return, at the sector's middle: a return anywhere in a 10-degree sector spread over the
        # whole arc widened every obstacle by up to a sector (0.26 m at 1.5 m) and, over a few views, closed
        # gaps the robot fits through; the margin and newer views' carving cover the half-sector it may be off.
        self._bearings = (self.edges[:-1] + 0.5 * np.diff(self.edges))[:, None]  # [K, 1]
        self.reset()

    def reset(self) -> None:
        self._frames: deque[np.ndarray] = deque(maxlen=self.keep)
        self._contacts: deque[np.ndarray] = deque(maxlen=self.keep)
        self._scans: deque[np.ndarray] = deque(maxlen=self.keep)

    def add_contact(self, pose: np.ndarray, rim: float, forward: bool) -> None:
        """The bumper reports contact at pose (x, y, yaw) while driving forward (or backward): points on the
        rim (`rim` m from the centre) across +-60 degrees of that direction. Call once per step, contact or not,
        so contacts age like views do."""
        pose = np.asarray(pose, dtype=np.float64)
        if rim <= 0 or not np.isfinite(pose).all():
            self._contacts.append(np.zeros((0, 2)))
            return
        bearings = pose[2] + CONTACT_ARC + (0.0 if forward else np.pi)
        self._contacts.append(pose[:2] + rim * np.stack((np.cos(bearings), np.sin(bearings)), axis=1))

    def add(self, pose: np.ndarray, ranges: np.ndarray) -> None:
        """One view: pose (x, y, yaw) in the odometry frame, ranges [K] metres per sector. Non-finite input is
        ignored (the caller stops the robot on it)."""
        pose, ranges = np.asarray(pose, dtype=np.float64), np.asarray(ranges, dtype=np.float64)
        if not (np.isfinite(pose).all() and np.isfinite(ranges).all()) or ranges.shape != (len(self.edges) - 1,):
            return
        self._carve(pose, ranges)
        hit = ranges < 0.95 * self.cap
        bearings = (self._bearings[hit] + pose[2]).ravel()
        dist = ranges[hit]
        self._frames.append(pose[:2] + dist[:, None] * np.stack((np.cos(bearings), np.sin(bearings)), axis=1))

    def add_scan(self, pose: np.ndarray, scan: np.ndarray | None) -> None:
        """One range scan taken at pose (x, y, yaw): scan [N, 2] base-frame points (None: no fresh scan, or
        non-finite pose: nothing cleared or added). Call once per step, so the scan's points age like views do."""
        pose = np.asarray(pose, dtype=np.float64)
        if scan is None or not np.isfinite(pose).all():
            self._scans.append(np.zeros((0, 2)))
            return
        scan = np.asarray(scan, dtype=np.float64).reshape(-1, 2)
        scan = scan[np.isfinite(scan).all(axis=1)]
        ranges, bearings = np.hypot(*scan.T), np.arctan2(scan[:, 1], scan[:, 0])  # once, for every stored view
        c, s = np.cos(pose[2]), np.sin(pose[2])
        rotation = np.array([[c, -s], [s, c]])  # base -> odometry
        for store in (self._frames, self._scans):
            for i, points in enumerate(store):
                store[i] = points[~self._seen_through((points - pose[:2]) @ rotation, ranges, bearings)]
        self._scans.append(pose[:2] + scan[ranges < self.scan_range] @ rotation.T)

    def _seen_through(self, local: np.ndarray, ranges: np.ndarray, bearings: np.ndarray) -> np.ndarray:
        """Mask of base-frame points [P, 2] the scan (its returns' ranges and bearings [N]) saw free space beyond:
        its returns within RAY_WIDTH of the point's bearing all lie more than scan_margin farther out (and there
        is at least one)."""
        if not len(local) or not len(ranges):
            return np.zeros(len(local), dtype=bool)
        gap = np.arctan2(local[:, 1:], local[:, :1]) - bearings[None]  # [P, N]
        on_ray = np.abs(np.arctan2(np.sin(gap), np.cos(gap))) <= RAY_WIDTH
        nearest = np.where(on_ray, ranges[None], np.inf).min(axis=1)
        return on_ray.any(axis=1) & (nearest > np.hypot(*local.T) + self.scan_margin)

    def _carve(self, pose: np.ndarray, ranges: np.ndarray) -> None:
        """Drop remembered points the current view sees through (inside a sector, nearer than its range)."""
        for i, points in enumerate(self._frames):
            if not len(points):
                continue
            offset = points - pose[:2]
            bearing = np.arctan2(offset[:, 1], offset[:, 0]) - pose[2]
            bearing = np.arctan2(np.sin(bearing), np.cos(bearing))
            sector = np.searchsorted(self.edges, bearing) - 1
            seen = (sector >= 0) & (sector < len(ranges))
            free = np.zeros(len(points), dtype=bool)
            free[seen] = np.hypot(*offset[seen].T) < ranges[sector[seen]] - self.carve_margin
            self._frames[i] = points[~free]

    def points(self, cell: float = 0.05) -> np.ndarray:
        """[P, 2] the remembered obstacle points (odometry frame, metres), one per `cell`-sized square."""
        if not self._frames and not self._contacts and not self._scans:
            return np.zeros((0, 2))
        points = np.concatenate([np.zeros((0, 2)), *self._frames, *self._contacts, *self._scans])
        points = points[(np.abs(points) < MAX_COORDINATE).all(axis=1)]  # odometry far off any map: nothing to grid
        _, first = np.unique(np.floor(points / cell).astype(np.int64), axis=0, return_index=True)
        return points[np.sort(first)]
