"""Episode files of both kinds as one array format: `ojepa collect` .npz files and memory_node MCAP episodes.

Every episode becomes {"images" uint8 [T+1, S, S, 3] RGB, "odom" float32 [T+1, 5] (x, y, yaw, v, w),
"actions" float32 [T, 2] (v, w), "clearance" float32 [T+1], "ranges" float32 [T+1, sectors]}, sampled at the
control period, so training never has to know where its data came from. The two labels come from the
robot's own sensors only (core/sensing.py): the range scan where one was recorded, else the bumper
(clearance 0 at contacts, NaN, unknown, elsewhere; ranges NaN).

MCAP episodes are logged streams (camera ~20 Hz, /odom ~50 Hz, /cmd_vel whenever the actor publishes); they
are resampled onto a DT grid of camera frames, all on the log clock (the receive time at memory_node, the
same clock for every topic). Images of another size are resized (area-averaged when shrinking), squashing
non-square frames to S x S.
"""

from __future__ import annotations

import math
import warnings
from pathlib import Path

import cv2
import numpy as np

from ojepa_ros.core.episodes import read_episode
from ojepa_ros.core.formats import rgb_from_image
from ojepa_ros.core.sensing import RangeLabels

DT = 0.1  # s: the control period; one kept frame per DT
CMD_TIMEOUT = 0.5  # s: sim_node's default cmd_timeout; an older /cmd_vel no longer moves the base
IMAGE_TOPIC, ODOM_TOPIC, CMD_TOPIC, BUMPER_TOPIC = "/camera/image_raw", "/odom", "/cmd_vel", "/collision"
SCAN_TOPIC = "/scan"
_ACTION_SUBSAMPLES = 20  # points per interval at which the piecewise-constant /cmd_vel is averaged


def find_episodes(sources: str | Path | list[str | Path]) -> list[Path]:
    """Episode files in source order, each source's sorted by name, without duplicates.

    A source is an .npz or .mcap file, a rosbag2 episode folder (holding metadata.yaml or an .mcap), or a
    directory whose direct children are any of those (e.g. `ojepa collect --out` or memory_node's output_dir).
    """
    found: dict[Path, None] = {}
    for source in [sources] if isinstance(sources, (str, Path)) else sources:
        source = Path(source)
        if not source.exists():
            raise FileNotFoundError(f"episode source {source} does not exist")
        if source.is_file() and not _is_episode(source):
            raise ValueError(f"{source} is not an episode file (.npz or .mcap)")
        given = source.is_file() or _is_bag_dir(source)
        found.update((path, None) for path in ([source] if given else sorted(source.iterdir())) if _is_episode(path))
    return list(found)


def _is_episode(path: Path) -> bool:
    return path.suffix in (".npz", ".mcap") if path.is_file() else _is_bag_dir(path)


def _is_bag_dir(path: Path) -> bool:
    return path.is_dir() and ((path / "metadata.yaml").is_file() or any(path.glob("*.mcap")))


def recorded_world(path: str | Path) -> str | None:
    """The world an `ojepa collect` episode was recorded in (None where the file does not say, e.g. MCAP)."""
    path = Path(path)
    if path.suffix != ".npz":
        return None
    with np.load(path) as ep:
        return str(ep["world"]) if "world" in ep else None


def load_episode(path: str | Path, image_size: int | None = None,
                 labels: RangeLabels = RangeLabels()) -> dict[str, np.ndarray]:
    """One episode as arrays; images resized to image_size x image_size when given and different.

    With image_size None images keep their recorded size, which must then be square.
    """
    path = Path(path)
    episode = _load_npz(path) if path.suffix == ".npz" else _load_mcap(path, image_size)
    episode["images"] = _resize_all(episode["images"], image_size, path)
    scan, angles, bumper = episode.pop("scan"), episode.pop("scan_angles"), episode.pop("bumper")
    frames = len(episode["odom"])
    if scan is not None:
        episode["clearance"], episode["ranges"] = labels.of(scan, angles)
    else:
        episode["clearance"] = np.full(frames, np.nan, dtype=np.float32)
        episode["ranges"] = np.full((frames, labels.sectors), np.nan, dtype=np.float32)
    episode["clearance"][bumper] = 0.0  # touching, whatever the scan says
    return episode


