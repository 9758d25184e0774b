"""The high level's map: a roadmap of level-2 states from experience, searched for subgoal sequences.

A sampling planner through the level-2 model alone cannot find a route that must first lead away from the
goal (R0 -> R3 goes through R1 and R2: ~12 m, 30 macro-steps); no shooting method discovers that. So, as in
topological-memory navigation (SPTM, SoRB), the subgoals are places the robot has been: every recorded
frame is a level-2 state h = abstract(Enc(image, odometry)); frames are pooled into cells of `cell_size`
metres by their odometry position, each cell keeping the mean h of its frames as its subgoal representation
and the world model's clearance as its safety. Edges: (1) the cells of frames t and t + level2_k of one
episode, when the level-2 predictor, given the recorded macro-action, lands within `max_model_error` of
where the robot really went (a jump the model can imagine, so one the low level can be asked to make; these
carry routes through doorways); (2) neighbouring cells whose centres lie within `adjacent_gap` (0.4 m: less
than the 0.46 m a wall keeps between robot centres on its two sides, so never through a wall), so routes can
cross open floor that no single episode crossed in that direction. An edge costs its length times 1 plus a
penalty for the destination's low clearance, so routes keep off walls and pass doorways in the middle. Pure
torch/numpy; built by `ojepa roadmap`, stored as one .npz.
"""

from __future__ import annotations

import heapq
from dataclasses import dataclass
from pathlib import Path
from typing import Iterable

import numpy as np
import torch

from ojepa_ros.core.world_model import WorldModel

FORMAT_VERSION = 1


class RoadmapFileError(RuntimeError):
    """A roadmap file that cannot be used; the message names the file and what was expected."""


@dataclass(frozen=True)
class Roadmap:
    """Cells (subgoals) and directed edges; edges[i] = (src, dst), costs[i] in seconds (+ clearance penalty)."""

    cell_size: float
    centres: np.ndarray     # [M, 2] mean odometry (x, y) of the frames pooled in each cell
    states: np.ndarray      # [M, level2_dim] mean level-2 state: the subgoal representation
    clearance: np.ndarray   # [M] median predicted clearance (m) of the cell's frames
    edges: np.ndarray       # [E, 2] int
    costs: np.ndarray       # [E]

    def __post_init__(self) -> None:
        m = len(self.centres)
        if not (self.centres.shape == (m, 2) and len(self.states) == m and self.clearance.shape == (m,)
                and self.edges.ndim == 2 and self.edges.shape[1] == 2 and self.costs.shape == (len(self.edges),)):
            raise ValueError("roadmap arrays disagree in shape")
        if len(self.edges) and (self.edges.min() < 0 or self.edges.max() >= m):
            raise ValueError("roadmap edge refers to a missing cell")
        adjacency: list[list[tuple[int, float]]] = [[] for _ in range(m)]
        for (src, dst), cost in zip(self.edges.tolist(), self.costs.tolist()):
            adjacency[src].append((dst, cost))
        object.__setattr__(self, "_adjacency", adjacency)

    def nearest(self, xy: np.ndarray) -> tuple[int, float]:
        """The cell whose centre is nearest to xy, and how far it is (m)."""
        dist = np.hypot(*(self.centres - np.asarray(xy, dtype=float)[None]).T)
        i = int(np.argmin(dist))
        return i, float(dist[i])

    def in_sight(self, a: np.ndarray, b: np.ndarray, min_clearance: float) -> bool:
        """Whether the straight segment a -> b stays over cells the robot has been in, each with a predicted
        clearance of at least min_clearance: the low level may aim straight at b without cutting a corner.

        Both ends must lie over a cell, so the segment is never longer than the roadmap plus two cells and
        the work is bounded whatever a and b are (a pose of 1e30 m, a wild odometry glitch: False at once)."""
        a, b = np.asarray(a, dtype=float), np.asarray(b, dtype=float)
        if not (np.isfinite(a).all() and np.isfinite(b).all()) or len(self.centres) == 0:
            return False
        if max(self.nearest(a)[1], self.nearest(b)[1]) > self.cell_size:
            return False
        samples = max(2, int(np.ceil(np.hypot(*(b - a)) / (0.5 * self.cell_size))) + 1)
        points = a[None] + np.linspace(0.0, 1.0, samples)[:, None] * (b - a)[None]
        gaps = np.hypot(*(points[:, None] - self.centres[None]).transpose(2, 0, 1))  # [P, M]
        nearest = gaps.argmin(axis=1)
        return bool((gaps[np.arange(samples), nearest] <= self.cell_size).all()
                    and (self.clearance[nearest] >= min_clearance).all())

    def shortest_path(self, start: int, goal: int) -> list[int]:
        """Cheapest cell sequence start -> goal (Dijkstra), both included; [] when the goal is unreachable."""
        best = {start: 0.0}
        previous: dict[int, int] = {}
        queue = [(0.0, start)]
        while queue:
            cost, node = heapq.heappop(queue)
            if node == goal:
                path = [goal]
                while path[-1] != start:
                    path.append(previous[path[-1]])
                return path[::-1]
            if cost > best[node]:
                continue
            for nxt, step in self._adjacency[node]:  # type: ignore[attr-defined]
                new = cost + step
                if new < best.get(nxt, np.inf):
                    best[nxt], previous[nxt] = new, node
                    heapq.heappush(queue, (new, nxt))
        return []

    def save(self, path: str | Path) -> None:
        np.savez_compressed(path, version=FORMAT_VERSION, cell_size=self.cell_size, centres=self.centres,
                            states=self.states, clearance=self.clearance, edges=self.edges, costs=self.costs)


