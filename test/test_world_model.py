"""World model shapes and semantics, VICReg terms, and the checkpoint format with its error messages."""

from __future__ import annotations

import math
import os
import time

import numpy as np
import pytest
import torch

from ojepa_ros.core.losses import vicreg_covariance, vicreg_variance, world_model_losses
from ojepa_ros.core.model_io import (VERSION, ModelFileError, load_world_model, read_metadata, save_world_model,
                                     shared_world_model)
from ojepa_ros.core.odometry import proprio_from_odom
from ojepa_ros.core.world_model import WorldModel, WorldModelConfig

SMALL = WorldModelConfig(embed_dim=16, hidden_dim=32, probe_dim=16, channels=(8, 8, 8, 8),
                         proprio_mean=[4.0, 4.0, 0.0, 0.0, 0.1, 0.0], proprio_std=[2.0, 2.0, 0.7, 0.7, 0.2, 0.6],
                         action_scale=[0.5, 1.5])


@pytest.fixture
def model() -> WorldModel:
    torch.manual_seed(0)
    return WorldModel(SMALL)


def batch(n: int = 5) -> tuple[torch.Tensor, torch.Tensor]:
    images = torch.randint(0, 256, (n, 64, 64, 3), dtype=torch.uint8)
    odom = torch.rand(n, 5) * torch.tensor([8.0, 8.0, 6.28, 0.5, 1.5]) - torch.tensor([0.0, 0.0, 3.14, 0.0, 0.75])
    return images, torch.from_numpy(proprio_from_odom(odom.numpy()))


def test_proprio_from_odom_encodes_yaw_as_cos_sin() -> None:
    p = proprio_from_odom(np.array([[1.0, 2.0, math.pi / 2, 0.3, -0.4]]))
    assert p.dtype == np.float32 and np.allclose(p, [[1.0, 2.0, 0.0, 1.0, 0.3, -0.4]], atol=1e-6)


def test_shapes(model: WorldModel) -> None:
    images, proprio = batch(5)
    s = model.encode(images, proprio)
    assert s.shape == (5, 16)
    assert model.next(s, torch.zeros(5, 2)).shape == (5, 16)
    states = model.rollout(s, torch.zeros(5, 7, 2))
    assert states.shape == (5, 7, 16)
    assert model.pose(states).shape == (5, 7, 3)
    clearance = model.clearance(states)
    assert clearance.shape == (5, 7) and bool((clearance >= 0).all())
    assert bool((model.pose(states)[..., 2].abs() <= math.pi).all())


def test_rollout_equals_repeated_next(model: WorldModel) -> None:
    s = model.encode(*batch(4))
    actions = torch.randn(4, 6, 2)
    expected, states = s, []
    for t in range(6):
        expected = model.next(expected, actions[:, t])
        states.append(expected)
    assert torch.allclose(model.rollout(s, actions), torch.stack(states, 1), atol=1e-6)


def test_a_bfloat16_rollout_copy_keeps_float32_states_and_tracks_the_model(model: WorldModel) -> None:
    s = model.encode(*batch(4)).detach()
    actions = torch.randn(4, 16, 2) * 0.3
    fast = model.with_rollout_dtype(torch.bfloat16)
    assert fast._dynamics[0].weight.dtype == fast.clearance_head[0].weight.dtype == torch.bfloat16
    assert model._dynamics[0].weight.dtype == torch.float32  # the original is untouched
    with torch.no_grad():
        exact, approx = model.rollout(s, actions), fast.rollout(s, actions)
        assert approx.dtype == fast.clearance(approx).dtype == torch.float32
        motion = (exact - s[:, None]).abs().max()
        assert 0 < (approx - exact).abs().max() < 0.05 * motion
        assert torch.equal(fast.pose(approx), model.pose(approx))  # read-out and normalisation stay float32