def _load_npz(path: Path) -> dict[str, np.ndarray]:
    """A collected episode; its sensor channels only (a "clearance" array some old files hold is the simulator's
    ground truth, and is never read)."""
    with np.load(path) as ep:
        frames = len(ep["odom"])
        return {"images": ep["images"], "odom": ep["odom"].astype(np.float32),
                "actions": ep["actions"].astype(np.float32),
                "scan": ep["scan"] if "scan" in ep else None,
                "scan_angles": ep["scan_angles"] if "scan_angles" in ep else None,
                "bumper": ep["collision"].astype(bool) if "collision" in ep else np.zeros(frames, dtype=bool)}


def _resize_all(images: np.ndarray, size: int | None, path: Path) -> np.ndarray:
    h, w = images.shape[1:3]
    if size is None:
        if h != w:
            raise ValueError(f"{path}: images are {w}x{h}, not square; pass image_size to resize them")
        return images
    if (h, w) == (size, size):
        return images
    return np.stack([_resize(image, size) for image in images])


def _resize(image: np.ndarray, size: int) -> np.ndarray:
    shrink = size < max(image.shape[:2])
    return cv2.resize(image, (size, size), interpolation=cv2.INTER_AREA if shrink else cv2.INTER_LINEAR)


def _load_mcap(path: Path, image_size: int | None) -> dict[str, np.ndarray]:
    """Resample a logged episode: a DT grid from the first frame that has odometry before it, each grid time
    taking the nearest frame; odom = the latest /odom at or before that frame; action = the mean of the
    /cmd_vel in force between this frame and the next. A grid time with no frame within DT/2 is a gap:
    the longest gap-free run is kept (with a warning), so no window spans missing time."""
    frames: list[tuple[float, np.ndarray]] = []
    odom: list[tuple[float, np.ndarray]] = []
    cmds: list[tuple[float, np.ndarray]] = []
    bumper: list[tuple[float, bool]] = []
    scans: list[tuple[float, np.ndarray, np.ndarray]] = []
    for topic, stamp_ns, msg in read_episode(path):
        t = stamp_ns * 1e-9
        if topic == IMAGE_TOPIC:
            image = _image_rgb(msg, path)
            frames.append((t, image if image_size is None else _resize(image, image_size)))
        elif topic == ODOM_TOPIC:
            odom.append((t, _odometry(msg)))
        elif topic == CMD_TOPIC:
            twist = getattr(msg, "twist", msg)  # geometry_msgs/TwistStamped or Twist (enable_stamped_cmd_vel)
            cmds.append((t, np.array([twist.linear.x, twist.angular.z])))
        elif topic == BUMPER_TOPIC:
            bumper.append((t, bool(msg.data)))
        elif topic == SCAN_TOPIC:
            ranges = np.asarray(msg.ranges, dtype=np.float32)
            scans.append((t, ranges, msg.angle_min + msg.angle_increment * np.arange(len(ranges))))
    if not frames:
        raise ValueError(f"{path} has no {IMAGE_TOPIC} messages; record episodes with memory_node "
                         "`record_images:=true` to train on them")
    if not odom:
        raise ValueError(f"{path} has no {ODOM_TOPIC} messages; cannot train on it")
    frame_t = np.array([t for t, _ in frames])
    odom_t = np.array([t for t, _ in odom])
    usable = np.flatnonzero(frame_t >= odom_t[0])
    if len(usable) < 2:
        raise ValueError(f"{path}: fewer than two camera frames after the first odometry; nothing to learn from")
    picks = _longest_run(_grid_frames(frame_t[usable[0]:]), path) + usable[0]
    times = frame_t[picks]
    odom_i = np.searchsorted(odom_t, times, side="right") - 1
    scan = scan_angles = None
    if scans:
        scan_i = np.clip(np.searchsorted(np.array([entry[0] for entry in scans]), times, side="right") - 1, 0, None)
        scan, scan_angles = np.stack([scans[i][1] for i in scan_i]), scans[0][2]
    return {"images": np.stack([frames[i][1] for i in picks]),
            "odom": np.stack([odom[i][1] for i in odom_i]).astype(np.float32),
            "actions": _mean_command(cmds, times), "scan": scan, "scan_angles": scan_angles,
            "bumper": _contacts(bumper, times)}


