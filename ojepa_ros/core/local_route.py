"""A short route around what the robot perceives, for the low level to steer along.

A 1.6 s horizon cannot see that stepping sideways around a box pays: from in front of it every sampled plan
either hits it or moves away from the goal, and MPPI stays put. Every `period` control steps this router
searches a small grid around the robot (A*, 8-connected) from the robot to its target (the goal, or the
roadmap's subgoal); cells the footprint would touch near a perceived obstacle point (ObstacleMemory: what
the camera, scan and bumper showed, in the odometry frame) are expensive, cells within the margin beyond it
less so. The low level is handed the farthest route point within `lookahead` whose straight line from the
robot keeps the footprint clear. Unknown space counts as free, and near cells are costly rather than
forbidden, so a route always exists. Like Nav2's planner in front of its controller (lethal footprint,
graded inflation), but over a few seconds of perception, not a map.

The margin band is graded: a cell costs more the deeper it lies in it, as the low level's obstacles guardrail
charges more, so a gap narrower than twice the inflation costs by how narrow it is and the open side wins
where there is one. A replan toward the same target keeps the route it has unless the new one is clearly
cheaper (by ROUTE_HYSTERESIS) or the old one now crosses a footprint cell: replans over a few noisy views
otherwise flipped between a gap and the way round it, turning the robot back and forth in front of both.
"""

from __future__ import annotations

import heapq
import math

import numpy as np

NEIGHBOURS = [(dx, dy, math.hypot(dx, dy)) for dx in (-1, 0, 1) for dy in (-1, 0, 1) if dx or dy]
NEAR_COST = 25.0  # cost of one cell the footprint would touch, against 1 for a free one
MARGIN_COST = 12.0  # cost of a margin cell at the footprint's edge, falling linearly to 1 at the inflation's
# With the whole inflation at NEAR_COST a 0.56 m gap between a box and a wall (the robot is 0.36 m wide) cost
# more than the way round through the next room, and no straight line through it counted as clear, so the low
# level was handed the next cell, 0.1 m ahead, and dithered there (training layouts, 2026-12-01). A flat 3 then
# made such a gap cheaper than the open side, which the low level, whose guardrail keeps the whole margin,
# would not drive through either.
ROUTE_HYSTERESIS = 0.2  # a new route replaces the old one only if it costs this fraction less


def distance_grid(points: np.ndarray, origin: np.ndarray, shape: tuple[int, int], cell: float,
                  reach: float) -> np.ndarray:
    """[W, H] distance (m) from each cell centre (cell i, j centred at origin + (i + 0.5, j + 0.5) * cell) to the
    nearest point, where that is within `reach`; inf elsewhere."""
    grid = np.full(shape, np.inf)
    if not len(points):
        return grid
    centres = origin + (np.stack(np.meshgrid(np.arange(shape[0]), np.arange(shape[1]), indexing="ij"), -1) + 0.5) * cell
    cells = int(math.ceil(reach / cell)) + 1
    for px, py in points:
        i, j = int((px - origin[0]) / cell), int((py - origin[1]) / cell)
        lo_i, hi_i, lo_j, hi_j = max(i - cells, 0), min(i + cells + 1, shape[0]), max(j - cells, 0), min(j + cells + 1, shape[1])
        if lo_i >= hi_i or lo_j >= hi_j:
            continue
        patch = centres[lo_i:hi_i, lo_j:hi_j]
        np.minimum(grid[lo_i:hi_i, lo_j:hi_j], np.hypot(patch[..., 0] - px, patch[..., 1] - py),
                   out=grid[lo_i:hi_i, lo_j:hi_j])
    return grid


def inflated(points: np.ndarray, origin: np.ndarray, shape: tuple[int, int], cell: float, radius: float) -> np.ndarray:
    """[W, H] bool grid (cells as distance_grid's): within radius of any point."""
    return distance_grid(points, origin, shape, cell, radius) <= radius


def cell_costs(clearance: np.ndarray, footprint: float, inflation: float) -> np.ndarray:
    """Cost of entering each cell from its clearance (m to the nearest point): NEAR_COST where the footprint
    would touch, from MARGIN_COST at the footprint's edge down to 1 at the inflation's, 1 beyond."""
    depth = np.clip((inflation - clearance) / max(inflation - footprint, 1e-9), 0.0, 1.0)
    return np.where(clearance <= footprint, NEAR_COST, 1.0 + (MARGIN_COST - 1.0) * depth)


def along_route(route: np.ndarray, cost: np.ndarray, origin: np.ndarray, cell: float) -> tuple[np.ndarray, np.ndarray]:
    """The polyline route [K, 2] cut into pieces of at most half a cell: (each piece's length [M] in m, the cost
    of the cell it ends in [M]; 1 outside the grid, where nothing is known)."""
    steps = np.diff(route, axis=0)
    lengths = np.hypot(*steps.T)
    pieces = np.maximum(np.ceil(lengths / (0.5 * cell)), 1).astype(int)
    segment = np.repeat(np.arange(len(lengths)), pieces)
    fraction = (np.arange(pieces.sum()) - np.repeat(np.cumsum(pieces) - pieces, pieces) + 1) / pieces[segment]
    index = np.floor((route[segment] + fraction[:, None] * steps[segment] - origin) / cell).astype(int)
    inside = ((index >= 0) & (index < cost.shape)).all(axis=1)
    costs = np.ones(len(index))
    costs[inside] = cost[index[inside, 0], index[inside, 1]]
    return lengths[segment] / pieces[segment], costs