def test_obstacle_read_outs_never_see_the_position(model: WorldModel) -> None:
    """Clearance and forward ranges come from the image features and velocities: moving the robot in the state
    alone (x, y) changes neither, so what is in the way cannot be looked up by position."""
    s = model.encode(*batch(3)).detach()
    moved = s.clone()
    moved[:, :2] += torch.tensor([3.0, -2.0])
    assert torch.equal(model.clearance(moved), model.clearance(s))
    assert torch.equal(model.ranges(moved), model.ranges(s))
    assert model.ranges(s).shape == (3, SMALL.range_sectors)
    assert bool(((model.ranges(s) >= 0) & (model.ranges(s) <= SMALL.range_cap)).all())
    features = s.clone()
    features[:, SMALL.proprio_dim:] += 1.0
    assert not torch.allclose(model.ranges(features), model.ranges(s))


def test_actions_change_the_prediction(model: WorldModel) -> None:
    s = model.encode(*batch(3))
    assert not torch.allclose(model.next(s, torch.zeros(3, 2)), model.next(s, torch.full((3, 2), 0.5)))


def test_variance_term_detects_collapse() -> None:
    torch.manual_seed(0)
    spread = torch.randn(512, 32) * 2.0
    collapsed = torch.ones(512, 32) + 1e-3 * torch.randn(512, 32)
    assert vicreg_variance(spread) < 1e-3
    assert vicreg_variance(collapsed) > 0.9


def test_covariance_term_detects_correlated_dimensions() -> None:
    torch.manual_seed(0)
    independent = torch.randn(4096, 8)
    correlated = torch.randn(4096, 1).repeat(1, 8)
    assert vicreg_covariance(independent) < 0.05
    assert vicreg_covariance(correlated) > 5.0


WEIGHTS = {"prediction": 1.0, "odometry": 10.0, "view": 1.0, "variance": 2.0, "covariance": 0.5, "kl": 0.1, "level2": 1.0,
           "reconstruction": 1.0, "clearance": 1.0, "ranges": 1.0}


def _windows(n: int = 6, horizon: int = 16) -> dict[str, torch.Tensor]:
    images = torch.randint(0, 256, (n, horizon + 1, 64, 64, 3), dtype=torch.uint8)
    proprio = torch.randn(n, horizon + 1, 6)
    return {"images": images, "proprio": proprio, "actions": torch.rand(n, horizon, 2) - 0.5,
            "clearance": torch.rand(n, horizon + 1), "ranges": 3.0 * torch.rand(n, horizon + 1, SMALL.range_sectors)}


def test_world_model_losses_are_the_weighted_sum_of_named_terms(model: WorldModel) -> None:
    torch.manual_seed(0)
    terms = world_model_losses(model, model, _windows(), WEIGHTS, torch.Generator().manual_seed(0))
    assert set(terms) == {"prediction", "odometry", "view", "kl", "variance", "covariance", "level2", "clearance",
                          "ranges", "total"}
    assert all(bool(torch.isfinite(v)) for v in terms.values())
    weighted = sum(WEIGHTS[k] * v for k, v in terms.items() if k != "total")
    assert torch.isclose(terms["total"], weighted)
    terms["total"].backward()  # every module that training should move gets a gradient
    for part in (model._conv, model._image_head, model._dynamics, model._posterior, model._abstract, model._dynamics2,
                 model._expander, model.range_head):
        assert all(p.grad is not None and p.grad.abs().sum() > 0 for p in part.parameters())


def test_unknown_labels_are_skipped_not_propagated(model: WorldModel) -> None:
    batch = _windows()
    batch["clearance"][:] = float("nan")
    batch["ranges"][:] = float("nan")  # no scan recorded (a bumper-only log)
    terms = world_model_losses(model, model, batch, WEIGHTS)
    assert terms["clearance"] == 0.0 and terms["ranges"] == 0.0 and bool(torch.isfinite(terms["total"]))


def test_the_scanner_teaches_the_encoder(model: WorldModel) -> None:
    """The ranges term is not a detached probe: its gradient reaches the convolutions (what is in the way must be
    in the image features), while the clearance probe's does not."""
    batch = _windows(n=3, horizon=SMALL.level2_k)
    only = {k: 0.0 for k in WEIGHTS}
    for term, reaches in (("ranges", True), ("clearance", False)):
        model.zero_grad()
        world_model_losses(model, model, batch, only | {term: 1.0})["total"].backward()
        grad = sum(p.grad.abs().sum() for p in model._conv.parameters() if p.grad is not None)
        assert bool(grad > 0) == reaches


