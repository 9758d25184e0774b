"""Perception encodes only the newest frame: the one-slot mailbox on its own, then a real perception_node over
real DDS fed a burst of camera frames faster than its encoder runs."""

from __future__ import annotations

import threading
import time

import numpy as np
import pytest
import torch
from diagnostic_msgs.msg import DiagnosticArray
from nav_msgs.msg import Odometry
from ojepa_interfaces.msg import State
from rclpy.node import Node
from sensor_msgs.msg import Image

from ojepa_ros.core.latest import Latest
from ojepa_ros.core.odometry import proprio_from_odom
from ojepa_ros.nodes.convert import odometry_to_array, rgb_to_image, yaw_to_quaternion
from ojepa_ros.nodes.perception_node import PerceptionNode
from test_nodes import overrides

BURST = 40


def test_the_mailbox_hands_over_only_the_newest_and_counts_the_rest():
    box: Latest[int] = Latest()
    assert box.take(timeout=0.01) is None
    for i in range(5):
        box.put(i)
    assert box.take() == 4 and box.dropped == 4
    assert box.take(timeout=0.01) is None  # taken: the slot is empty
    got = []
    worker = threading.Thread(target=lambda: got.append(box.take(timeout=5.0)))
    worker.start()
    box.put(7)
    worker.join(2.0)
    assert got == [7] and box.dropped == 4
    box.put(8)
    box.close()  # a waiting item is dropped, and take() answers None from then on
    assert box.closed and box.take(timeout=0.01) is None and box.dropped == 5
    box.reopen()
    box.put(9)
    assert box.take(timeout=0.01) == 9


@pytest.fixture(scope="module")
def slow_model_path(tmp_path_factory):
    """A real, untrained world model whose encoder takes tens of ms (128 px, wide convolutions): a frame rate
    above what it can encode, as a bigger model or a slower computer would see."""
    from ojepa_ros.core.model_io import save_world_model
    from ojepa_ros.core.world_model import WorldModel, WorldModelConfig

    path = tmp_path_factory.mktemp("slow_model") / "slow.pt"
    save_world_model(WorldModel(WorldModelConfig(image_size=128, embed_dim=16, hidden_dim=32,
                                                 channels=(64, 128, 256, 256))), path, {"note": "untrained"})
    return path


def test_a_burst_of_frames_is_encoded_newest_only_and_the_dropped_ones_counted(graph, slow_model_path):
    from ojepa_ros.core.model_io import load_world_model

    node = graph.add(PerceptionNode(parameter_overrides=overrides(model_path=str(slow_model_path))))
    states = graph.collect(State, "/ojepa/state")
    reports = graph.collect(DiagnosticArray, "/diagnostics")
    feeder = graph.add(Node(f"burst_feeder_{time.monotonic_ns()}"))
    odom_pub = feeder.create_publisher(Odometry, "/odom", 10)
    image_pub = feeder.create_publisher(Image, "/camera/image_raw", BURST)
    odom = Odometry()
    odom.header.frame_id = "odom"
    odom.pose.pose.position.x = odom.pose.pose.position.y = 1.0
    odom.pose.pose.orientation = yaw_to_quaternion(0.3)
    odom.twist.twist.linear.x = 0.2

    def send_odom() -> None:
        odom.header.stamp = feeder.get_clock().now().to_msg()
        odom_pub.publish(odom)

    graph.wait_for(lambda: send_odom() or (node._odom is not None and image_pub.get_subscription_count() > 0), 10.0,
                   "perception to hear odometry and the camera publisher")
    rng = np.random.default_rng(0)
    frames = rng.integers(0, 255, (BURST, 128, 128, 3), dtype=np.uint8)
    # Timed on the node's side, so transport delays (long on a slow host) cannot blur the order: when each frame
    # went into the mailbox, and when each state was published.
    put, published = [], []
    mailbox_put, state_publish = node._frames.put, node.state_pub.publish
    node._frames.put = lambda frame: (put.append(time.monotonic()), mailbox_put(frame))[1]
    node.state_pub.publish = lambda msg: (published.append(time.monotonic()), state_publish(msg))[1]
    graph.wait_for(lambda: node.state_pub.get_subscription_count() >= 1, 10.0, "the probe")
    for i, rgb in enumerate(frames):  # a frame every ms: many arrive during one encode (tens of ms)
        if i % 10 == 0:
            send_odom()  # the same odometry, kept fresh
        image_pub.publish(rgb_to_image(rgb, feeder.get_clock().now().to_msg(), "camera_link"))
        time.sleep(0.001)
    last_sent = time.monotonic()
    graph.wait_for(lambda: published and put and time.monotonic() - max(published[-1], put[-1], last_sent) > 0.5,
                   10.0, "the states to stop coming")

    model = load_world_model(slow_model_path)
    proprio = torch.from_numpy(proprio_from_odom(odometry_to_array(odom))[None])
    with torch.no_grad():
        newest = model.encode(torch.from_numpy(frames[-1:]), proprio)[0].numpy()
    assert np.allclose(states[-1].data, newest, atol=1e-5), "the last state is not the newest frame's"
    # A queue (the old callback encoding every frame it was handed, 5 deep) leaves a tail of stale frames to work
    # through after the burst; newest-only has at most the frame in progress and the newest left.
    after = sum(t > put[-1] for t in published)
    assert 1 <= after <= 2, f"{after} states encoded after the last frame came"
    assert node.refused == 0 and node.encoded == len(states) < BURST and node.dropped >= 1
    graph.wait_for(lambda: any(s.name == "perception_node: frames" and
                               {kv.key: kv.value for kv in s.values}.get("frames_dropped_stale") == str(node.dropped)
                               for r in reports[-3:] for s in r.status), 3.0, "the dropped frames counted in /diagnostics")
    encoder = node._encoder
    node.stop()  # what deactivate and shutdown do: the encoder thread ends (stop() waits up to 2 s for it)
    assert encoder is not None and not encoder.is_alive()
