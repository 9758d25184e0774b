"""collect -> dataset -> train -> checkpoint, end to end at a tiny size in the real simulator."""

from __future__ import annotations

import csv
import math

import numpy as np
import pytest
import torch

from ojepa_ros.core.model_io import load_world_model, read_metadata
from ojepa_ros.sim.rooms_world import doorways
from ojepa_ros.train.collect import collect
from ojepa_ros.train.dataset import EpisodeDataset, split_episodes
from ojepa_ros.train import trainer
from ojepa_ros.train.trainer import log_path, state_path, train

STEPS = 60
TINY = {"seed": 0, "threads": 1, "epochs": 3, "steps_per_epoch": 12, "batch": 8, "horizon": 4, "val_horizon": 6,
        "val_fraction": 0.5, "val_windows": 32, "lr": 3e-3, "weight_decay": 0.0, "warmup_steps": 1, "grad_clip": 1.0,
        "ema": False, "ema_tau": 0.9, "embed_dim": 16, "hidden_dim": 32, "probe_dim": 16, "channels": [8, 8, 8, 8],
        "kind": "jepa", "z_dim": 2, "level2_k": 2, "level2_dim": 12, "expander_dim": 32, "robot_radius": 0.18,
        "scan_max": 4.0, "range_sectors": 5, "range_fov": 90.0, "range_cap": 3.0, "probe_steps": 50, "probe_batch": 64, "probe_lr": 3e-3, "probe_stride": 4,
        "weights": {"prediction": 1.0, "odometry": 100.0, "view": 1.0, "variance": 5.0, "covariance": 0.04, "kl": 0.05,
                    "level2": 1.0, "reconstruction": 1.0, "clearance": 1.0, "ranges": 1.0}}


@pytest.fixture(scope="module")
def data_dir(tmp_path_factory):
    out = tmp_path_factory.mktemp("episodes")
    stats = collect(out, episodes=2, steps=STEPS, seed=3, image_size=32)
    assert stats["steps"] == 2 * STEPS and stats["steps_per_second"] > 0
    return out


def test_collected_episode_format(data_dir) -> None:
    files = sorted(data_dir.glob("*.npz"))
    assert [f.name for f in files] == ["episode_00000.npz", "episode_00001.npz"]
    with np.load(files[0]) as ep:
        assert ep["images"].shape == (STEPS + 1, 32, 32, 3) and ep["images"].dtype == np.uint8
        assert ep["odom"].shape == (STEPS + 1, 5) and ep["odom"].dtype == np.float32
        assert ep["actions"].shape == (STEPS, 2) and ep["actions"].dtype == np.float32
        assert ep["collision"].shape == (STEPS + 1,) and ep["collision"].dtype == bool
        assert ep["scan"].shape == (STEPS + 1, 180) and ep["scan"].dtype == np.float32
        assert ep["scan_angles"].shape == (180,) and "clearance" not in ep  # sensors only, no simulator truth
        returns = ep["scan"][np.isfinite(ep["scan"])]
        assert returns.min() > 0.1 and returns.max() <= 4.0
        assert np.abs(ep["actions"]).max(0).tolist() <= [0.5, 1.5]
        assert np.linalg.norm(ep["odom"][-1, :2] - ep["odom"][0, :2]) > 0.1  # the robot moved
        assert ep["images"].std() > 5  # rendered, not blank


def test_doorways_are_found_from_the_geometry() -> None:
    from ojepa_ros.sim.rooms_world import default_layout

    centres = np.array(sorted(tuple(c) for c, _ in doorways(default_layout())))
    assert np.allclose(centres, [(4.0, 2.0), (4.0, 6.0), (6.0, 4.0)], atol=0.03)


def test_dataset_windows_and_split(data_dir) -> None:
    split = split_episodes(data_dir, val_fraction=0.5, seed=0)
    assert len(split["train"]) == len(split["val"]) == 1 and split["train"] != split["val"]
    ds = EpisodeDataset(split["train"], horizon=4)
    assert len(ds) == STEPS - 4 + 1
    item = ds[len(ds) - 1]
    assert item["images"].shape == (5, 32, 32, 3) and item["proprio"].shape == (5, 6)
    assert item["actions"].shape == (4, 2) and item["clearance"].shape == (5,) and item["ranges"].shape == (5, 9)
    with np.load(split["train"][0]) as ep:
        assert np.allclose(item["actions"].numpy(), ep["actions"][-4:])
        assert np.allclose(item["proprio"][:, :2].numpy(), ep["odom"][-5:, :2])


def test_train_decreases_loss_writes_a_loadable_model_and_resumes_exactly(data_dir, tmp_path, monkeypatch) -> None:
    out = tmp_path / "straight" / "wm.pt"
    final = train(TINY, data_dir, out)
    rows = list(csv.DictReader(log_path(out).open()))
    assert [r["epoch"] for r in rows] == ["1", "2", "3", "probe"]
    assert float(rows[2]["train_total"]) < 0.8 * float(rows[0]["train_total"])
    assert float(rows[3]["train_clearance"]) < float(rows[2]["train_clearance"])  # the frozen-state refit
    assert final["val_rollout_error_ratio"] > 0 and final["val_feature_std"] > 0
    assert final["val_level2_error_ratio"] > 0 and final["samples_per_s"] > 0
    assert all(math.isfinite(final[f"val_probe_r2_{k}"]) for k in ("x", "y", "yaw"))  # tiny data: R^2 meaningless
    assert log_path(out).with_suffix(".png").stat().st_size > 1000  # the loss/metric plot
    model = load_world_model(out)
    assert model.cfg.image_size == 32 and model.cfg.embed_dim == 16
    assert read_metadata(out)["metrics"]["epoch"] == "probe"

    # Interrupt a run during its third epoch, then resume it: the same weights as the uninterrupted run.
    resumed = tmp_path / "resumed" / "wm.pt"
    real_validate = trainer.validate
    calls = []

    def validate_then_crash(*args, **kwargs):
        calls.append(1)
        if len(calls) == 3:
            raise KeyboardInterrupt
        return real_validate(*args, **kwargs)

    monkeypatch.setattr(trainer, "validate", validate_then_crash)
    with pytest.raises(KeyboardInterrupt):
        train(TINY, data_dir, resumed)
    monkeypatch.setattr(trainer, "validate", real_validate)
    train(TINY, data_dir, resumed, resume=state_path(resumed))
    assert [r["epoch"] for r in csv.DictReader(log_path(resumed).open())] == ["1", "2", "3", "probe"]
    a, b = load_world_model(out).state_dict(), load_world_model(resumed).state_dict()
    assert all(torch.equal(a[k], b[k]) for k in a)