def roadmap_beside(model_path: str | Path) -> Path:
    """Where a model's roadmap lives by default: models/world_model.pt -> models/world_model.roadmap.npz."""
    return Path(model_path).with_suffix(".roadmap.npz")


def load_roadmap(path: str | Path, level2_dim: int | None = None) -> Roadmap:
    """Read a roadmap .npz; RoadmapFileError names the file and the problem (missing, corrupt, wrong version,
    or subgoal states of another size than the world model's level2_dim)."""
    path = Path(path)
    if not path.is_file():
        raise RoadmapFileError(f"roadmap file {path} does not exist (build one with `ojepa roadmap`)")
    try:
        with np.load(path) as f:
            data = {k: f[k] for k in f.files}
        version = int(data.pop("version"))
        if version != FORMAT_VERSION:
            raise RoadmapFileError(f"{path}: roadmap format version {version}, expected {FORMAT_VERSION}")
        roadmap = Roadmap(cell_size=float(data.pop("cell_size")), **data)
    except RoadmapFileError:
        raise
    except Exception as err:  # zip, pickle-free npz, missing keys, bad shapes: all "not a roadmap"
        raise RoadmapFileError(f"{path}: not a readable roadmap ({err.__class__.__name__}: {err})") from err
    if level2_dim is not None and roadmap.states.shape[1] != level2_dim:
        raise RoadmapFileError(f"{path}: subgoal states have {roadmap.states.shape[1]} dims, the world model's "
                               f"level 2 has {level2_dim}: rebuild it with this model")
    return roadmap


@torch.no_grad()
def build_roadmap(model: WorldModel, episodes: Iterable[tuple[torch.Tensor, torch.Tensor]], cell_size: float = 0.25,
                  max_model_error: float = 0.15, adjacent_gap: float = 0.4, clearance_margin: float = 0.4,
                  clearance_penalty: float = 5.0) -> Roadmap:
    """Pool encoded episodes (states [T+1, D], actions [T, 2]) into a Roadmap (see the module docstring).

    An edge's cost is its length (m) times 1 + clearance_penalty * shortfall, where the shortfall is how far
    the destination cell's clearance lies below clearance_margin, as a fraction of it.
    """
    k = model.cfg.level2_k
    cells, h_all, clear_all, pairs, keys = [], [], [], [], {}
    offset = 0
    for states, actions in episodes:
        h = model.abstract(states)
        xy = model.pose(states)[:, :2].numpy()
        cell = [keys.setdefault(c, len(keys)) for c in map(tuple, np.floor(xy / cell_size).astype(int).tolist())]
        cells += cell
        h_all.append(h)
        clear_all.append(model.clearance(states))
        if len(actions) >= k:
            starts = torch.arange(len(actions) - k + 1)
            macros = torch.stack([actions[t:t + k] for t in starts.tolist()])
            predicted = model.pose(model.next2(h[starts], macros))[:, :2].numpy()
            error = np.hypot(*(predicted - xy[starts.numpy() + k]).T)
            pairs += [(offset + t, offset + t + k) for t in starts[torch.from_numpy(error <= max_model_error)].tolist()]
        offset += len(states)
    if not keys:
        raise ValueError("no frames to build a roadmap from")
    cell_of = np.asarray(cells)
    h_cat, clear_cat = torch.cat(h_all).numpy(), torch.cat(clear_all).numpy()
    xy_cat = model.pose(torch.from_numpy(h_cat))[:, :2].numpy()
    m = len(keys)
    counts = np.bincount(cell_of, minlength=m)[:, None]
    centres = np.stack([np.bincount(cell_of, xy_cat[:, i], m) for i in range(2)], 1) / counts
    states = np.stack([np.bincount(cell_of, h_cat[:, i], m) for i in range(h_cat.shape[1])], 1) / counts
    clearance = np.array([np.median(clear_cat[cell_of == c]) for c in range(m)])
    shortfall = np.clip(clearance_margin - clearance, 0.0, None) / clearance_margin
    linked = {(int(cell_of[a]), int(cell_of[b])) for a, b in pairs}
    for (i, j), cell in keys.items():
        for di in (-1, 0, 1):
            for dj in (-1, 0, 1):
                other = keys.get((i + di, j + dj))
                if other is not None and np.hypot(*(centres[cell] - centres[other])) <= adjacent_gap:
                    linked.add((cell, other))
    links = sorted({(a, b) for a, b in linked if a != b} | {(b, a) for a, b in linked if a != b})  # drivable back
    edges = np.array(links, dtype=np.int64).reshape(-1, 2)
    length = np.hypot(*(centres[edges[:, 0]] - centres[edges[:, 1]]).T)
    costs = length * (1.0 + clearance_penalty * shortfall[edges[:, 1]])
    keep = _largest_component(m, edges)  # islands (a lone stuck frame, a rejected crossing) would trap a search
    index = np.full(m, -1)
    index[keep] = np.arange(len(keep))
    kept_edges = np.isin(edges[:, 0], keep)
    return Roadmap(cell_size, centres[keep].astype(np.float32), states[keep].astype(np.float32),
                   clearance[keep].astype(np.float32), index[edges[kept_edges]], costs[kept_edges])


def _largest_component(m: int, edges: np.ndarray) -> np.ndarray:
    """Sorted indices of the cells in the largest connected component of the (symmetric) edge set."""
    label = np.arange(m)

    def root(i: int) -> int:
        while label[i] != i:
            label[i] = label[label[i]]
            i = int(label[i])
        return i

    for a, b in edges.tolist():
        label[root(a)] = root(b)
    roots = np.array([root(i) for i in range(m)])
    return np.flatnonzero(roots == np.bincount(roots).argmax())