def test_pixel_baseline_adds_a_reconstruction_term() -> None:
    torch.manual_seed(0)
    pixel = WorldModel(WorldModelConfig(**{**SMALL.__dict__, "kind": "pixel"}))
    terms = world_model_losses(pixel, pixel, _windows(), WEIGHTS)
    assert 0.0 < terms["reconstruction"] < 1.0  # sigmoid images vs uint8/255 targets
    assert pixel.decode(pixel.encode(*batch(2))).shape == (2, 3, 64, 64)
    with pytest.raises(RuntimeError, match="only on the pixel baseline"):
        WorldModel(SMALL).decode(torch.zeros(1, 16))


def test_latent_z_changes_the_prediction_and_its_kl_is_zero_at_the_prior(model: WorldModel) -> None:
    s = model.encode(*batch(4))
    a = torch.zeros(4, 2)
    z = model.sample_z(4, torch.Generator().manual_seed(1))
    assert z.shape == (4, SMALL.z_dim)
    assert torch.equal(model.next(s, a), model.next(s, a, torch.zeros(4, SMALL.z_dim)))  # None = prior mean
    assert not torch.allclose(model.next(s, a), model.next(s, a, z))
    states, kl = model.rollout_posterior(s, torch.zeros(4, 3, 2), torch.randn(4, 3, 16))
    assert states.shape == (4, 3, 16) and kl > 0


def test_level2_jumps_k_steps_and_keeps_the_odometry_part(model: WorldModel) -> None:
    s = model.encode(*batch(3))
    h = model.abstract(s)
    assert h.shape == (3, SMALL.level2_dim) and torch.equal(h[:, :6], s[:, :6])
    macros = torch.rand(3, 2, SMALL.level2_k, 2)
    h2 = model.rollout2(h, macros)
    assert h2.shape == (3, 2, SMALL.level2_dim)
    assert torch.allclose(h2[:, 1], model.next2(model.next2(h, macros[:, 0]), macros[:, 1]))
    assert model.pose(h).shape == model.probe_pose(s).shape == (3, 3)


def test_predictors_are_blind_to_what_the_image_must_supply(model: WorldModel) -> None:
    """Level 1 never sees x, y; level 2 never sees x, y, yaw: moving the robot in the state alone changes nothing
    in what they predict for the rest of the state."""
    s = model.encode(*batch(2))
    moved = s.clone()
    moved[:, :2] += 1.0
    a = torch.rand(2, 2)
    assert torch.allclose((model.next(moved, a) - moved)[:, 2:], (model.next(s, a) - s)[:, 2:], atol=1e-6)
    turned = s.clone()
    turned[:, 2:4] = -turned[:, 2:4]
    assert not torch.allclose((model.next(turned, a) - turned)[:, :2], (model.next(s, a) - s)[:, :2], atol=1e-6)
    h, h_turned = model.abstract(s), model.abstract(moved)
    h_turned[:, 2:4] = -h_turned[:, 2:4]
    macro = torch.rand(2, SMALL.level2_k, 2)
    assert torch.allclose(model.next2(h_turned, macro) - h_turned, model.next2(h, macro) - h, atol=1e-6)


def test_pose_of_an_encoded_state_is_its_odometry(model: WorldModel) -> None:
    images, _ = batch(4)
    odom = torch.tensor([[1.0, 2.0, 0.5, 0.2, 0.0], [7.5, 0.5, -3.0, 0.0, 1.0],
                         [4.0, 6.0, 3.1, -0.1, 0.3], [0.3, 7.7, -1.2, 0.4, -1.4]])
    pose = model.pose(model.encode(images, torch.from_numpy(proprio_from_odom(odom.numpy()))))
    assert torch.allclose(pose, odom[:, :3], atol=1e-5)


