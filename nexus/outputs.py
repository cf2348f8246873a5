"""What a finished run leaves besides its logs and model folder (nexus.model): predictions, the plot."""

from __future__ import annotations

import csv
from pathlib import Path

import numpy as np
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure

from nexus.data import Pairs


def write_predictions(path: Path, pairs: Pairs, predictions: np.ndarray) -> None:
    """One row per data row, in data order: `row` (0-based), `line` (in the source file), gold, pred."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "w", newline="") as f:
        writer = csv.writer(f)
        writer.writerow(["row", "line", "gold", "pred"])
        for row, (line, gold, pred) in enumerate(zip(pairs.lines, pairs.scores, predictions)):
            writer.writerow([row, int(line), f"{gold:.6f}", f"{pred:.6f}"])


def plot_training(path: Path, history: list[dict], events: list[dict], zero_shot_val: float) -> None:
    """Train loss and dev Spearman per epoch; dashed lines where PAI added dendrites.

    matplotlib's object API on the Agg canvas: no pyplot state, no display needed."""
    epochs = [r["epoch"] for r in history]
    fig = Figure(figsize=(11, 4))
    FigureCanvasAgg(fig)
    ax_loss, ax_val = fig.subplots(1, 2)
    ax_loss.plot(epochs, [r["train/loss"] for r in history], marker="o")
    ax_loss.set(title="train loss (cosine MSE)", xlabel="epoch")
    ax_val.plot(epochs, [r["val/spearman"] for r in history], marker="o", label="dev Spearman")
    ax_val.axhline(zero_shot_val, color="grey", linestyle=":", label="zero-shot")
    ax_val.set(title="dev Spearman", xlabel="epoch")
    for ax in (ax_loss, ax_val):
        for i, event in enumerate(e for e in events if e["kind"] == "dendrites_added"):
            ax.axvline(event["epoch"], color="tab:red", linestyle="--", alpha=0.6,
                       label="dendrites added" if (ax is ax_val and i == 0) else None)
    ax_val.legend()
    fig.tight_layout()
    fig.savefig(path, dpi=100)
