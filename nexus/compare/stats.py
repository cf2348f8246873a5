"""The statistics behind the verdicts, on plain arrays: means and seed intervals, Williams' test for
two dependent correlations, the paired bootstrap of a Spearman difference, and the verdict rule."""

from __future__ import annotations

import math
from typing import Sequence

import numpy as np
from scipy import stats

MIN_SEEDS_FOR_CI = 3
SEED_BOOTSTRAP_RESAMPLES = 9999
PAIRED_BOOTSTRAP_RESAMPLES = 2000
PAIRED_BOOTSTRAP_CHUNK = 250  # resamples per vectorised batch: bounds memory to a few (250, n) arrays
RNG_SEED = 2024  # fixed, so a report is reproducible
ALPHA = 0.05

VERDICT_BETTER = "better"
VERDICT_WORSE = "worse"
VERDICT_SAME = "no significant difference"
VERDICT_TOO_FEW = "too few seeds to tell"


def mean_std(values: Sequence[float]) -> tuple[float, float]:
    """Mean and sample std (ddof=1), ignoring NaN; std is NaN with fewer than 2 values."""
    array = np.asarray([v for v in values if not math.isnan(v)], dtype=float)
    if array.size == 0:
        return math.nan, math.nan
    std = float(array.std(ddof=1)) if array.size > 1 else math.nan
    return float(array.mean()), std


def seed_ci(values: Sequence[float], confidence: float = 0.95) -> tuple[float, float] | None:
    """Bootstrap CI of the mean over seeds (scipy.stats.bootstrap); None with fewer than 3 seeds.

    Percentile method: with 3-10 seeds BCa's jackknife acceleration is itself unstable, and neither
    method is more than a rough guide at that size; the report says how many seeds back each interval.
    """
    array = np.asarray([v for v in values if not math.isnan(v)], dtype=float)
    if array.size < MIN_SEEDS_FOR_CI:
        return None
    if np.ptp(array) == 0:  # every seed the same: the bootstrap distribution is a single point
        return float(array[0]), float(array[0])
    result = stats.bootstrap(
        (array,),
        np.mean,
        confidence_level=confidence,
        n_resamples=SEED_BOOTSTRAP_RESAMPLES,
        method="percentile",
        rng=np.random.default_rng(RNG_SEED),
    )
    return float(result.confidence_interval.low), float(result.confidence_interval.high)


def williams_test(r12: float, r13: float, r23: float, n: int) -> tuple[float, float]:
    """Williams' t for H0: rho12 == rho13, two correlations sharing variable 1; returns (t, two-sided p).

    Written by hand because scipy has no test for dependent correlations. Formula: Williams (1959) as
    given by Steiger (1980, Psychological Bulletin 87:245, eq. 7), df = n - 3:

        t = (r12 - r13) * sqrt( (n-1)(1+r23) / ( 2 (n-1)/(n-3) |R| + rbar^2 (1-r23)^3 ) )
        |R| = 1 - r12^2 - r13^2 - r23^2 + 2 r12 r13 r23,   rbar = (r12 + r13) / 2

    Here variable 1 is the gold score, 2 and 3 the two models' predictions. Positive t: r12 > r13.
    """
    if n <= 3:
        raise ValueError(f"Williams' test needs n > 3 pairs, got {n}")
    if r12 == r13:  # includes identical predictors (r23 = 1), where the formula is 0/0
        return 0.0, 1.0
    # |R| >= 0 for any real correlation matrix; clamp the float rounding of near-singular ones
    determinant = max(0.0, 1 - r12**2 - r13**2 - r23**2 + 2 * r12 * r13 * r23)
    r_mean = (r12 + r13) / 2
    denominator = 2 * (n - 1) / (n - 3) * determinant + r_mean**2 * (1 - r23) ** 3
    if not denominator > 0:
        raise ValueError(f"not a valid correlation matrix: r12={r12}, r13={r13}, r23={r23}")
    t = (r12 - r13) * math.sqrt((n - 1) * (1 + r23) / denominator)
    p = 2 * stats.t.sf(abs(t), df=n - 3)
    return float(t), float(p)


