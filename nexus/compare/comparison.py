"""Each configuration against its baseline (the paired seeds' test predictions through the statistics),
and the per-configuration numbers of the table."""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import numpy as np
from scipy import stats

from nexus.compare.grouping import Group
from nexus.compare.stats import (
    ALPHA,
    VERDICT_TOO_FEW,
    decide_verdict,
    mean_std,
    paired_bootstrap_difference,
    seed_ci,
    williams_test,
)
from nexus.errors import UserError


@dataclass
class WilliamsResult:
    seed: int
    r_new: float  # corr(gold, dendritic)
    r_base: float  # corr(gold, baseline)
    r_between: float  # corr(dendritic, baseline)
    t: float
    p: float


@dataclass
class Comparison:
    group: Group
    baseline: Group
    seeds: list[int]  # paired seeds
    n_pairs: int
    delta: float  # mean over paired seeds of Spearman(group) - Spearman(baseline), test split
    delta_ci: tuple[float, float]
    williams: list[WilliamsResult]
    verdict: str

    @property
    def n_williams_significant(self) -> int:
        """Seeds where Williams' test is significant in the direction of the bootstrap estimate."""
        direction = np.sign(self.delta)
        return sum(1 for w in self.williams if w.p < ALPHA and np.sign(w.t) == direction)


def paired_test_predictions(group: Group, baseline: Group) -> tuple[list[int], np.ndarray, np.ndarray, np.ndarray]:
    """Seeds present in both groups, the shared gold scores and (seeds, n) predictions of each group.

    Every paired run must hold the same test rows with the same gold scores, or the comparison is off.
    """
    new_by_seed, base_by_seed = group.runs_by_seed(), baseline.runs_by_seed()
    seeds = sorted(s for s in new_by_seed.keys() & base_by_seed.keys() if s is not None)
    if not seeds:
        return [], np.empty(0), np.empty((0, 0)), np.empty((0, 0))
    reference = base_by_seed[seeds[0]]
    rows, gold = reference.test_predictions.rows, reference.test_predictions.gold
    for seed in seeds:
        for run in (new_by_seed[seed], base_by_seed[seed]):
            preds = run.test_predictions
            if preds.rows.shape != rows.shape or not np.array_equal(preds.rows, rows):
                raise UserError(f"test rows differ between {reference.source} and {run.source}")
            if not np.allclose(preds.gold, gold, rtol=0, atol=1e-9):
                raise UserError(f"test gold scores differ between {reference.source} and {run.source}")
    pred_new = np.stack([new_by_seed[s].test_predictions.pred for s in seeds])
    pred_base = np.stack([base_by_seed[s].test_predictions.pred for s in seeds])
    return seeds, gold, pred_new, pred_base


def compare_to_baseline(group: Group, baseline: Group) -> Comparison:
    seeds, gold, pred_new, pred_base = paired_test_predictions(group, baseline)
    if not seeds:
        return Comparison(group, baseline, [], 0, math.nan, (math.nan, math.nan), [], VERDICT_TOO_FEW)
    delta, delta_ci, _ = paired_bootstrap_difference(gold, pred_new, pred_base)
    williams = []
    for index, seed in enumerate(seeds):
        r_new = stats.spearmanr(gold, pred_new[index]).statistic
        r_base = stats.spearmanr(gold, pred_base[index]).statistic
        r_between = stats.spearmanr(pred_new[index], pred_base[index]).statistic
        t, p = williams_test(r_new, r_base, r_between, gold.size)
        williams.append(WilliamsResult(seed, float(r_new), float(r_base), float(r_between), t, p))
    comparison = Comparison(group, baseline, seeds, gold.size, delta, delta_ci, williams, "")
    comparison.verdict = decide_verdict(len(seeds), delta_ci, comparison.n_williams_significant)
    return comparison


def summarize_group(group: Group) -> dict[str, Any]:
    """The per-configuration numbers of the table (means over seeds)."""

    def mean_of(key: str) -> float:
        return mean_std([run.number(key) for run in group.runs])[0]

    test = [run.number("test/spearman") for run in group.runs]
    best_val_mean, best_val_std = mean_std([run.number("best/val_spearman") for run in group.runs])
    test_mean, test_std = mean_std(test)
    ci = seed_ci(test)
    return {
        "configuration": group.name,
        "pai_mode": group.pai_mode,
        "n_seeds": len(group.runs),
        "seeds": " ".join(str(run.seed) for run in group.runs),
        "best_val_spearman_mean": best_val_mean,
        "best_val_spearman_std": best_val_std,
        "test_spearman_mean": test_mean,
        "test_spearman_std": test_std,
        "test_spearman_ci_low": ci[0] if ci else math.nan,
        "test_spearman_ci_high": ci[1] if ci else math.nan,
        "zero_shot_test_spearman": mean_of("zero_shot/test_spearman"),
        "params_mean": mean_of("pai/params"),
        "dendrites_mean": mean_of("pai/dendrites"),
        # best/epoch is 0-based and every metrics epoch trains, so the best model came after epoch+1 epochs
        "epochs_to_best_mean": mean_of("best/epoch") + 1,
        "time_per_run_s_mean": mean_of("time/total_s"),
    }


COMPARISON_COLUMNS = [
    "baseline",
    "paired_seeds",
    "delta_test_spearman",
    "delta_ci_low",
    "delta_ci_high",
    "williams_p",
    "williams_significant_seeds",
    "verdict",
]


def comparison_columns(comparison: Comparison | None) -> dict[str, Any]:
    if comparison is None:
        return {key: "" for key in COMPARISON_COLUMNS}
    return {
        "baseline": comparison.baseline.name,
        "paired_seeds": len(comparison.seeds),
        "delta_test_spearman": comparison.delta,
        "delta_ci_low": comparison.delta_ci[0],
        "delta_ci_high": comparison.delta_ci[1],
        "williams_p": " ".join(f"{w.p:.4g}" for w in comparison.williams),
        "williams_significant_seeds": comparison.n_williams_significant,
        "verdict": comparison.verdict,
    }

