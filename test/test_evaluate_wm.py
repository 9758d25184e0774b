"""`ojepa eval-wm` on a tiny model: held-out layouts scored, forward-range errors reported (the figures, not
the skill)."""

from __future__ import annotations

import json
import math

from ojepa_ros.train.collect import main as collect_main
from ojepa_ros.train.episode_files import recorded_world
from ojepa_ros.train.evaluate_wm import main
from ojepa_ros.sim.world_family import HELDOUT_SEEDS


def test_eval_wm_scores_held_out_layouts_and_the_range_read_out(tiny_model_path, episodes_dir, tmp_path, capsys):
    heldout = tmp_path / "heldout"
    assert collect_main(["--split", "heldout", "--episodes", "2", "--steps", "30", "--out", str(heldout)]) == 0
    assert all(int(recorded_world(f).removeprefix("seed_")) in HELDOUT_SEEDS for f in heldout.iterdir())
    out = tmp_path / "wm.json"
    assert main([f"tiny={tiny_model_path}", "--data", str(episodes_dir), "--heldout", str(heldout),
                 "--png", str(tmp_path / "wm.png"), "--json", str(out)]) == 0
    report = json.loads(out.read_text())["tiny"]
    assert report["val_episodes"] == 2
    assert 0.0 <= report["ranges_mae_m"] <= 3.0 and (math.isnan(report["near_ranges_mae_m"])
                                                      or 0.0 <= report["near_ranges_mae_m"] <= 3.0)
    assert "| tiny |" in capsys.readouterr().out and (tmp_path / "wm.png").stat().st_size > 1000
