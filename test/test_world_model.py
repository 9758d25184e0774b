"""World model shapes and semantics, VICReg terms, and the checkpoint format with its error messages."""

from __future__ import annotations

import math
import os
import time

import pytest
import torch

from ojepa_ros.core.losses import jepa_loss, vicreg_covariance, vicreg_variance
from ojepa_ros.core.model_io import (ModelFileError, load_world_model, read_metadata, save_world_model,
                                     shared_world_model)
from ojepa_ros.core.world_model import WorldModel, WorldModelConfig, proprio_from_odom

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
    return images, proprio_from_odom(odom)


def test_proprio_from_odom_encodes_yaw_as_cos_sin() -> None:
    p = proprio_from_odom(torch.tensor([[1.0, 2.0, math.pi / 2, 0.3, -0.4]]))
    assert torch.allclose(p, torch.tensor([[1.0, 2.0, 0.0, 1.0, 0.3, -0.4]]), atol=1e-6)


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


def test_jepa_loss_terms_and_weights() -> None:
    torch.manual_seed(0)
    online, target = torch.randn(64, 8), torch.randn(64, 4, 10)
    weights = {"prediction": 1.0, "odometry": 10.0, "variance": 2.0, "covariance": 0.5}
    terms = jepa_loss(online, target.clone(), target, weights, odometry_dims=2)
    assert set(terms) == {"prediction", "odometry", "variance", "covariance", "jepa"}
    assert terms["prediction"] == 0.0 and terms["odometry"] == 0.0
    assert torch.isclose(terms["jepa"], 2.0 * terms["variance"] + 0.5 * terms["covariance"])
    off = target.clone()
    off[..., :2] += 0.1  # odometry dims only
    terms = jepa_loss(online, off, target, weights, odometry_dims=2)
    assert terms["prediction"] == 0.0 and torch.isclose(terms["odometry"], torch.tensor(0.01))


def test_pose_of_an_encoded_state_is_its_odometry(model: WorldModel) -> None:
    images, _ = batch(4)
    odom = torch.tensor([[1.0, 2.0, 0.5, 0.2, 0.0], [7.5, 0.5, -3.0, 0.0, 1.0],
                         [4.0, 6.0, 3.1, -0.1, 0.3], [0.3, 7.7, -1.2, 0.4, -1.4]])
    pose = model.pose(model.encode(images, proprio_from_odom(odom)))
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

    checkpoint = {"format": "ojepa-world-model", "version": 1, "config": asdict(model.cfg),
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
    with pytest.raises(ModelFileError, match="is version 7, this ojepa_ros reads version 1"):
        load_world_model(_saved(model, tmp_path, version=7))
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

