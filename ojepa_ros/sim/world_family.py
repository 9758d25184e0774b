"""A family of floor plans generated from seeds, with a fixed training / held-out split of the seeds.

A seed gives a grid of 2-6 rooms of varied sizes, doorways of varied position and width (every room
reachable), colours per room, landmarks by the walls and furniture (boxes and cylinders of varied size,
colour and height) anywhere that leaves doorways passable. Collect, train, distill, critic and roadmap use
training seeds (and the four-room world, a named member); figures come from held-out seeds. Obstacles
placed on a start/goal pair's path (`obstacles_on_path`, `mover_across`) are drawn from the evaluation's
own generator, so no placement a figure uses was seen in training.
"""

from __future__ import annotations

import colorsys
import math

import numpy as np

from ojepa_ros.sim.rooms_world import (
    LANDMARK_HALF, Box, Door, Mover, Room, RoomsLayout, clearance, default_layout, doorways, room_of, room_walls)

TRAINING_SEEDS = range(0, 1000)
HELDOUT_SEEDS = range(1000, 2000)
SPLITS = ("train", "heldout")
NAMED = {"four_rooms": default_layout}
_SALT = 0x0E1A  # keeps layout seeds apart from every other generator seeded with small integers
DOOR_WIDTH = (1.0, 1.5)   # m
ROOM_SIZE = (3.0, 4.5)    # m per side
DOOR_KEEP_OUT = 0.9       # m: furniture and placed obstacles stay this far from a doorway's centre
PASSAGE = 0.5             # m: a placed obstacle leaves at least this gap to everything else (the robot is 0.36 m wide)


def _colour(rng: np.random.Generator, light: tuple[float, float]) -> tuple[float, float, float, float]:
    r, g, b = colorsys.hsv_to_rgb(rng.uniform(), rng.uniform(0.2, 0.8), rng.uniform(*light))
    return (round(r, 3), round(g, 3), round(b, 3), 1.0)


def generate_layout(seed: int) -> RoomsLayout:
    """The floor plan of world `seed`: deterministic, any integer >= 0."""
    rng = np.random.default_rng([_SALT, int(seed)])
    cols, rows = int(rng.integers(1, 4)), int(rng.integers(1, 3))
    if cols * rows < 2:
        cols = 2
    xs = np.concatenate([[0.0], np.cumsum(np.round(rng.uniform(*ROOM_SIZE, cols), 2))])
    ys = np.concatenate([[0.0], np.cumsum(np.round(rng.uniform(*ROOM_SIZE, rows), 2))])
    cells = [(c, r) for r in range(rows) for c in range(cols)]
    rooms = tuple(Room(f"R{i}", float(xs[c]), float(ys[r]), float(xs[c + 1]), float(ys[r + 1]), _colour(rng, (0.55, 0.95)))
                  for i, (c, r) in enumerate(cells))
    doors = _doors(rng, cells, xs, ys)
    bounds = (0.0, 0.0, float(xs[-1]), float(ys[-1]))
    obstacles: list[Box] = []
    for room in rooms:
        obstacles += room_walls(room, bounds, doors, _colour(rng, (0.15, 0.7)))
    walls_only = RoomsLayout(rooms, tuple(obstacles))
    door_centres = np.array([c for c, _ in doorways(walls_only)])
    for room in rooms:
        obstacles += _landmarks(rng, room)
        obstacles += _furniture(rng, room, RoomsLayout(rooms, tuple(obstacles)), door_centres)
    return RoomsLayout(rooms, tuple(obstacles), name=f"seed_{seed}")


