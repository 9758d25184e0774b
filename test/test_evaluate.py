"""Closed-loop evaluation smoke test with an untrained tiny model (checks the report, not the skill)."""

from __future__ import annotations

import json
import math

import cv2
import numpy as np
import pytest

from ojepa_ros.core.collision_monitor import MonitorConfig, MonitorGate
from ojepa_ros.core.model_io import load_world_model
from ojepa_ros.core.mpc import PolicyStep
from ojepa_ros.paths import config_file
from ojepa_ros.sim.rooms_world import clearance, default_layout, doorways, room_of
from ojepa_ros.sim.world_family import HELDOUT_SEEDS
from ojepa_ros.train.evaluate import (MIN_PAIR_DISTANCE, Scenario, drive, evaluate, main, monitor_config, rooms_env,
                                      sample_pairs, scenario_trials)


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


def test_scenario_trials_are_held_out_reproducible_and_carry_their_obstacles():
    scenario = Scenario("heldout", "same_room", obstacles=2, moving_obstacles=1)
    trials = scenario_trials(scenario, 4, seed=3)
    assert [(t.world, t.start, t.goal) for t in trials] == [(t.world, t.start, t.goal)
                                                           for t in scenario_trials(scenario, 4, seed=3)]
    for t in trials:
        assert int(t.world.removeprefix("seed_")) in HELDOUT_SEEDS
        placed = [b for b in t.layout.obstacles if b.name.startswith("placed_")]
        assert len(placed) == 2 and len(t.layout.movers) == 1
        assert room_of(t.layout, *t.start[:2]) == room_of(t.layout, *t.goal)
        assert clearance(t.layout, np.array(t.start[:2])) > 0.4 and clearance(t.layout, np.array(t.goal)) > 0.4
        doors = np.array([c for c, _ in doorways(t.layout)])
        for box in placed:  # never closing a doorway
            assert np.hypot(*(doors - box.center).T).min() > 0.9
    with pytest.raises(ValueError, match="unknown world"):
        Scenario("atlantis")


def test_evaluate_reports_sane_figures(tiny_model_path):
    report = evaluate(tiny_model_path, pairs=2, scenario=Scenario("four_rooms", "cross_room"), seed=1, max_steps=4,
                      params={"num_samples": 32, "horizon": 4})
    assert report["pairs"] == 2 and len(report["episodes"]) == 2
    assert 0.0 <= report["success_rate"] <= 1.0
    assert all(e["steps"] == 4 and not e["success"] for e in report["episodes"])  # cross-room in 0.4 s: impossible
    assert math.isnan(report["mean_time_to_goal_s"])
    assert report["collisions"] >= 0 and report["mean_final_distance_m"] >= MIN_PAIR_DISTANCE - 4 * 0.1 * 0.5
    assert 0.0 < report["plan_ms_median"] <= report["plan_ms_p99"] < 1000.0


def test_main_prints_a_table_and_writes_json(tiny_model_path, tmp_path, capsys):
    out = tmp_path / "eval.json"
    assert main(["--model", str(tiny_model_path), "--pairs", "2", "--mode", "same_room", "--max-steps", "2",
                 "--obstacles", "1", "--camera", "black", "--per-pair", "--json", str(out),
                 "--pictures", str(tmp_path / "pictures")]) == 0
    lines = capsys.readouterr().out.strip().splitlines()
    assert lines[0].startswith("# worlds=heldout mode=same_room obstacles=1") and "camera=black" in lines[0]
    assert lines[1].split()[:3] == ["pair", "world", "success"]
    assert lines[2].startswith("0 ") and lines[4].startswith("total")
    report = json.loads(out.read_text())[0]
    assert report["scenario"]["camera"] == "black" and len(report["episodes"]) == 2
    assert not report["high_level"]  # no roadmap of a held-out world
    assert report["collision_monitor"] and "collision_monitor=on" in lines[0]
    assert "trajectory" not in report["episodes"][0]
    pictures = sorted(p.name for p in (tmp_path / "pictures").iterdir())  # 0.2 s reach no goal: both failed
    assert pictures == [f"same_room_{i:03d}_{e['world']}.png" for i, e in enumerate(report["episodes"])]
    assert cv2.imread(str(tmp_path / "pictures" / pictures[0])).shape == (512, 512, 3)


def test_main_names_an_unusable_model_file(tmp_path, capsys):
    assert main(["--model", str(tmp_path / "missing.pt"), "--pairs", "1"]) == 2
    assert "missing.pt does not exist" in capsys.readouterr().err


def test_main_overrides_the_actor_and_names_a_missing_roadmap(tiny_model_path, tmp_path, capsys):
    args = ["--model", str(tiny_model_path), "--pairs", "1", "--mode", "same_room", "--max-steps", "2",
            "--worlds", "four_rooms"]  # the roadmap's world: the high level runs
    assert main(args + ["--set", "hierarchical=false", "--set", "mode1=alone"]) == 0
    assert main(args + ["--set", f"roadmap_path={tmp_path / 'none.npz'}"]) == 2
    assert "none.npz does not exist" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        main(args + ["--set", "warp_drive=1"])


class FullAhead:
    """A planner that learned nothing: full speed straight ahead whatever it sees (drive() needs only these)."""

    def reset(self) -> None:
        pass

    def set_goal(self, goal) -> None:
        pass

    def act(self, state, velocity, **_) -> PolicyStep:
        return PolicyStep(command=np.array([0.5, 0.0]), raw_command=np.array([0.5, 0.0]), status="ok")


def test_the_evaluated_robot_has_the_deployed_collision_monitor(tiny_model_path):
    model = load_world_model(tiny_model_path)
    env = rooms_env(model, 80)
    try:
        start, goal = (1.0, 2.0, math.pi), (3.0, 2.0)  # facing the west wall, 1 m off
        gate = MonitorGate(monitor_config(config_file("agent.yaml")), (0.5, 1.5))
        guarded = drive(model, env, FullAhead(), start, goal, 80, 0, monitor=gate)
        unguarded = drive(model, env, FullAhead(), start, goal, 80, 0)
    finally:
        env.close()
    assert unguarded["collision_steps"] > 0 and unguarded["monitor_stops"] == 0
    assert guarded["collision_steps"] == 0 and guarded["monitor_stops"] > 40  # held at the wall, step after step


def test_monitor_gate_lets_out_only_a_straight_back_off_while_the_bumper_is_pressed():
    gate = MonitorGate(MonitorConfig(), (0.5, 1.5))
    free = np.zeros((0, 2))
    assert gate.gate((0.8, 3.0), free).command == (0.5, 1.5)  # clipped to the hardware limits
    assert gate.gate((0.3, 0.0), None).state == "stop: no fresh scan"
    gate.bumper(True)  # closed while driving forward
    assert gate.gate((0.3, 0.0), free).command == (0.0, 0.0)
    assert gate.gate((-0.1, 0.0), free).command == (-0.1, 0.0)  # straight back, off the contact
    assert gate.gate((-0.1, 0.4), free).command == (0.0, 0.0)  # turning while pressed scrapes
    wall_behind = np.array([[-0.25, 0.0]])
    assert gate.gate((-0.2, 0.0), wall_behind).command[0] == 0.0  # the back-off is scan-checked too
    gate.bumper(False)
    assert gate.gate((float("nan"), 0.0), free).command == (0.0, 0.0)