def test_probes_only_refits_the_clearance_probe_and_keeps_the_trained_model(data_dir, tmp_path) -> None:
    out = tmp_path / "refit" / "wm.pt"
    train(TINY | {"epochs": 1}, data_dir, out)
    before = load_world_model(out).state_dict()
    metrics = trainer.refit_probes(TINY | {"probe_dim": 24, "epochs": 99}, data_dir, out)
    after = load_world_model(out)
    assert after.cfg.probe_dim == 24 and after.clearance_head[0].out_features == 24
    kept = [k for k in before if not k.startswith("clearance_head.")]
    assert kept and all(torch.equal(before[k], after.state_dict()[k]) for k in kept)
    assert math.isfinite(metrics["val_clearance_mae_m"])
    assert [r["epoch"] for r in csv.DictReader(log_path(out).open())] == ["1", "probe", "probe"]
    config = read_metadata(out)["train_config"]
    assert config["probe_dim"] == 24 and config["epochs"] == 1  # probe settings only: the training stays


def test_ema_target_trails_the_online_encoder(data_dir, tmp_path) -> None:
    out = tmp_path / "ema" / "wm.pt"
    train(TINY | {"ema": True, "epochs": 1}, data_dir, out)
    state = torch.load(state_path(out), weights_only=True)
    key = "_conv.0.weight"
    assert not torch.equal(state["target"][key], state["model"][key])


def test_the_pixel_baseline_trains_its_decoder(data_dir, tmp_path) -> None:
    out = tmp_path / "pixel" / "wm.pt"
    train(TINY | {"kind": "pixel", "epochs": 2}, data_dir, out)
    rows = list(csv.DictReader(log_path(out).open()))
    assert float(rows[1]["train_reconstruction"]) < float(rows[0]["train_reconstruction"])
    model = load_world_model(out)
    assert model.cfg.kind == "pixel" and model.decode(torch.zeros(1, 16)).shape == (1, 3, 32, 32)


def test_without_the_regulariser_the_features_collapse(data_dir, tmp_path) -> None:
    """The ablation the VICReg terms exist for: with them the image features keep their spread, without them
    the prediction loss alone drives them towards a constant."""
    # VICReg's own weights (variance 25, covariance 1) and no clipping, so 40 tiny steps show the effect.
    config = TINY | {"epochs": 2, "steps_per_epoch": 20, "probe_steps": 5, "grad_clip": 100.0,
                     "weights": TINY["weights"] | {"variance": 25.0, "covariance": 1.0, "odometry": 1.0}}
    with_reg = train(config, data_dir, tmp_path / "reg" / "wm.pt")
    without = train(config | {"weights": config["weights"] | {"variance": 0.0, "covariance": 0.0}}, data_dir,
                    tmp_path / "noreg" / "wm.pt")
    assert without["val_feature_std"] < 0.3 * with_reg["val_feature_std"]


def test_horizon_must_hold_whole_level2_jumps(data_dir, tmp_path) -> None:
    with pytest.raises(ValueError, match="multiple of level2_k"):
        train(TINY | {"level2_k": 3, "epochs": 1}, data_dir, tmp_path / "bad" / "wm.pt")


def test_torchrun_ddp_two_ranks_train_one_model(data_dir, tmp_path) -> None:
    """The real trainer under torchrun (gloo, 2 CPU ranks): rank 0 alone writes, and the run completes."""
    import subprocess
    import sys

    import yaml

    config = tmp_path / "train.yaml"
    config.write_text(yaml.safe_dump({"train": TINY | {"epochs": 1, "steps_per_epoch": 4, "threads": 2}}))
    out = tmp_path / "ddp" / "wm.pt"
    result = subprocess.run([sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node=2",
                             "-m", "ojepa_ros.train.trainer", "--config", str(config), "--data", str(data_dir),
                             "--out", str(out)], capture_output=True, text=True, timeout=240)
    assert result.returncode == 0, result.stderr[-2000:]
    assert result.stdout.count("train: wrote") == 1  # only rank 0 reports and writes
    rows = list(csv.DictReader(log_path(out).open()))
    assert [r["epoch"] for r in rows] == ["1", "probe"]
    assert load_world_model(out).cfg.z_dim == 2


def test_cli_overrides_are_checked(capsys, tiny_model_path) -> None:
    for argv, message in ((["--set", "bogus=1"], "unknown setting 'bogus'"),
                          (["--weight", "varience=0"], "unknown term 'varience'"),
                          (["--weight", "variance=lots"], "'lots' is not a number"),
                          (["--probes-only", "--out", "/nonexistent/wm.pt"], "/nonexistent/wm.pt is missing"),
                          (["--probes-only", "--out", str(tiny_model_path)], "records no training settings")):
        with pytest.raises(SystemExit):
            trainer.main(argv)
        assert message in capsys.readouterr().err