def _doors(rng: np.random.Generator, cells: list[tuple[int, int]], xs: np.ndarray, ys: np.ndarray) -> tuple[Door, ...]:
    """A random spanning tree of the grid's neighbours (every room reachable) plus a few extra doorways."""
    index = {cell: i for i, cell in enumerate(cells)}
    pairs = [(a, b) for a in cells for b in ((a[0] + 1, a[1]), (a[0], a[1] + 1)) if b in index]
    order = rng.permutation(len(pairs))
    parent = list(range(len(cells)))

    def root(i: int) -> int:
        while parent[i] != i:
            i = parent[i]
        return i

    doors: list[Door] = []
    for k in order:
        a, b = pairs[k]
        joined = root(index[a]) != root(index[b])
        if joined or rng.random() < 0.3:
            parent[root(index[a])] = root(index[b])
            if a[1] == b[1]:  # side by side: the wall is the line x = xs[b.col]
                lo, hi, axis, line = ys[a[1]], ys[a[1] + 1], "x", xs[b[0]]
            else:
                lo, hi, axis, line = xs[a[0]], xs[a[0] + 1], "y", ys[b[1]]
            width = rng.uniform(*DOOR_WIDTH)
            centre = rng.uniform(lo + 0.4 + width / 2, hi - 0.4 - width / 2)
            doors.append((axis, float(line), (round(centre - width / 2, 3), round(centre + width / 2, 3))))
    return tuple(doors)


def _landmarks(rng: np.random.Generator, room: Room) -> list[Box]:
    """1-2 tall coloured pillars in the room's corners: what tells rooms apart beside their colours."""
    corners = [(room.xmin, room.ymin), (room.xmax, room.ymin), (room.xmax, room.ymax), (room.xmin, room.ymax)]
    picks = rng.choice(4, size=int(rng.integers(1, 3)), replace=False)
    out = []
    for k, i in enumerate(picks):
        cx, cy = corners[i]
        inset = 0.05 + LANDMARK_HALF + 0.05
        centre = (cx + inset * np.sign((room.xmin + room.xmax) / 2 - cx), cy + inset * np.sign((room.ymin + room.ymax) / 2 - cy))
        out.append(Box(f"{room.name}_landmark_{k}", (round(centre[0], 3), round(centre[1], 3)),
                       (LANDMARK_HALF, LANDMARK_HALF), float(rng.uniform(0.4, 0.9)), _colour(rng, (0.3, 1.0))))
    return out


def random_obstacle(rng: np.random.Generator, name: str, centre: tuple[float, float],
                    size: tuple[float, float] = (0.15, 0.35)) -> Box:
    """A box or cylinder of random size (half-size / radius in `size`), height and colour at `centre`."""
    cylinder = rng.random() < 0.4
    half = rng.uniform(*size, 1 if cylinder else 2).round(3)
    return Box(name, (round(float(centre[0]), 3), round(float(centre[1]), 3)),
               (float(half[0]), float(half[0] if cylinder else half[1])), float(rng.uniform(0.3, 0.8)),
               _colour(rng, (0.2, 1.0)), "cylinder" if cylinder else "box")


def _furniture(rng: np.random.Generator, room: Room, layout: RoomsLayout, door_centres: np.ndarray) -> list[Box]:
    """0-2 pieces placed >= 0.55 m from walls and others and DOOR_KEEP_OUT from doorways, so the room stays passable."""
    out: list[Box] = []
    for k in range(int(rng.integers(0, 3))):
        for _ in range(30):
            xy = rng.uniform((room.xmin + 0.8, room.ymin + 0.8), (room.xmax - 0.8, room.ymax - 0.8))
            piece = random_obstacle(rng, f"{room.name}_furniture_{k}", tuple(xy))
            reach = max(piece.half_size)
            near_door = len(door_centres) and np.min(np.hypot(*(door_centres - xy).T)) < DOOR_KEEP_OUT + reach
            if not near_door and clearance(layout.with_obstacles(tuple(out)), xy[None])[0] > reach + 0.55:
                out.append(piece)
                break
    return out


def world(name: str | int) -> RoomsLayout:
    """A named world (`four_rooms`) or a generated one: `seed_N`, `N`."""
    if isinstance(name, str) and name in NAMED:
        return NAMED[name]()
    text = str(name).removeprefix("seed_")
    if not text.isdigit():
        raise ValueError(f"unknown world {name!r}: use one of {sorted(NAMED)}, seed_N or N")
    return generate_layout(int(text))


def split_seeds(split: str) -> range:
    """The seeds of a split: "train" (collect, train, distill, critic, roadmap) or "heldout" (figures only)."""
    if split not in SPLITS:
        raise ValueError(f"split must be one of {SPLITS}, got {split!r}")
    return TRAINING_SEEDS if split == "train" else HELDOUT_SEEDS


