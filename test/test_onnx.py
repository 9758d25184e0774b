"""ONNX export and the onnxruntime backend: parity with torch per graph, providers, damaged folders, no torch, nodes."""

from __future__ import annotations

import hashlib
import json
import shutil
import subprocess
import sys
import textwrap
from pathlib import Path
from typing import Callable

import numpy as np
import onnxruntime as ort
import pytest
import torch
from geometry_msgs.msg import Twist
from ojepa_interfaces.msg import State
from std_msgs.msg import Float32, String
from test_nodes import Feeder, overrides, pump

from ojepa_ros.core.model_io import load_world_model, save_world_model
from ojepa_ros.core.mpc import LOW_LEVEL_ONLY, MpcPolicy
from ojepa_ros.core.onnx_export import TOLERANCE, check_onnx, export_onnx, main as export_main
from ojepa_ros.core.onnx_runtime import (CPU, GRAPHS, MANIFEST, TENSORRT, OnnxModelError, OrtWorldModel, TensorrtOptions,
                                         onnx_dir_for, provider_chain)
from ojepa_ros.core.ort_rollouts import OrtRolloutModel
from ojepa_ros.core.world_model import WorldModel, WorldModelConfig
from ojepa_ros.nodes.actor_node import ActorNode
from ojepa_ros.nodes.perception_node import PerceptionNode
from ojepa_ros.nodes.world_model_node import WorldModelNode
from ojepa_ros.train.evaluate import evaluate


@pytest.fixture(scope="session")
def onnx_dir(tiny_model_path: Path) -> Path:
    """The tiny model exported by `ojepa export` to its default place, next to the checkpoint."""
    assert export_main(["--model", str(tiny_model_path)]) == 0
    return onnx_dir_for(tiny_model_path)


def _max_diff(got: np.ndarray, expected: torch.Tensor) -> float:
    assert got.shape == tuple(expected.shape)
    return float(np.abs(got - expected.numpy()).max())


# -- export and parity ------------------------------------------------------------------------------

def test_export_writes_every_graph_matching_torch(onnx_dir, tiny_model_path):
    model = load_world_model(tiny_model_path)
    diffs = check_onnx(model, onnx_dir, seed=1)
    assert set(diffs) == set(GRAPHS)
    assert all(len(row) == 2 and max(row) <= TOLERANCE for row in diffs.values()), diffs
    manifest = json.loads((onnx_dir / MANIFEST).read_text())
    assert manifest["source"]["sha256"] == hashlib.sha256(tiny_model_path.read_bytes()).hexdigest()
    assert manifest["config"]["embed_dim"] == 16 and manifest["opset"] >= 17
    assert [i["name"] for i in manifest["graphs"]["predictor"]["inputs"]] == ["state", "action", "z"]
    torch.manual_seed(1)
    other = WorldModel(model.cfg).eval()  # same shapes, other weights: the check must notice
    assert max(max(row) for row in check_onnx(other, onnx_dir).values()) > TOLERANCE


def test_runtime_methods_mirror_the_torch_model(onnx_dir, tiny_model_path):
    model, ort_model = load_world_model(tiny_model_path), OrtWorldModel(onnx_dir, "cpu")
    assert (ort_model.cfg.embed_dim, ort_model.cfg.z_dim, ort_model.cfg.dt) == (16, 4, model.cfg.dt)
    rng = np.random.default_rng(0)
    image = rng.integers(0, 256, (5, 64, 64, 3), dtype=np.uint8)
    proprio = rng.normal(size=(5, 6)).astype(np.float32)
    actions = rng.normal(size=(5, 7, 2)).astype(np.float32)
    z = rng.normal(size=(5, 7, 4)).astype(np.float32)
    macro = rng.normal(size=(5, 8, 2)).astype(np.float32)
    with torch.no_grad():
        s = model.encode(torch.from_numpy(image), torch.from_numpy(proprio))
        states = model.rollout(s, torch.from_numpy(actions))
        h = model.abstract(states)
        expected = {"encode": s, "rollout": states, "rollout_z": model.rollout(s, torch.from_numpy(actions),
                                                                                torch.from_numpy(z)),
                    "abstract": h, "next2": model.next2(h[:, 0], torch.from_numpy(macro)),
                    "pose": model.pose(states), "pose_h": model.pose(h), "probe_pose": model.probe_pose(states),
                    "clearance": model.clearance(states)}
    s_np, states_np, h_np = s.numpy(), states.numpy(), h.numpy()
    got = {"encode": ort_model.encode(image, proprio), "rollout": ort_model.rollout(s_np, actions),
           "rollout_z": ort_model.rollout(s_np, actions, z), "abstract": ort_model.abstract(states_np),
           "next2": ort_model.next2(h_np[:, 0], macro), "pose": ort_model.pose(states_np),
           "pose_h": ort_model.pose(h_np), "probe_pose": ort_model.probe_pose(states_np),
           "clearance": ort_model.clearance(states_np)}
    diffs = {name: _max_diff(got[name], expected[name]) for name in expected}
    assert max(diffs.values()) <= TOLERANCE, diffs
    assert not np.allclose(got["rollout"], got["rollout_z"])  # z reaches the predictor graph
    with pytest.raises(ValueError, match="uint8"):
        ort_model.encode(image.astype(np.float32), proprio)
    with pytest.raises(RuntimeError, match="pixel"):
        ort_model.decode(s_np)


