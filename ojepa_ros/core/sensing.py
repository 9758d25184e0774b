"""Training labels from the robot's own range scanner: what a real robot's recorded episodes also give.

A planar scan (REP-117: +inf or NaN where no return) becomes (1) the clearance label, the nearest return
minus the robot's radius, and (2) the forward range label, the nearest return in each of `sectors` equal
sectors across the camera's horizontal field of view, capped at `cap` metres. No simulator state is read.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np


def clean_ranges(scan: np.ndarray, range_max: float) -> np.ndarray:
    """Ranges [..., B] with no-return beams (inf, NaN, beyond range_max) set to range_max."""
    scan = np.asarray(scan, dtype=np.float32)
    return np.where(np.isfinite(scan) & (scan <= range_max), scan, np.float32(range_max))


def clearance_from_scan(scan: np.ndarray, robot_radius: float, range_max: float) -> np.ndarray:
    """[...] metres from the robot's rim to the nearest return of scans [..., B] (a scanner at the centre)."""
    return np.maximum(clean_ranges(scan, range_max).min(-1) - robot_radius, 0.0).astype(np.float32)


def sector_edges(fov_deg: float, sectors: int) -> np.ndarray:
    """[sectors + 1] angle edges (rad) of equal sectors across a field of view centred straight ahead."""
    half = np.radians(fov_deg) / 2
    return np.linspace(-half, half, sectors + 1)


def sector_centres(fov_deg: float, sectors: int) -> np.ndarray:
    """[sectors] the middle angle (rad, counter-clockwise from straight ahead) of each sector."""
    edges = sector_edges(fov_deg, sectors)
    return (edges[:-1] + edges[1:]) / 2


def forward_ranges(scan: np.ndarray, angles: np.ndarray, fov_deg: float, sectors: int, cap: float) -> np.ndarray:
    """[..., sectors] nearest return per sector of the field of view, capped at `cap`; beams are at `angles`."""
    scan = clean_ranges(scan, cap)
    angles = np.arctan2(np.sin(angles), np.cos(angles))
    edges = sector_edges(fov_deg, sectors)
    out = np.full(scan.shape[:-1] + (sectors,), cap, dtype=np.float32)
    for k in range(sectors):
        beams = (angles >= edges[k]) & (angles < edges[k + 1])
        if beams.any():
            out[..., k] = np.minimum(scan[..., beams].min(-1), cap)
    return out


@dataclass(frozen=True)
class RangeLabels:
    """How scans become labels: the robot's radius, the scanner's range, and the forward sectors' layout."""

    robot_radius: float = 0.18
    scan_max: float = 4.0
    sectors: int = 9
    fov_deg: float = 90.0
    cap: float = 3.0

    def of(self, scan: np.ndarray, angles: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """(clearance [...], forward ranges [..., sectors]) of scans [..., B] taken at beam `angles` [B]."""
        return (clearance_from_scan(scan, self.robot_radius, self.scan_max),
                forward_ranges(scan, angles, self.fov_deg, self.sectors, self.cap))