def route_points(layout: RoomsLayout, start: tuple[float, float], goal: tuple[float, float]) -> np.ndarray:
    """[K, 2] the start, the doorway centres of the fewest-rooms path, the goal: a rough route for placing obstacles."""
    a, b = room_of(layout, *start), room_of(layout, *goal)
    doors = doorways(layout)
    links: dict[int, list[tuple[int, np.ndarray]]] = {}
    for centre, normal in doors:
        sides = [room_of(layout, *(centre + s * 0.2 * normal)) for s in (-1, 1)]
        if None not in sides:
            links.setdefault(sides[0], []).append((sides[1], centre))
            links.setdefault(sides[1], []).append((sides[0], centre))
    previous: dict[int, tuple[int, np.ndarray] | None] = {a: None}
    frontier = [a]
    while frontier and b not in previous:  # breadth-first over rooms
        reached = []
        for room in frontier:
            for neighbour, centre in links.get(room, []):
                if neighbour not in previous:
                    previous[neighbour] = (room, centre)
                    reached.append(neighbour)
        frontier = reached
    path, room = [], b
    while previous.get(room) is not None:
        room, centre = previous[room]
        path.append(centre)
    return np.array([start, *reversed(path), goal], dtype=float)


def obstacles_on_path(layout: RoomsLayout, start: tuple[float, float], goal: tuple[float, float], count: int,
                      rng: np.random.Generator, lateral: float = 0.25, keep_clear: float = 0.6) -> tuple[Box, ...]:
    """`count` obstacles on or beside (within `lateral` m of) the route from start to goal, at least `keep_clear`
    from start and goal, DOOR_KEEP_OUT from every doorway (never closing one) and PASSAGE from everything else,
    so there is a way past. Fewer than `count` when the route has no room for them."""
    route = route_points(layout, start, goal)
    door_centres = np.array([c for c, _ in doorways(layout)]) if len(layout.rooms) > 1 else np.zeros((0, 2))
    lengths = np.hypot(*np.diff(route, axis=0).T)
    placed: list[Box] = []
    for k in range(count):
        for _ in range(200):
            seg = int(rng.choice(len(lengths), p=lengths / lengths.sum()))
            direction = (route[seg + 1] - route[seg]) / max(lengths[seg], 1e-9)
            xy = route[seg] + direction * lengths[seg] * rng.uniform(0.2, 0.8)
            xy = xy + np.array([-direction[1], direction[0]]) * rng.uniform(-lateral, lateral)
            piece = random_obstacle(rng, f"placed_{k}", tuple(xy), size=(0.15, 0.25))
            reach = max(piece.half_size)
            here = layout.with_obstacles(tuple(placed))
            ends = min(math.dist(xy, start), math.dist(xy, goal))
            near_door = len(door_centres) and np.min(np.hypot(*(door_centres - xy).T)) < DOOR_KEEP_OUT + reach
            if ends >= keep_clear + reach and not near_door and clearance(here, xy[None])[0] > reach + PASSAGE:
                placed.append(piece)
                break
    return tuple(placed)


def mover_across(layout: RoomsLayout, start: tuple[float, float], goal: tuple[float, float],
                 rng: np.random.Generator, speed: float = 0.3, name: str = "mover_0", fraction: float = 0.5) -> Mover:
    """A box sliding across the start-goal line at `fraction` of the way, perpendicular to it, from wall to wall."""
    start_xy, goal_xy = np.asarray(start, dtype=float), np.asarray(goal, dtype=float)
    middle = start_xy + fraction * (goal_xy - start_xy)
    direction = np.asarray(goal, dtype=float) - np.asarray(start, dtype=float)
    across = np.array([-direction[1], direction[0]]) / max(float(np.hypot(*direction)), 1e-9)
    half = (0.2, 0.2)
    ends = []
    for sign in (-1.0, 1.0):
        reach = 0.0
        while reach < 5.0 and clearance(layout, (middle + sign * (reach + 0.1) * across)[None])[0] > 0.35:
            reach += 0.1
        ends.append(middle + sign * reach * across)
    a, b = (tuple(float(v) for v in np.round(end, 3)) for end in ends)
    return Mover(name, a, b, half, 0.5, (0.9, 0.4, 0.1, 1.0), speed, phase=float(rng.uniform(0.0, 10.0)))
