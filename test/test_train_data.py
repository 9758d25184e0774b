"""Training data and infrastructure: .npz and MCAP episodes as one dataset, training plots, torchrun/DDP."""

from __future__ import annotations

import csv
import math
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import matplotlib.image
import numpy as np
import pytest
import torch

from ojepa_ros.core.episodes import TYPESTORE, EpisodeWriter
from ojepa_ros.core.sensing import RangeLabels
from ojepa_ros.train.dataset import EpisodeDataset, split_episodes
from ojepa_ros.train.distributed import DistContext
from ojepa_ros.train.episode_files import find_episodes, load_episode
from ojepa_ros.train.plots import plot_training_log, read_training_log

T = TYPESTORE.types
T0 = 1000.0  # s: log time of the first camera frame
TOPICS = {"/camera/image_raw": "sensor_msgs/msg/Image", "/odom": "nav_msgs/msg/Odometry",
          "/cmd_vel": "geometry_msgs/msg/Twist"}


def _header(t: float):
    sec = math.floor(t)
    return T["std_msgs/msg/Header"](stamp=T["builtin_interfaces/msg/Time"](sec=sec, nanosec=int((t - sec) * 1e9)),
                                    frame_id="odom")


def _image(t: float, index: int, size: int, encoding: str):
    """A uniform frame whose red channel is the frame index; rows padded by 4 bytes beyond 3 * width."""
    rgb = np.zeros((size, size, 3), np.uint8)
    rgb[..., 0], rgb[..., 2] = index, 200
    pixels = rgb[..., ::-1] if encoding == "bgr8" else rgb
    rows = np.concatenate((pixels.reshape(size, -1), np.full((size, 4), 7, np.uint8)), axis=1)
    return T["sensor_msgs/msg/Image"](header=_header(t), height=size, width=size, encoding=encoding,
                                      is_bigendian=0, step=3 * size + 4, data=rows.ravel())


def _odometry(t: float, x: float, yaw: float):
    v3, zeros = T["geometry_msgs/msg/Vector3"], np.zeros(36)
    pose = T["geometry_msgs/msg/Pose"](position=T["geometry_msgs/msg/Point"](x=x, y=-x, z=0.0),
                                       orientation=T["geometry_msgs/msg/Quaternion"](
                                           x=0.0, y=0.0, z=math.sin(yaw / 2), w=math.cos(yaw / 2)))
    twist = T["geometry_msgs/msg/Twist"](linear=v3(x=0.5, y=0.0, z=0.0), angular=v3(x=0.0, y=0.0, z=0.25))
    return T["nav_msgs/msg/Odometry"](
        header=_header(t), child_frame_id="base_link",
        pose=T["geometry_msgs/msg/PoseWithCovariance"](pose=pose, covariance=zeros),
        twist=T["geometry_msgs/msg/TwistWithCovariance"](twist=twist, covariance=zeros))


def _twist(v: float, w: float):
    v3 = T["geometry_msgs/msg/Vector3"]
    return T["geometry_msgs/msg/Twist"](linear=v3(x=v, y=0.0, z=0.0), angular=v3(x=0.0, y=0.0, z=w))


def write_mcap_episode(path: Path, frame_times: np.ndarray | None, size: int = 48, encoding: str = "bgr8") -> Path:
    """A memory_node-style episode on the log clock (seconds after T0): camera frames at frame_times
    (None: no camera topic), /odom at 50 Hz from 0.035 s with x = its own time, /cmd_vel (0.1 m, -0.2 m)
    at 0.1 m + 0.02 s for m = 0..9, then silence."""
    messages = [(T0 + 0.035 + 0.02 * i, "/odom", _odometry(T0 + 0.035 + 0.02 * i, 0.035 + 0.02 * i, 0.3 * i))
                for i in range(100)]
    messages += [(T0 + 0.1 * m + 0.02, "/cmd_vel", _twist(0.1 * m, -0.2 * m)) for m in range(10)]
    if frame_times is not None:
        messages += [(T0 + t, "/camera/image_raw", _image(T0 + t, k, size, encoding))
                     for k, t in enumerate(frame_times)]
    topics = TOPICS if frame_times is not None else {k: v for k, v in TOPICS.items() if k != "/camera/image_raw"}
    writer = EpisodeWriter(path, topics)
    for t, topic, msg in sorted(messages, key=lambda m: m[0]):
        writer.write(topic, round(t * 1e9), TYPESTORE.serialize_cdr(msg, msg.__msgtype__))
    writer.close()
    return path