def astar(cost: np.ndarray, start: tuple[int, int], goal: tuple[int, int]) -> list[tuple[int, int]]:
    """Cheapest 8-connected cell path from start to goal; entering a cell costs the step's length x its `cost`
    (>= 1, so the straight-line distance stays an admissible heuristic)."""
    w, h = cost.shape
    best = {start: 0.0}
    parent: dict[tuple[int, int], tuple[int, int]] = {}
    frontier = [(math.dist(start, goal), start)]
    while frontier:
        _, here = heapq.heappop(frontier)
        if here == goal:
            break
        for dx, dy, step in NEIGHBOURS:
            there = (here[0] + dx, here[1] + dy)
            if not (0 <= there[0] < w and 0 <= there[1] < h):
                continue
            total = best[here] + step * cost[there]
            if total < best.get(there, math.inf):
                best[there], parent[there] = total, here
                heapq.heappush(frontier, (total + math.dist(there, goal), there))
    path, cell = [goal], goal
    while cell != start:
        cell = parent[cell]
        path.append(cell)
    return path[::-1]


class LocalRouter:
    """subgoal(xy, target, points) -> where the low level should steer now; `route` [K, 2] for RViz."""

    def __init__(self, inflation: float, footprint: float | None = None, lookahead: float = 1.0, period: int = 4,
                 cell: float = 0.1, window: float = 3.0) -> None:
        """inflation: m from an obstacle point's centre a robot's centre should keep (radius + margin);
        footprint: m it must keep not to touch (radius + a hair; default: the inflation); window: m around the
        robot searched (a farther target is approached through the window's edge)."""
        footprint = inflation if footprint is None else footprint
        if not (0 < footprint <= inflation and lookahead > 0 and period >= 1 and cell > 0 and window > 2 * cell):
            raise ValueError("0 < footprint <= inflation; lookahead, cell > 0; period >= 1; window > 2 cells")
        self.inflation, self.footprint, self.lookahead = inflation, footprint, lookahead
        self.period, self.cell, self.window = period, cell, window
        self.reset()

    def reset(self) -> None:
        self.route = np.zeros((0, 2))
        self._since, self._target = self.period, None

    def subgoal(self, xy: np.ndarray, target: np.ndarray, points: np.ndarray) -> np.ndarray:
        xy, target = np.asarray(xy, dtype=float), np.asarray(target, dtype=float)
        if self._target is None or not np.array_equal(target, self._target) or self._since >= self.period:
            self._replan(xy, target, points)
        self._since += 1
        if not len(self.route):
            return target
        ahead = self._ahead(xy)
        along = np.concatenate([[0.0], np.cumsum(np.hypot(*np.diff(ahead, axis=0).T))])
        for point in ahead[along <= self.lookahead][::-1]:
            if self._clear(xy, point, points):
                return point
        return ahead[min(1, len(ahead) - 1)]

    def _ahead(self, xy: np.ndarray) -> np.ndarray:
        """The route from its point nearest xy on (self.route must not be empty)."""
        return self.route[int(np.argmin(np.hypot(*(self.route - xy).T))):]

    def _clear(self, a: np.ndarray, b: np.ndarray, points: np.ndarray) -> bool:
        if not len(points):
            return True
        ab = b - a
        t = np.clip(((points - a) @ ab) / max(float(ab @ ab), 1e-12), 0.0, 1.0)
        return bool(np.hypot(*(a + t[:, None] * ab - points).T).min() > self.footprint)

    def _replan(self, xy: np.ndarray, target: np.ndarray, points: np.ndarray) -> None:
        """A fresh route to target over the current points, or the remaining old one (the same target) unless the
        fresh one is cheaper by ROUTE_HYSTERESIS or the old one crosses a footprint cell."""
        same_target = self._target is not None and np.array_equal(target, self._target)
        old = np.vstack([xy[None], self._ahead(xy)]) if same_target and len(self.route) else None
        self._since, self._target = 0, target
        origin = xy - self.window / 2
        n = int(round(self.window / self.cell))
        cost = cell_costs(distance_grid(points, origin, (n, n), self.cell, self.inflation), self.footprint,
                          self.inflation)  # one pass for both bands
        self.route = self._search(xy, target, cost, origin)
        if old is not None and self._keeps(old, cost, origin):
            self.route = old

    def _keeps(self, old: np.ndarray, cost: np.ndarray, origin: np.ndarray) -> bool:
        """Whether the old route [K, 2] (from the robot) stays: no footprint cell beyond the robot's own reach,
        and the fresh self.route not ROUTE_HYSTERESIS cheaper over the same grid."""
        lengths, costs = along_route(old, cost, origin, self.cell)
        if (costs[np.cumsum(lengths) > self.footprint] >= NEAR_COST).any():
            return False
        fresh_lengths, fresh_costs = along_route(self.route, cost, origin, self.cell)
        return float(fresh_lengths @ fresh_costs) > (1.0 - ROUTE_HYSTERESIS) * float(lengths @ costs)

    def _search(self, xy: np.ndarray, target: np.ndarray, cost: np.ndarray, origin: np.ndarray) -> np.ndarray:
        """[K, 2] A*'s route over the cost grid (origin: its corner) from xy to target, or to the window's edge
        toward a farther target and then on to it."""
        offset = target - xy
        distance = float(np.hypot(*offset))
        half = self.window / 2
        if distance > half - self.cell:  # the target's direction, at the window's edge
            offset = offset * (half - self.cell) / distance
        n = cost.shape[0]
        start = tuple(np.clip(((xy - origin) / self.cell).astype(int), 0, n - 1))
        goal = tuple(np.clip(((xy + offset - origin) / self.cell).astype(int), 0, n - 1))
        route = origin + (np.array(astar(cost, start, goal), dtype=float) + 0.5) * self.cell
        route[0], route[-1] = xy, xy + offset
        return np.vstack([route, target[None]]) if distance > half - self.cell else route