def _contacts(bumper: list[tuple[float, bool]], times: np.ndarray) -> np.ndarray:
    """[len(times)] bool: the latest /collision at or before each frame reported contact."""
    if not bumper:
        return np.zeros(len(times), dtype=bool)
    bump_t = np.array([t for t, _ in bumper])
    latest = np.searchsorted(bump_t, times, side="right") - 1
    return np.array([c for _, c in bumper])[np.clip(latest, 0, None)] & (latest >= 0)


def _grid_frames(frame_t: np.ndarray) -> np.ndarray:
    """Per grid time t0 + k DT: the index of the nearest frame, or -1 where none is within DT/2."""
    grid = frame_t[0] + DT * np.arange(math.floor((frame_t[-1] - frame_t[0]) / DT + 1e-6) + 1)
    after = np.clip(np.searchsorted(frame_t, grid), 1, len(frame_t) - 1)
    nearest = np.where(grid - frame_t[after - 1] <= frame_t[after] - grid, after - 1, after)
    nearest[np.abs(frame_t[nearest] - grid) > DT / 2] = -1
    nearest[1:][nearest[1:] == nearest[:-1]] = -1  # a frame used twice would be a step of zero time
    return nearest


def _longest_run(picks: np.ndarray, path: Path) -> np.ndarray:
    """The longest stretch of picks without a gap (-1); warns when grid time is dropped."""
    bounds = np.flatnonzero(np.diff((np.concatenate(([-1], picks, [-1])) >= 0).astype(np.int8)) != 0).reshape(-1, 2)
    start, stop = max(bounds, key=lambda b: b[1] - b[0])
    if stop - start < len(picks):
        warnings.warn(f"{path}: the camera stream has gaps longer than {DT / 2} s; keeping the longest gap-free "
                      f"{(stop - start) * DT:.1f} s of {len(picks) * DT:.1f} s", stacklevel=4)
    return picks[start:stop]


def _mean_command(cmds: list[tuple[float, np.ndarray]], times: np.ndarray) -> np.ndarray:
    """[len(times) - 1, 2]: the time-average of the command in force between consecutive frames; before the
    first /cmd_vel and CMD_TIMEOUT after the last one the base stands still (zero)."""
    if not cmds:
        return np.zeros((len(times) - 1, 2), dtype=np.float32)
    cmd_t = np.array([t for t, _ in cmds])
    values = np.stack([v for _, v in cmds])
    fractions = (np.arange(_ACTION_SUBSAMPLES) + 0.5) / _ACTION_SUBSAMPLES
    taus = times[:-1, None] + np.diff(times)[:, None] * fractions  # [T, n] instants inside each interval
    last = np.searchsorted(cmd_t, taus, side="right") - 1
    in_force = (last >= 0) & (taus - cmd_t[last] <= CMD_TIMEOUT)
    return np.where(in_force[..., None], values[last], 0.0).mean(1).astype(np.float32)


def _image_rgb(msg, path: Path) -> np.ndarray:
    """A rosbags sensor_msgs/Image as [H, W, 3] uint8 RGB; the error names the file."""
    try:
        return rgb_from_image(msg.encoding, msg.width, msg.height, msg.step, msg.data)
    except ValueError as err:
        raise ValueError(f"{path}: {err}") from None


def _odometry(msg) -> np.ndarray:
    """[x, y, yaw, v, w] of a rosbags nav_msgs/Odometry."""
    p, q, t = msg.pose.pose.position, msg.pose.pose.orientation, msg.twist.twist
    yaw = math.atan2(2.0 * (q.w * q.z + q.x * q.y), 1.0 - 2.0 * (q.y * q.y + q.z * q.z))
    return np.array([p.x, p.y, yaw, t.linear.x, t.angular.z])
