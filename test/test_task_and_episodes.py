"""Task files and MCAP episodes (core, no ROS)."""

from __future__ import annotations

import math
from pathlib import Path

import pytest
from mcap.reader import make_reader
from rosbags.rosbag2 import Reader

from ojepa_ros.core.episodes import TYPESTORE, EpisodeWriter, read_episode
from ojepa_ros.core.task import TaskError, load_task
from ojepa_ros.paths import task_file


def test_shipped_tasks_load():
    task = load_task(task_file("demo"))
    assert task.goal == (6.0, 2.0)
    assert task.weights == {"goal_distance": 1.0}
    image = load_task(task_file("image_goal"))
    assert image.goal is None and image.goal_image.name == "doorway_view.png" and image.goal_image.is_file()


@pytest.mark.parametrize("text, problem", [
    ("goal: {x: .nan, y: 1}", "finite"),
    ("goal: {x: 1}", "goal must be"),
    ("weights: {goal_distance: -1}", ">= 0"),
    ("planner: {warp_drive: 3}", "unknown planner setting"),
    ("planner: {planner: astar}", "planner.planner must be one of"),
    ("planner: {hierarchical: 1}", "planner.hierarchical must be true or false"),
    ("planner: {mode1: off}", "planner.mode1 must be one of"),  # YAML reads off as false: refused, not guessed
    ("speed: 3", "unknown keys"),
    ("goal: [1, 2", "not valid YAML"),
    ("goal_image: nowhere.png", "does not exist"),
    ("goal_image: 3", "must be an image file name"),
    ("{goal: {x: 1, y: 2}, goal_image: x.png}", "not both"),
])
def test_bad_task_files_are_refused_with_the_file_named(tmp_path: Path, text: str, problem: str):
    path = tmp_path / "bad.yaml"
    path.write_text(text)
    with pytest.raises(TaskError) as err:
        load_task(path)
    assert problem in str(err.value) and str(path) in str(err.value)


def test_a_task_may_choose_how_to_plan(tmp_path: Path):
    path = tmp_path / "t.yaml"
    path.write_text("planner: {planner: cem, hierarchical: false, mode1: none, num_samples: 256.0, risk: worst}")
    assert load_task(path).planner == {"planner": "cem", "hierarchical": False, "mode1": "none",
                                       "num_samples": 256, "risk": "worst"}
    assert load_task(task_file("cross_room")).goal == (2.0, 6.0)


def test_missing_task_file(tmp_path: Path):
    with pytest.raises(TaskError, match="does not exist"):
        load_task(tmp_path / "nope.yaml")


def test_episode_round_trip_readable_by_rosbags_and_mcap(tmp_path: Path):
    Twist = TYPESTORE.types["geometry_msgs/msg/Twist"]
    Vector3 = TYPESTORE.types["geometry_msgs/msg/Vector3"]
    path = tmp_path / "episode"
    writer = EpisodeWriter(path, {"/cmd_vel": "geometry_msgs/msg/Twist"})
    for i in range(5):
        msg = Twist(linear=Vector3(x=0.1 * i, y=0.0, z=0.0), angular=Vector3(x=0.0, y=0.0, z=-0.2 * i))
        writer.write("/cmd_vel", 1_000_000_000 + i, TYPESTORE.serialize_cdr(msg, "geometry_msgs/msg/Twist"))
    writer.close()

    messages = list(read_episode(path))
    assert [m.linear.x for _, _, m in messages] == pytest.approx([0.0, 0.1, 0.2, 0.3, 0.4])
    with Reader(path) as reader:
        assert reader.message_count == 5
    mcap_file = next(path.glob("*.mcap"))
    with mcap_file.open("rb") as f:
        summary = make_reader(f).get_summary()
    assert summary.statistics.message_count == 5
    assert math.isclose(messages[-1][2].angular.z, -0.8)