def write_npz_episode(path: Path, steps: int, size: int = 32, seed: int = 0) -> Path:
    """An episode with the keys and dtypes `ojepa collect` writes."""
    rng = np.random.default_rng(seed)
    np.savez_compressed(path, images=rng.integers(0, 255, (steps + 1, size, size, 3), dtype=np.uint8),
                        odom=rng.normal(size=(steps + 1, 5)).astype(np.float32),
                        actions=rng.uniform(-0.5, 0.5, (steps, 2)).astype(np.float32),
                        collision=np.arange(steps + 1) == 2, scan=rng.uniform(0.3, 5.0, (steps + 1, 36)).astype(np.float32),
                        scan_angles=np.linspace(-np.pi, np.pi, 36, endpoint=False).astype(np.float32),
                        clearance=np.full(steps + 1, 7.0, np.float32))  # old files' ground truth: never read
    return path


CAMERA_20HZ = 0.05 * np.arange(40)  # 0 .. 1.95 s


def test_npz_episode_loads_as_written_and_resizes(tmp_path) -> None:
    path = write_npz_episode(tmp_path / "episode_00000.npz", steps=10)
    ep = load_episode(path)
    with np.load(path) as raw:
        assert all(np.array_equal(ep[k], raw[k]) for k in ("images", "odom", "actions"))
        clearance, ranges = RangeLabels().of(raw["scan"], raw["scan_angles"])
    assert np.array_equal(ep["clearance"][3:], clearance[3:]) and ep["clearance"][2] == 0.0  # the bumper says touching
    assert np.array_equal(ep["ranges"], ranges) and not (ep["clearance"] == 7.0).any()
    assert ep["images"].dtype == np.uint8 and ep["odom"].dtype == ep["actions"].dtype == np.float32
    small = load_episode(path, image_size=16)["images"]
    assert small.shape == (11, 16, 16, 3)
    assert abs(float(small.mean()) - float(ep["images"].mean())) < 2.0  # area-averaged, not garbage


def test_mcap_episode_is_resampled_at_the_control_period(tmp_path) -> None:
    ep = load_episode(write_mcap_episode(tmp_path / "episode_a", CAMERA_20HZ), image_size=32)
    # Frame 0 (t=0) precedes the first /odom (0.035 s): the grid starts at frame 1 and takes every second frame.
    kept = np.arange(1, 40, 2)
    frame_t = CAMERA_20HZ[kept]
    assert ep["images"].shape == (20, 32, 32, 3) and ep["images"].dtype == np.uint8
    assert np.array_equal(ep["images"][:, 5, 5, 0], kept)  # bgr8 -> RGB, padded rows, resized: red = index
    assert np.all(ep["images"][..., 2] == 200) and np.all(ep["images"][..., 1] == 0)
    odom_t = 0.035 + 0.02 * np.arange(100)
    latest = np.array([odom_t[odom_t <= t].max() for t in frame_t])
    assert ep["odom"].shape == (20, 5) and ep["odom"].dtype == np.float32
    assert np.allclose(ep["odom"][:, 0], latest, atol=1e-6) and np.allclose(ep["odom"][:, 1], -latest, atol=1e-6)
    yaw = 0.3 * np.round((latest - 0.035) / 0.02)
    assert np.allclose(np.cos(ep["odom"][:, 2]), np.cos(yaw), atol=1e-5)
    assert np.allclose(ep["odom"][:, 3:], [0.5, 0.25])
    # Interval j is [0.05 + 0.1 j, 0.15 + 0.1 j): 70 % command j, then command j + 1 from 0.12 + 0.1 j.
    assert ep["actions"].shape == (19, 2) and ep["actions"].dtype == np.float32
    j = np.arange(9)
    assert np.allclose(ep["actions"][:9], np.stack((0.1 * (j + 0.3), -0.2 * (j + 0.3)), 1), atol=1e-6)
    assert np.allclose(ep["actions"][13], [0.7 * 0.9, 0.7 * -1.8], atol=1e-6)  # last command times out at 1.42 s
    assert np.all(ep["actions"][14:] == 0.0)
    assert ep["clearance"].shape == (20,) and np.isnan(ep["clearance"]).all()
    assert ep["ranges"].shape == (20, RangeLabels().sectors) and np.isnan(ep["ranges"]).all()  # no /scan logged