class _ResampledRanks:
    """Average ranks of one vector within bootstrap resamples given as per-row draw counts.

    Spearman on a resample equals a count-weighted Pearson correlation of the ranks the drawn values
    have within that resample. Those ranks follow from the counts without sorting again: a value's
    rank is (number of drawn values below it) + (number drawn equal to it + 1) / 2. The sort and tie
    structure is computed once here; each batch of resamples then costs a few array passes.
    """

    def __init__(self, values: np.ndarray):
        self.order = np.argsort(values, kind="stable")
        sorted_values = values[self.order]
        new_value = np.r_[True, sorted_values[1:] != sorted_values[:-1]]
        self.tie_starts = np.flatnonzero(new_value)
        tie_of_sorted = np.cumsum(new_value) - 1
        self.tie_of_row = np.empty(values.size, dtype=int)
        self.tie_of_row[self.order] = tie_of_sorted

    def ranks(self, counts: np.ndarray) -> np.ndarray:
        """counts: (resamples, n) draws per row -> (resamples, n) average rank of each row's value."""
        per_tie = np.add.reduceat(counts[:, self.order], self.tie_starts, axis=1)
        below = np.cumsum(per_tie, axis=1) - per_tie
        return (below + (per_tie + 1) / 2)[:, self.tie_of_row]


def _weighted_corr(x: np.ndarray, y: np.ndarray, weights: np.ndarray) -> np.ndarray:
    """Row-wise Pearson correlation of x and y with integer weights (= rows repeated that often)."""
    total = weights.sum(axis=1, keepdims=True)
    dx = x - (weights * x).sum(axis=1, keepdims=True) / total
    dy = y - (weights * y).sum(axis=1, keepdims=True) / total
    covariance = (weights * dx * dy).sum(axis=1)
    return covariance / np.sqrt((weights * dx * dx).sum(axis=1) * (weights * dy * dy).sum(axis=1))


def paired_bootstrap_difference(
    gold: np.ndarray,
    pred_new: np.ndarray,
    pred_base: np.ndarray,
    n_resamples: int = PAIRED_BOOTSTRAP_RESAMPLES,
    confidence: float = 0.95,
    seed: int = RNG_SEED,
) -> tuple[float, tuple[float, float], np.ndarray]:
    """Mean over seeds of Spearman(gold, new) - Spearman(gold, base), with a paired bootstrap interval.

    gold: (n,) test gold scores; pred_new, pred_base: (k, n), row s holding seed s of each model, both
    aligned to gold. Each resample draws the n test pairs with replacement (the same pairs for every
    seed and both models, so the test-set noise they share cancels) and, independently, k of the
    k seeds with replacement (seed s of the new model stays paired with seed s of the baseline).
    Returns (observed difference, (low, high) percentile interval, the resampled differences).
    """
    pred_new = np.atleast_2d(pred_new)
    pred_base = np.atleast_2d(pred_base)
    k, n = pred_new.shape
    observed = float(
        np.mean(
            [
                stats.spearmanr(gold, pred_new[s]).statistic - stats.spearmanr(gold, pred_base[s]).statistic
                for s in range(k)
            ]
        )
    )
    rng = np.random.default_rng(seed)
    gold_ranks = _ResampledRanks(gold)
    new_ranks = [_ResampledRanks(pred_new[s]) for s in range(k)]
    base_ranks = [_ResampledRanks(pred_base[s]) for s in range(k)]
    differences = np.empty(n_resamples)
    for start in range(0, n_resamples, PAIRED_BOOTSTRAP_CHUNK):
        size = min(PAIRED_BOOTSTRAP_CHUNK, n_resamples - start)
        drawn_rows = rng.integers(0, n, size=(size, n))
        # counts[b, i] = how often row i was drawn in resample b (bincount over rows offset per resample)
        offsets = np.arange(size)[:, None] * n
        counts = np.bincount((drawn_rows + offsets).ravel(), minlength=size * n).reshape(size, n).astype(float)
        drawn_seeds = rng.integers(0, k, size=(size, k))
        gold_r = gold_ranks.ranks(counts)
        per_seed = np.column_stack(
            [
                _weighted_corr(gold_r, new_ranks[s].ranks(counts), counts)
                - _weighted_corr(gold_r, base_ranks[s].ranks(counts), counts)
                for s in range(k)
            ]
        )
        differences[start : start + size] = np.take_along_axis(per_seed, drawn_seeds, axis=1).mean(axis=1)
    tail = (1 - confidence) / 2 * 100
    low, high = np.nanpercentile(differences, [tail, 100 - tail])
    return observed, (float(low), float(high)), differences


def decide_verdict(n_seeds: int, ci: tuple[float, float], n_williams_significant: int) -> str:
    """better/worse only if the interval excludes 0 and Williams agrees for a strict majority of seeds."""
    if n_seeds < MIN_SEEDS_FOR_CI:
        return VERDICT_TOO_FEW
    low, high = ci
    williams_majority = n_williams_significant * 2 > n_seeds
    if williams_majority and low > 0:
        return VERDICT_BETTER
    if williams_majority and high < 0:
        return VERDICT_WORSE
    return VERDICT_SAME
