"""Training curves from the trainer's per-epoch CSV, as one PNG of small panels (headless: Agg backend).

Every numeric column gets a panel, so new metrics show up without touching this file. Losses (train_*)
are drawn on a log scale, where their late, small improvements stay visible.
"""

from __future__ import annotations

import csv
import math
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402

AXES = ("epoch", "step")  # x-axis candidates, never plotted as panels
PANEL_COLUMNS = 4


def _number(text: str | None) -> float | None:
    try:
        return float(text)
    except (TypeError, ValueError):
        return None


def read_training_log(csv_path: str | Path) -> dict[str, list[tuple[float, float]]]:
    """{column: [(epoch, value), ...]} over the rows whose epoch is a number (the "probe" row is skipped)."""
    series: dict[str, list[tuple[float, float]]] = {}
    with Path(csv_path).open(newline="") as f:
        for row in csv.DictReader(f):
            epoch = _number(row.get("epoch"))
            if epoch is None:
                continue
            for name, text in row.items():
                value = _number(text)
                if name not in AXES and name is not None and value is not None and math.isfinite(value):
                    series.setdefault(name, []).append((epoch, value))
    return series


def plot_training_log(csv_path: str | Path, png_path: str | Path | None = None) -> Path:
    """Draw every numeric column of the log against epoch; returns the PNG path (default: the CSV's, .png)."""
    csv_path = Path(csv_path)
    png_path = Path(png_path) if png_path else csv_path.with_suffix(".png")
    series = read_training_log(csv_path)
    names = sorted(series, key=lambda n: (not n.startswith("train_"), not n.startswith("val_"), n))
    cols = max(1, min(PANEL_COLUMNS, len(names)))
    rows = max(1, math.ceil(len(names) / cols))
    fig, axes = plt.subplots(rows, cols, figsize=(3.2 * cols, 2.4 * rows), squeeze=False)
    for ax in axes.flat[len(names):]:
        ax.axis("off")
    if not names:
        axes[0, 0].text(0.5, 0.5, "no numeric epochs yet", ha="center", va="center")
    for ax, name in zip(axes.flat, names):
        epochs, values = zip(*series[name])
        ax.plot(epochs, values, marker="o" if len(values) < 30 else None, markersize=3)
        if name.startswith("train_") and min(values) > 0:
            ax.set_yscale("log")
        ax.set_title(name, fontsize=9)
        ax.tick_params(labelsize=7)
        ax.grid(alpha=0.3)
    for ax in axes[-1]:
        ax.set_xlabel("epoch", fontsize=8)
    fig.suptitle(csv_path.stem, fontsize=10)
    fig.tight_layout()
    png_path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(png_path, dpi=80)
    plt.close(fig)
    return png_path