def test_mcap_camera_gap_keeps_the_longest_continuous_stretch(tmp_path) -> None:
    times = np.concatenate((0.05 * np.arange(1, 20), 1.62 + 0.05 * np.arange(6)))  # nothing in 0.95 .. 1.62 s
    with pytest.warns(UserWarning, match="gaps"):
        ep = load_episode(write_mcap_episode(tmp_path / "episode_gap", times, encoding="rgb8", size=32))
    assert np.array_equal(ep["images"][:, 0, 0, 0], np.arange(0, 20, 2))
    assert len(ep["actions"]) == 9


def test_mcap_without_images_is_refused_with_the_fix(tmp_path) -> None:
    path = write_mcap_episode(tmp_path / "episode_blind", None)
    with pytest.raises(ValueError, match=r"episode_blind.*record_images:=true"):
        load_episode(path)


def test_mixed_sources_make_one_dataset(tmp_path) -> None:
    npz_dir, bag_dir, empty = tmp_path / "rooms", tmp_path / "episodes", tmp_path / "empty"
    for d in (npz_dir, bag_dir, empty):
        d.mkdir()
    npz = [write_npz_episode(npz_dir / f"episode_{i:05d}.npz", steps=12, seed=i) for i in range(2)]
    bag = write_mcap_episode(bag_dir / "episode_20250101_000000_000000", CAMERA_20HZ)
    (bag_dir / "notes.txt").write_text("not an episode")
    loose = next(bag.glob("*.mcap"))
    assert find_episodes([npz_dir, bag_dir, npz[0]]) == [*npz, bag]
    assert find_episodes(bag) == [bag] and find_episodes(str(loose)) == [loose]
    with pytest.raises(FileNotFoundError, match=r"no episode \.npz files in .*empty"):
        split_episodes(empty, 0.5, seed=0)

    split = split_episodes([npz_dir, bag_dir], val_fraction=0.34, seed=0)
    assert sorted(split["train"] + split["val"]) == sorted([*npz, bag]) and len(split["val"]) == 1
    ds = EpisodeDataset([*npz, bag], horizon=4)
    assert ds.image_size == 32 and len(ds) == 2 * (12 - 3) + (19 - 3)
    mcap_item, npz_item = ds[len(ds) - 1], ds[0]
    for item in (mcap_item, npz_item):
        assert item["images"].shape == (5, 32, 32, 3) and item["images"].dtype == torch.uint8
        assert item["proprio"].shape == (5, 6) and item["actions"].shape == (4, 2)
        assert item["proprio"].dtype == item["actions"].dtype == item["clearance"].dtype == torch.float32
    assert torch.isnan(mcap_item["clearance"]).all() and not torch.isnan(npz_item["clearance"]).any()
    norm = ds.normalisation()
    assert all(np.isfinite(v).all() for v in norm.values())
    ds.episodes[0]["proprio"][0, 0] = float("nan")  # a NaN is ignored, not propagated
    assert np.isfinite(ds.normalisation()["proprio_mean"]).all()