def test_pixel_model_without_z_exports_its_decoder(tmp_path):
    torch.manual_seed(0)
    model = WorldModel(WorldModelConfig(embed_dim=16, hidden_dim=32, channels=(8, 8, 8, 8), kind="pixel",
                                        z_dim=0)).eval().requires_grad_(False)
    source = tmp_path / "pixel.pt"
    save_world_model(model, source, {})
    manifest = export_onnx(model, source, tmp_path / "pixel.onnx")
    assert [i["name"] for i in manifest["graphs"]["predictor"]["inputs"]] == ["state", "action"]
    diffs = check_onnx(model, tmp_path / "pixel.onnx")
    assert set(diffs) == set(GRAPHS) | {"decoder"} and max(max(r) for r in diffs.values()) <= TOLERANCE
    ort_model = OrtWorldModel(tmp_path / "pixel.onnx", "cpu")
    s, a = torch.randn(3, 16), torch.randn(3, 2)
    assert _max_diff(ort_model.decode(s.numpy()), model.decode(s)) <= TOLERANCE
    assert _max_diff(ort_model.next(s.numpy(), a.numpy()), model.next(s, a)) <= TOLERANCE


# -- providers ------------------------------------------------------------------------------------

def test_auto_providers_fall_back_to_cpu_and_cpu_can_be_forced(onnx_dir):
    auto, cpu = OrtWorldModel(onnx_dir), OrtWorldModel(onnx_dir, "cpu")
    assert auto.providers[-1] == CPU and set(auto.providers) <= set(ort.get_available_providers())
    assert cpu.providers == [CPU]
    image, proprio = np.full((1, 64, 64, 3), 7, np.uint8), np.ones((1, 6), np.float32)
    assert np.allclose(auto.encode(image, proprio), cpu.encode(image, proprio), atol=TOLERANCE)


def test_forced_providers_load_as_given_or_fail_naming_the_provider(onnx_dir):
    with pytest.raises(OnnxModelError, match="NoSuchExecutionProvider.*available"):
        OrtWorldModel(onnx_dir, "NoSuchExecutionProvider,CPUExecutionProvider")
    try:  # loads where a GPU and its libraries are present; everywhere else a clear refusal, never a silent CPU
        model = OrtWorldModel(onnx_dir, "CUDAExecutionProvider,CPUExecutionProvider")
    except OnnxModelError as err:
        assert "CUDAExecutionProvider" in str(err)
    else:
        assert model.providers[0] == "CUDAExecutionProvider"


def test_tensorrt_options_are_built_with_an_absolute_cache_and_cpu_still_runs(onnx_dir, tmp_path, monkeypatch):
    monkeypatch.setenv("ROS_HOME", str(tmp_path / "ros_home"))
    assert TensorrtOptions().provider_options() == {
        "trt_engine_cache_enable": "True", "trt_fp16_enable": "False",
        "trt_engine_cache_path": str(tmp_path / "ros_home" / "ojepa" / "trt_cache")}
    monkeypatch.chdir(tmp_path)
    relative = TensorrtOptions.from_params({"trt_engine_cache_path": "engines", "trt_fp16_enable": True})
    assert relative.provider_options()["trt_engine_cache_path"] == str(tmp_path / "engines")
    assert relative.provider_options()["trt_fp16_enable"] == "True"
    assert "trt_engine_cache_path" not in TensorrtOptions(engine_cache_enable=False).provider_options()
    assert provider_chain([TENSORRT, "CUDAExecutionProvider", CPU], relative) == [
        (TENSORRT, relative.provider_options()), "CUDAExecutionProvider", CPU]
    cpu = OrtWorldModel(onnx_dir, "cpu", tensorrt=relative)  # the options change nothing where TensorRT is not tried
    assert cpu.providers == [CPU] and not cpu.tensorrt_used and not (tmp_path / "engines").exists()
    image, proprio = np.full((1, 64, 64, 3), 7, np.uint8), np.ones((1, 6), np.float32)
    assert np.allclose(cpu.encode(image, proprio), OrtWorldModel(onnx_dir, "cpu").encode(image, proprio))


