"""Closed-loop evaluation smoke test with an untrained tiny model (checks the report, not the skill)."""

from __future__ import annotations

import math

import numpy as np
import pytest

from ojepa_ros.sim.rooms_world import default_layout, room_of
from ojepa_ros.train.evaluate import MIN_PAIR_DISTANCE, evaluate, main, sample_pairs


@pytest.mark.parametrize("mode", ["same_room", "cross_room"])
def test_pairs_follow_the_mode_and_are_reproducible(mode):
    layout = default_layout()
    pairs = sample_pairs(layout, np.random.default_rng(7), 30, mode)
    assert pairs == sample_pairs(layout, np.random.default_rng(7), 30, mode)
    for (x, y, _), (gx, gy) in pairs:
        assert math.hypot(gx - x, gy - y) >= MIN_PAIR_DISTANCE
        assert (room_of(layout, x, y) == room_of(layout, gx, gy)) == (mode == "same_room")
    with pytest.raises(ValueError, match="mode"):
        sample_pairs(layout, np.random.default_rng(0), 1, "teleport")


def test_evaluate_reports_sane_figures(tiny_model_path):
    report = evaluate(tiny_model_path, pairs=2, mode="cross_room", seed=1, max_steps=4,
                      params={"num_samples": 32, "horizon": 4})
    assert report["pairs"] == 2 and len(report["episodes"]) == 2
    assert 0.0 <= report["success_rate"] <= 1.0
    assert all(e["steps"] == 4 and not e["success"] for e in report["episodes"])  # cross-room in 0.4 s: impossible
    assert math.isnan(report["mean_time_to_goal_s"])
    assert report["collisions"] >= 0 and report["mean_final_distance_m"] >= MIN_PAIR_DISTANCE - 4 * 0.1 * 0.5
    assert 0.0 < report["plan_ms_median"] <= report["plan_ms_p99"] < 1000.0


def test_main_prints_a_table(tiny_model_path, capsys):
    assert main(["--model", str(tiny_model_path), "--pairs", "1", "--mode", "same_room", "--max-steps", "2"]) == 0
    lines = capsys.readouterr().out.strip().splitlines()
    assert lines[0].split()[:3] == ["mode", "pairs", "success"] and lines[1].startswith("same_room")


def test_main_names_an_unusable_model_file(tmp_path, capsys):
    assert main(["--model", str(tmp_path / "missing.pt"), "--pairs", "1"]) == 2
    assert "missing.pt does not exist" in capsys.readouterr().err


def test_main_overrides_the_actor_and_names_a_missing_roadmap(tiny_model_path, tmp_path, capsys):
    args = ["--model", str(tiny_model_path), "--pairs", "1", "--mode", "same_room", "--max-steps", "2"]
    assert main(args + ["--set", "hierarchical=false", "--set", "mode1=alone"]) == 0
    assert main(args + ["--set", f"roadmap_path={tmp_path / 'none.npz'}"]) == 2
    assert "none.npz does not exist" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        main(args + ["--set", "warp_drive=1"])