def test_round_trip(model: WorldModel, tmp_path) -> None:
    path = tmp_path / "wm.pt"
    save_world_model(model, path, {"note": "round trip", "metrics": {"val_pose_rmse_m": 0.1}})
    loaded = load_world_model(path)
    assert loaded.cfg == model.cfg
    assert not loaded.training and not any(p.requires_grad for p in loaded.parameters())
    images, proprio = batch(3)
    model.eval()
    with torch.no_grad():
        assert torch.equal(loaded.encode(images, proprio), model.encode(images, proprio))
        assert torch.equal(loaded.action_scale, model.action_scale)
    assert read_metadata(path)["metrics"]["val_pose_rmse_m"] == 0.1
    with pytest.raises(TypeError, match=r"metadata\['data'\] is a PosixPath"):
        save_world_model(model, tmp_path / "bad.pt", {"data": tmp_path})


def _saved(model: WorldModel, tmp_path, **changes) -> str:
    """A checkpoint written by hand with some of its fields replaced."""
    from dataclasses import asdict

    checkpoint = {"format": "ojepa-world-model", "version": VERSION, "config": asdict(model.cfg),
                  "state_dict": model.state_dict(), "metadata": {}} | changes
    path = tmp_path / "edited.pt"
    torch.save(checkpoint, path)
    return str(path)


def test_error_missing_file(tmp_path) -> None:
    path = tmp_path / "nowhere.pt"
    with pytest.raises(ModelFileError, match=f"{path} does not exist"):
        load_world_model(path)
    with pytest.raises(ModelFileError, match="does not exist"):
        shared_world_model(path)


def test_error_not_torch_and_truncated(model: WorldModel, tmp_path) -> None:
    text = tmp_path / "notes.pt"
    text.write_text("this is not a model")
    with pytest.raises(ModelFileError, match=f"{text} is not a readable torch checkpoint"):
        load_world_model(text)
    good = tmp_path / "good.pt"
    save_world_model(model, good, {})
    cut = tmp_path / "cut.pt"
    cut.write_bytes(good.read_bytes()[: good.stat().st_size // 2])
    with pytest.raises(ModelFileError, match=f"{cut} is not a readable torch checkpoint"):
        load_world_model(cut)
    pickled_code = tmp_path / "code.pt"
    torch.save({"format": "ojepa-world-model", "hook": print}, pickled_code)
    with pytest.raises(ModelFileError, match=f"{pickled_code} is not a readable .*Unsupported global"):
        load_world_model(pickled_code)


def test_error_wrong_format_version_and_weights(model: WorldModel, tmp_path) -> None:
    with pytest.raises(ModelFileError, match="has format 'something-else', expected 'ojepa-world-model'"):
        load_world_model(_saved(model, tmp_path, format="something-else"))
    with pytest.raises(ModelFileError, match=f"is version 7, this ojepa_ros reads version {VERSION}"):
        load_world_model(_saved(model, tmp_path, version=7))
    with pytest.raises(ModelFileError, match=f"is version 1, this ojepa_ros reads version {VERSION}"):
        load_world_model(_saved(model, tmp_path, version=1))  # a file from before the latent and level 2
    other = WorldModel(WorldModelConfig(embed_dim=24, hidden_dim=32, probe_dim=16, channels=(8, 8, 8, 8)))
    with pytest.raises(ModelFileError, match="weights that do not match its config"):
        load_world_model(_saved(model, tmp_path, state_dict=other.state_dict()))
    with pytest.raises(ModelFileError, match="config this ojepa_ros does not know"):
        load_world_model(_saved(model, tmp_path, config={"embed_dim": 16, "colour": "red"}))
    # A plain tensor file is a torch file, but not ours.
    tensor_file = tmp_path / "tensor.pt"
    torch.save(torch.zeros(3), tensor_file)
    with pytest.raises(ModelFileError, match=f"{tensor_file} has format 'Tensor'"):
        load_world_model(tensor_file)


def test_shared_world_model_is_one_instance_per_file_version(model: WorldModel, tmp_path) -> None:
    path = tmp_path / "shared.pt"
    save_world_model(model, path, {})
    first = shared_world_model(path)
    assert shared_world_model(str(path)) is first
    assert shared_world_model(tmp_path / "." / "shared.pt") is first
    save_world_model(model, path, {"retrained": True})
    os.utime(path, ns=(time.time_ns(), path.stat().st_mtime_ns + 1_000_000))
    assert shared_world_model(path) is not first