def test_auto_hands_tensorrt_its_options_wherever_it_is_tried(onnx_dir, tmp_path, monkeypatch):
    """Where onnxruntime lists TensorRT (onnxruntime-gpu does, even without a GPU), "auto" tries it first, with the
    options; where it does not load the model runs on what did. What each session was asked for is recorded."""
    if TENSORRT not in ort.get_available_providers():
        pytest.skip("this onnxruntime build has no TensorRT provider to try")
    asked: list[list] = []
    real = ort.InferenceSession

    def recording(path, options=None, providers=None, **kwargs):
        asked.append(list(providers))
        return real(path, options, providers=providers, **kwargs)

    monkeypatch.setattr(ort, "InferenceSession", recording)
    options = TensorrtOptions(engine_cache_path=str(tmp_path / "cache"), fp16_enable=True)
    model = OrtWorldModel(onnx_dir, "auto", tensorrt=options)
    assert asked[0][0] == (TENSORRT, options.provider_options())
    assert (tmp_path / "cache").is_dir()  # made before TensorRT is asked to write there
    assert model.tensorrt_used == (model.providers[0] == TENSORRT) and model.providers[-1] == CPU


# -- damaged folders ------------------------------------------------------------------------------

def _edit_manifest(change: Callable[[dict], None]) -> Callable[[Path], None]:
    def edit(folder: Path) -> None:
        manifest = json.loads((folder / MANIFEST).read_text())
        change(manifest)
        (folder / MANIFEST).write_text(json.dumps(manifest))
    return edit


DAMAGE = {
    "missing folder": (lambda f: shutil.rmtree(f), ["m.onnx", "does not exist"]),
    "missing manifest": (lambda f: (f / MANIFEST).unlink(), ["m.onnx", "no manifest.json"]),
    "manifest not json": (lambda f: (f / MANIFEST).write_text("{"), ["manifest.json", "not readable JSON"]),
    "missing graph": (lambda f: (f / "predictor.onnx").unlink(), ["predictor.onnx", "does not exist"]),
    "corrupt graph": (lambda f: (f / "encoder.onnx").write_bytes(b"not onnx at all"), ["encoder.onnx", "corrupt"]),
    "truncated graph": (lambda f: (f / "clearance.onnx").write_bytes((f / "clearance.onnx").read_bytes()[:500]),
                        ["clearance.onnx", "cannot be loaded"]),
    "other format": (_edit_manifest(lambda m: m.update(format="something-else")), ["manifest.json", "something-else"]),
    "other version": (_edit_manifest(lambda m: m.update(version=99)), ["manifest.json", "version 99"]),
    "shape mismatch": (_edit_manifest(lambda m: m["graphs"]["encoder"]["inputs"][0].update(shape=["batch", 32, 32, 3])),
                       ["encoder.onnx", "64, 64, 3", "expects", "32, 32, 3"]),
    "swapped graph": (_edit_manifest(lambda m: m["graphs"]["predictor"].update(file="abstract.onnx")),
                      ["abstract.onnx", "action"]),
}


@pytest.mark.parametrize("damage", DAMAGE)
def test_damaged_folders_fail_naming_the_file(onnx_dir, tmp_path, damage):
    folder = Path(shutil.copytree(onnx_dir, tmp_path / "m.onnx"))
    OrtWorldModel(folder, "cpu")  # intact before the damage
    change, words = DAMAGE[damage]
    change(folder)
    with pytest.raises(OnnxModelError) as err:
        OrtWorldModel(folder, "cpu")
    assert all(word in str(err.value) for word in words), str(err.value)


# -- no torch -------------------------------------------------------------------------------------

