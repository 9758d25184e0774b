"""One `ojepa eval` as a subprocess on one thread, its JSON report read back: what the closed-loop benches run
side by side."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path


def run_eval(name: str, arguments: list[str], out_dir: Path) -> dict:
    """The first report of `ojepa eval ARGUMENTS --json out_dir/NAME.json`, with its wall time as "wall_s"."""
    out = out_dir / f"{name}.json"
    start = time.perf_counter()
    done = subprocess.run([sys.executable, "-m", "ojepa_ros.cli", "eval", *arguments, "--json", str(out)],
                          env={**os.environ, "OMP_NUM_THREADS": "1"}, capture_output=True, text=True)
    if done.returncode:
        raise RuntimeError(f"{name}: {done.stderr.strip() or done.stdout.strip()}")
    report = json.loads(out.read_text())[0]
    report["wall_s"] = time.perf_counter() - start
    return report
