"""The report's PNG plots. matplotlib's object API with the Agg canvas: no pyplot state, no display needed."""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any, Sequence

import numpy as np

from nexus.compare.comparison import Comparison
from nexus.compare.grouping import Group, canonical_json
from nexus.compare.stats import MIN_SEEDS_FOR_CI, mean_std


def _new_figure(width: float, height: float):
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    figure = Figure(figsize=(width, height), layout="constrained")
    FigureCanvasAgg(figure)
    return figure


def _curve(group: Group, key: str) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Epochs and the mean/min/max of metrics[key] across seeds (seeds that stopped early drop out)."""
    by_epoch: dict[int, list[float]] = {}
    for run in group.runs:
        for record in run.metrics:
            value = record.get(key)
            if isinstance(value, (int, float)) and "epoch" in record:
                by_epoch.setdefault(int(record["epoch"]), []).append(float(value))
    epochs = np.array(sorted(by_epoch))
    values = [np.array(by_epoch[e]) for e in epochs]
    return (
        epochs,
        np.array([v.mean() for v in values]),
        np.array([v.min() for v in values]),
        np.array([v.max() for v in values]),
    )


def _restructure_epochs(group: Group) -> list[int]:
    return sorted(
        {int(e["epoch"]) for run in group.runs for e in run.events if e.get("kind") == "dendrites_added"}
    )


def plot_curves(panels: Sequence[Sequence[Group]], path: Path) -> None:
    """Dev Spearman and train loss per epoch; one row per panel (a dendritic group with its baseline)."""
    figure = _new_figure(12, 3.2 * len(panels))
    axes = figure.subplots(len(panels), 2, squeeze=False)
    for row, groups in enumerate(panels):
        for column, (key, label) in enumerate([("val/spearman", "dev Spearman"), ("train/loss", "train loss")]):
            axis = axes[row][column]
            for index, group in enumerate(groups):
                color = f"C{index}"
                epochs, mean, low, high = _curve(group, key)
                if epochs.size:
                    axis.plot(epochs, mean, color=color, label=f"{group.name} (n={len(group.runs)})")
                    axis.fill_between(epochs, low, high, color=color, alpha=0.2, linewidth=0)
                for number, epoch in enumerate(_restructure_epochs(group)):
                    axis.axvline(
                        epoch, color=color, linestyle="--", linewidth=0.8,
                        label="dendrites added" if number == 0 else None,
                    )
            axis.set_xlabel("epoch")
            axis.set_ylabel(label)
            axis.grid(alpha=0.3)
            axis.legend(fontsize=7)
    figure.suptitle("Per epoch: mean across seeds, band = min..max; dashed = dendrites added")
    figure.savefig(path, dpi=90)


def plot_test_spearman(rows: Sequence[dict[str, Any]], path: Path) -> None:
    """Test Spearman per configuration with the seed-bootstrap 95% CI (a bare point where n/a)."""
    figure = _new_figure(max(6, 1.3 * len(rows) + 2), 4.5)
    axis = figure.subplots()
    positions = np.arange(len(rows))
    means = np.array([row["test_spearman_mean"] for row in rows])
    low = np.array([row["test_spearman_ci_low"] for row in rows])
    high = np.array([row["test_spearman_ci_high"] for row in rows])
    has_ci = ~np.isnan(low)
    if has_ci.any():
        axis.errorbar(
            positions[has_ci], means[has_ci],
            yerr=[means[has_ci] - low[has_ci], high[has_ci] - means[has_ci]],
            fmt="o", capsize=5, label="mean, 95% CI over seeds",
        )
    if (~has_ci).any():
        axis.plot(
            positions[~has_ci], means[~has_ci], "x", color="C0",
            label=f"mean (CI n/a, < {MIN_SEEDS_FOR_CI} seeds)",
        )
    zero_shot = np.nanmean([row["zero_shot_test_spearman"] for row in rows]) if rows else math.nan
    if not math.isnan(zero_shot):
        axis.axhline(zero_shot, color="grey", linestyle=":", label="zero-shot")
    axis.set_xticks(positions, [row["configuration"] for row in rows], rotation=20, ha="right", fontsize=8)
    axis.set_ylabel("test Spearman")
    axis.grid(axis="y", alpha=0.3)
    axis.legend(fontsize=8)
    figure.savefig(path, dpi=90)


def plot_lr_by_mode(groups: Sequence[Group], path: Path) -> bool:
    """Best dev Spearman against train.lr, one line per remaining configuration; only if lr and mode vary."""
    lrs = {canonical_json(g.config.get("train.lr")) for g in groups}
    if len({g.pai_mode for g in groups}) < 2 or len(lrs) < 2:
        return False
    series: dict[str, list[tuple[float, float, float]]] = {}
    for group in groups:
        lr = group.config.get("train.lr")
        if not isinstance(lr, (int, float)):
            continue
        label = " ".join(part for part in group.name.split() if not part.startswith("train.lr="))
        mean, std = mean_std([run.number("best/val_spearman") for run in group.runs])
        series.setdefault(label, []).append((float(lr), mean, 0.0 if math.isnan(std) else std))
    figure = _new_figure(7, 4.5)
    axis = figure.subplots()
    for label, points in sorted(series.items()):
        points.sort()
        lrs, means, stds = (np.array(column) for column in zip(*points))
        axis.errorbar(lrs, means, yerr=stds, marker="o", capsize=4, label=label)
    axis.set_xscale("log")
    axis.set_xlabel("train.lr")
    axis.set_ylabel("best dev Spearman (mean ± std over seeds)")
    axis.grid(alpha=0.3)
    axis.legend(fontsize=8)
    figure.savefig(path, dpi=90)
    return True


def _architecture_curve(group: Group) -> tuple[list[float], list[float]]:
    """(params, mean test Spearman) of each dendrite count whose best model was tested, over seeds."""
    by_dendrites: dict[int, tuple[list[float], list[float]]] = {}
    for run in group.runs:
        for arch in run.summary.get("pai/architectures") or []:
            if isinstance(arch.get("test_spearman"), (int, float)):
                params, tests = by_dendrites.setdefault(int(arch["dendrites"]), ([], []))
                params.append(float(arch["params"]))
                tests.append(float(arch["test_spearman"]))
    points = [(float(np.mean(p)), float(np.mean(t))) for _, (p, t) in sorted(by_dendrites.items())]
    return [p for p, _ in points], [t for _, t in points]


def plot_params_vs_test(groups: Sequence[Group], rows: Sequence[dict[str, Any]], path: Path) -> None:
    """Test Spearman against trained adapter parameters: each configuration (mean, 95% CI over seeds;
    a bare point where n/a), and a dotted line through each architecture's best model (the runs'
    pai/architectures), which shows what every further dendrite bought."""
    figure = _new_figure(8, 5)
    axis = figure.subplots()
    for index, (group, row) in enumerate(zip(groups, rows)):
        color = f"C{index % 10}"
        x, y = row["params_mean"], row["test_spearman_mean"]
        low, high = row["test_spearman_ci_low"], row["test_spearman_ci_high"]
        label = f"{row['configuration']} ({row['dendrites_mean']:.1f} dendrites)"
        if math.isnan(low):
            axis.plot([x], [y], "x", color=color, label=label)
        else:
            axis.errorbar([x], [y], yerr=[[y - low], [high - y]], fmt="o", capsize=5, color=color, label=label)
        arch_params, arch_tests = _architecture_curve(group)
        if len(arch_params) > 1:
            axis.plot(arch_params, arch_tests, ":", marker=".", color=color, alpha=0.7)
    axis.set_xlabel("trained adapter parameters (pai/params; dotted: best model of each dendrite count)")
    axis.set_ylabel("test Spearman")
    axis.grid(alpha=0.3)
    axis.legend(fontsize=7)
    figure.savefig(path, dpi=90)


def plot_forest(comparisons: Sequence[Comparison], path: Path) -> bool:
    """Forest plot: each configuration's paired difference in test Spearman against its baseline with
    its 95% paired-bootstrap interval, and the zero line. False (nothing written) without a pair."""
    shown = [c for c in comparisons if c.seeds]
    if not shown:
        return False
    figure = _new_figure(8, 1.2 + 0.5 * len(shown))
    axis = figure.subplots()
    positions = np.arange(len(shown))[::-1]
    deltas = np.array([c.delta for c in shown])
    low, high = np.array([c.delta_ci[0] for c in shown]), np.array([c.delta_ci[1] for c in shown])
    axis.errorbar(deltas, positions, xerr=[deltas - low, high - deltas], fmt="s", capsize=4, color="C0")
    axis.axvline(0.0, color="grey", linestyle="--")
    axis.set_yticks(positions, [f"{c.group.name} ({len(c.seeds)} seeds)" for c in shown], fontsize=8)
    axis.set_xlabel("Δ test Spearman vs baseline (95% CI, paired bootstrap)")
    axis.grid(axis="x", alpha=0.3)
    figure.savefig(path, dpi=90)
    return True