def test_onnxruntime_backend_and_its_nodes_run_without_torch(onnx_dir):
    code = textwrap.dedent(f"""
        import sys, time
        import numpy as np
        import rclpy
        from nav_msgs.msg import Odometry
        from ojepa_interfaces.msg import State
        from rclpy.executors import SingleThreadedExecutor
        from rclpy.parameter import Parameter
        from sensor_msgs.msg import Image
        from std_msgs.msg import Float32
        from ojepa_ros.core.onnx_runtime import OrtWorldModel
        from ojepa_ros.nodes.convert import rgb_to_image
        from ojepa_ros.nodes.perception_node import PerceptionNode
        from ojepa_ros.nodes.world_model_node import WorldModelNode

        s = OrtWorldModel({str(onnx_dir)!r}).encode(np.zeros((1, 64, 64, 3), np.uint8), np.zeros((1, 6), np.float32))
        assert s.shape == (1, 16), s.shape
        rclpy.init()
        params = [Parameter("backend", value="onnxruntime"), Parameter("onnx_dir", value={str(onnx_dir)!r})]
        robot = rclpy.create_node("robot")
        odom_pub = robot.create_publisher(Odometry, "/odom", 10)
        image_pub = robot.create_publisher(Image, "/camera/image_raw", 10)
        states, surprises = [], []
        robot.create_subscription(State, "/ojepa/state", states.append, 10)
        robot.create_subscription(Float32, "/ojepa/surprise", surprises.append, 10)
        executor = SingleThreadedExecutor()
        for node in (PerceptionNode(parameter_overrides=params), WorldModelNode(parameter_overrides=params), robot):
            assert node is robot or node.bring_up()  # configure (the model loads) and activate
            executor.add_node(node)
        deadline = time.monotonic() + 20
        while not surprises and time.monotonic() < deadline:
            stamp = robot.get_clock().now().to_msg()
            odom_pub.publish(Odometry())
            image_pub.publish(rgb_to_image(np.zeros((64, 64, 3), np.uint8), stamp, "camera_link"))
            end = time.monotonic() + 0.05
            while time.monotonic() < end:
                executor.spin_once(timeout_sec=0.01)
        assert states and len(states[0].data) == 16 and surprises, (len(states), len(surprises))
        loaded = sorted(m for m in sys.modules if m == "torch" or m.startswith("torch."))
        assert not loaded, loaded[:5]
        rclpy.shutdown()
        """)
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr[-3000:]


# -- nodes ------------------------------------------------------------------------------------------

def test_perception_on_onnxruntime_publishes_the_torch_state(graph, tiny_model_path, onnx_dir):
    from rcl_interfaces.msg import Log

    logs = graph.collect(Log, "/rosout", 100)
    graph.add(PerceptionNode(parameter_overrides=overrides(model_path=str(tiny_model_path))))
    onnx_node = graph.add(PerceptionNode(
        parameter_overrides=overrides(model_path=str(tiny_model_path), backend="onnxruntime"),  # default onnx_dir
        cli_args=["--ros-args", "-r", "__node:=perception_onnx", "-r", "/ojepa/state:=/ojepa/state_onnx"]))
    assert onnx_node.model.providers[-1] == CPU
    graph.wait_for(lambda: any("TensorRT options" in m.msg for m in logs if m.name == "perception_onnx"), 3.0,
                   "the line saying what became of the TensorRT options")
    torch_states = graph.collect(State, "/ojepa/state")
    onnx_states = graph.collect(State, "/ojepa/state_onnx")
    feed = Feeder(graph)

    def send() -> None:
        feed.send_odom(x=2.5, y=1.5, yaw=0.7, v=0.2, w=-0.3)
        feed.send_image()

    pump(graph, send, lambda: torch_states and onnx_states, what="states from both backends")
    a, b = np.asarray(torch_states[-1].data), np.asarray(onnx_states[-1].data)
    assert a.shape == b.shape == (16,) and np.abs(a - b).max() <= TOLERANCE
    assert np.abs(a[6:]).max() > 0  # image features, not only the odometry part, are compared


def test_world_model_node_refuses_bad_backend_and_survives_a_missing_folder(graph, tmp_path, onnx_dir):
    node = graph.add(WorldModelNode(parameter_overrides=overrides(backend="onnxruntime",
                                                                  onnx_dir=str(tmp_path / "absent.onnx"))))
    assert node.model is None
    refused = node.set_parameters(overrides(backend="tensorrt"))[0]
    assert not refused.successful and "backend" in refused.reason and "onnxruntime" in refused.reason
    assert node.get_parameter("backend").value == "onnxruntime"
    surprise = graph.collect(Float32, "/ojepa/surprise")
    feed = Feeder(graph)
    for _ in range(5):
        feed.state.publish(State(data=[0.1] * 16))
    assert node.set_parameters(overrides(onnx_dir=str(onnx_dir)))[0].successful
    assert node.model is None and not node.configured  # unconfigured: the next configure reads the setting
    assert node.bring_up()  # what the lifecycle manager's next retry does
    assert node.model is not None and surprise == []
    pump(graph, lambda: feed.state.publish(State(data=list(np.random.rand(16)))),
         lambda: len(surprise) >= 2, what="surprise from the onnxruntime predictor")
    assert all(np.isfinite(s.data) and s.data >= 0 for s in surprise)