def test_training_log_plot(tmp_path) -> None:
    log = tmp_path / "wm.csv"
    columns = ["epoch", "step", "seconds", "train_total", "train_prediction", "train_variance", "train_covariance",
               "val_rollout_error_ratio", "val_feature_std", "samples_per_s", "a_metric_nobody_knows", "note"]
    with log.open("w", newline="") as f:
        writer = csv.writer(f)
        writer.writerow(columns)
        for epoch in (1, 2, 3):
            writer.writerow([epoch, 10 * epoch, 5.0 * epoch, 1.0 / epoch, 0.5 / epoch, 0.0, 0.1, 0.9 / epoch,
                             0.3, 800.0, -epoch, "text"])
        writer.writerow(["probe", 30, 16.0, 0.3, 0.15, 0.0, 0.1, 0.25, 0.3, "", 7, "text"])
    series = read_training_log(log)
    assert "note" not in series and "epoch" not in series and len(series) == len(columns) - 3
    assert series["a_metric_nobody_knows"] == [(1.0, -1.0), (2.0, -2.0), (3.0, -3.0)]  # the probe row is skipped
    png = plot_training_log(log)
    assert png == tmp_path / "wm.png" and png.stat().st_size > 10_000
    image = matplotlib.image.imread(png)
    assert image.shape[0] > 200 and image.shape[1] > 600 and image[..., :3].std() > 0.05
    assert plot_training_log(log, tmp_path / "sub" / "other.png").is_file()


def test_single_process_context_is_a_no_op(monkeypatch) -> None:
    for name in ("RANK", "WORLD_SIZE", "LOCAL_RANK"):
        monkeypatch.delenv(name, raising=False)
    ctx = DistContext.from_env().init()
    model = torch.nn.Linear(2, 1)
    assert (ctx.rank, ctx.world_size, ctx.is_main) == (0, 1, True) and not torch.distributed.is_initialized()
    assert ctx.wrap(model) is model and ctx.mean({"loss": 2.5}) == {"loss": 2.5}
    ctx.close()


DDP_SCRIPT = """
import sys, torch
from ojepa_ros.train.distributed import DistContext

ctx = DistContext.from_env().init()
torch.manual_seed(ctx.rank)  # different initial weights per rank: DDP must start all from rank 0's
model = ctx.wrap(torch.nn.Linear(3, 1))
optimizer = torch.optim.SGD(model.parameters(), lr=0.1)
data = torch.Generator().manual_seed(100 + ctx.rank)  # each rank its own batches
for _ in range(5):
    x = torch.randn(8, 3, generator=data)
    loss = (model(x) - x.sum(1, keepdim=True)).square().mean()
    optimizer.zero_grad()
    loss.backward()
    optimizer.step()
metrics = ctx.mean({"rank": float(ctx.rank), "world": float(ctx.world_size)})
torch.save({"params": [p.detach().clone() for p in model.parameters()], "metrics": metrics,
            "main": ctx.is_main, "device": str(ctx.device)}, f"{sys.argv[1]}/rank{ctx.rank}.pt")
ctx.close()
"""


def test_torchrun_two_ranks_train_in_lockstep(tmp_path) -> None:
    script = tmp_path / "ddp_train.py"
    script.write_text(textwrap.dedent(DDP_SCRIPT))
    env = {k: v for k, v in os.environ.items() if k not in ("RANK", "WORLD_SIZE", "LOCAL_RANK", "MASTER_PORT")}
    env |= {"OMP_NUM_THREADS": "1", "CUDA_VISIBLE_DEVICES": ""}
    done = subprocess.run([sys.executable, "-m", "torch.distributed.run", "--nproc_per_node=2", "--standalone",
                           str(script), str(tmp_path)], env=env, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr[-3000:]
    ranks = [torch.load(tmp_path / f"rank{r}.pt", weights_only=True) for r in (0, 1)]
    assert [r["main"] for r in ranks] == [True, False] and ranks[0]["device"] == "cpu"
    assert all(r["metrics"] == {"rank": 0.5, "world": 2.0} for r in ranks)
    assert all(torch.equal(a, b) for a, b in zip(ranks[0]["params"], ranks[1]["params"]))

    # The same steps in one process with the gradients of both ranks' batches averaged: what DDP must compute.
    torch.manual_seed(0)
    model = torch.nn.Linear(3, 1)
    optimizer = torch.optim.SGD(model.parameters(), lr=0.1)
    data = [torch.Generator().manual_seed(100 + r) for r in (0, 1)]
    for _ in range(5):
        optimizer.zero_grad()
        for g in data:
            x = torch.randn(8, 3, generator=g)
            ((model(x) - x.sum(1, keepdim=True)).square().mean() / 2).backward()
        optimizer.step()
    assert all(torch.allclose(a, b, atol=1e-6) for a, b in zip(model.parameters(), ranks[0]["params"]))