# -- planning on onnxruntime ------------------------------------------------------------------------

def test_policy_on_onnxruntime_plans_as_it_does_on_torch(onnx_dir, tiny_model_path):
    model = load_world_model(tiny_model_path)
    settings = LOW_LEVEL_ONLY | {"num_samples": 64, "horizon": 8, "latent_draws": 2}
    on_torch = MpcPolicy.from_config(model, settings, seed=3)
    on_ort = MpcPolicy.from_config(model, settings, seed=3, onnx=OrtWorldModel(onnx_dir, "cpu", threads=1))
    assert isinstance(on_ort.model, OrtRolloutModel)
    state = torch.from_numpy(np.random.default_rng(0).normal(size=16).astype(np.float32))
    steps = []
    for policy in (on_torch, on_ort):
        policy.set_goal((1.5, -0.5))
        steps.append([policy.act(state, (0.1, 0.0)) for _ in range(3)])  # warm-started: errors would compound
    for a, b in zip(*steps):
        assert a.status == b.status == "ok"
        assert np.abs(a.raw_command - b.raw_command).max() < 1e-3
        assert np.abs(a.plan_poses - b.plan_poses).max() < 1e-3
        assert abs(a.cost_terms["collision"] - b.cost_terms["collision"]) < 1e-3
    assert np.abs(steps[0][0].raw_command).max() > 0.01  # it planned a move, not two identical stops


def test_policy_on_onnxruntime_refuses_gradient_planners_and_another_models_graphs(onnx_dir, tiny_model_path):
    model, engine = load_world_model(tiny_model_path), OrtWorldModel(onnx_dir, "cpu", threads=1)
    for bad in ({"planner": "gradient"}, {"planner": "cem_gradient"}, {"precision": "bfloat16"}):
        with pytest.raises(ValueError, match="onnxruntime"):
            MpcPolicy.from_config(model, LOW_LEVEL_ONLY | bad, onnx=engine)
    other = WorldModel(WorldModelConfig(**{**model.cfg.__dict__, "proprio_std": [2 * x for x in model.cfg.proprio_std]})).eval()
    with pytest.raises(OnnxModelError, match=f"{onnx_dir}.*another model"):
        MpcPolicy.from_config(other, LOW_LEVEL_ONLY, onnx=engine)


def test_actor_on_onnxruntime_drives_and_holds_still_without_its_graphs(graph, tiny_model_path, onnx_dir, tmp_path):
    actor = graph.add(ActorNode(parameter_overrides=overrides(
        model_path=str(tiny_model_path), backend="onnxruntime", num_samples=64, horizon=8, goal_active=True,
        goal_x=3.0, goal_y=1.0)))
    assert isinstance(actor.policy.model, OrtRolloutModel)
    cmds, statuses = graph.collect(Twist, "/cmd_vel"), graph.collect(String, "/ojepa/actor_status")
    feed = Feeder(graph)

    def inputs() -> None:
        feed.send_odom()
        feed.state.publish(State(data=[0.1] * 16))

    pump(graph, inputs, lambda: any(abs(c.linear.x) + abs(c.angular.z) > 0 for c in cmds), timeout=10,
         what="a command planned on onnxruntime")
    assert all(abs(c.linear.x) <= 0.5 + 1e-9 and abs(c.angular.z) <= 1.5 + 1e-9 for c in cmds)
    assert actor.set_parameters(overrides(onnx_dir=str(tmp_path / "absent.onnx")))[0].successful
    assert actor.policy is None
    pump(graph, inputs, lambda: statuses and statuses[-1].data.startswith("fault"), what="the fault status")
    pump(graph, inputs, lambda: cmds and cmds[-1].linear.x == cmds[-1].angular.z == 0.0, what="a stop")
    actor.stop()


def test_ojepa_eval_plans_on_onnxruntime_when_asked(onnx_dir, tiny_model_path, tmp_path):
    settings = LOW_LEVEL_ONLY | {"num_samples": 16, "horizon": 4}
    report = evaluate(tiny_model_path, pairs=1, max_steps=3, params=settings | {"backend": "onnxruntime"})
    assert report["pairs"] == 1 and len(report["episodes"]) == 1
    with pytest.raises(OnnxModelError, match="absent"):  # the setting is used, not ignored
        evaluate(tiny_model_path, pairs=1, max_steps=3,
                 params=settings | {"backend": "onnxruntime", "onnx_dir": str(tmp_path / "absent")})
