"""Comparison report for finished NEXUS runs: dendritic configurations against their baseline.

    python -m nexus.compare RUNS_DIR [RUNS_DIR ...] --out OUT [--baseline NAME] [--wandb ENTITY/PROJECT[/SWEEP]|DIR]

Reads run folders (any directory holding a ``summary.json``; sweep and Hydra multirun folders are
searched recursively), groups runs by configuration (the resolved config without the seed), and
writes ``OUT/report.md``, ``OUT/report.html`` (self-contained), ``OUT/table.csv`` and the PNG plots.

Statistics, per dendritic configuration against its baseline (only seeds present in both):
  * a paired bootstrap over test pairs and seeds of mean_seeds(Spearman(dendritic) - Spearman(baseline));
  * Williams' test for two dependent correlations sharing the gold scores, per seed.
A difference is called significant when the bootstrap 95% interval excludes 0 AND Williams' test gives
p < 0.05, in the same direction, for a strict majority of the paired seeds; with fewer than 3 paired
seeds the verdict is "too few seeds to tell" (the numbers are still shown).

This module only reads finished runs; it never trains.
"""

from __future__ import annotations

import argparse
import base64
import csv
import html
import json
import math
import os
import sys
import tempfile
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterable, Sequence

import numpy as np
from scipy import stats

from nexus.config import NOT_CONFIGURATION, flatten

# --------------------------------------------------------------------------------------------------
# Constants
# --------------------------------------------------------------------------------------------------

COMPLETED = "completed"
BASELINE_MODE = "disabled"

# When looking for a dendritic group's baseline, these may differ: the PAI knobs (irrelevant with
# pai.mode=disabled), the experiment bundle's name, and the epoch cap (dendritic runs get more epochs
# to grow dendrites; the comparison is between the best-dev checkpoints either way).
BASELINE_IGNORED_KEYS = {"experiment", "train.max_epochs"}
BASELINE_IGNORED_PREFIXES = ("pai.",)

# Keys set by experiment bundles; left out of group names when the other keys already tell groups apart.
NAME_DROPPABLE_KEYS = ("experiment", "train.max_epochs")

MIN_SEEDS_FOR_CI = 3
SEED_BOOTSTRAP_RESAMPLES = 9999
PAIRED_BOOTSTRAP_RESAMPLES = 2000
PAIRED_BOOTSTRAP_CHUNK = 250  # resamples per vectorised batch: bounds memory to a few (250, n) arrays
RNG_SEED = 2024  # fixed, so a report is reproducible
ALPHA = 0.05

WANDB_TIMEOUT_S = 20

VERDICT_BETTER = "better"
VERDICT_WORSE = "worse"
VERDICT_SAME = "no significant difference"
VERDICT_TOO_FEW = "too few seeds to tell"


class CompareError(Exception):
    """A problem with the inputs; main() prints it as one line and exits with code 2."""


# --------------------------------------------------------------------------------------------------
# In-memory run structures (filled from run folders or from W&B)
# --------------------------------------------------------------------------------------------------


@dataclass
class Predictions:
    """One split's predictions, sorted by ``row`` so runs on the same data line up element by element."""

    rows: np.ndarray  # int, 0-based pair index in the split
    gold: np.ndarray  # gold score scaled to 0..1
    pred: np.ndarray  # cosine similarity at the best-dev epoch


@dataclass
class Run:
    source: str  # run folder, or W&B run path
    summary: dict[str, Any]
    config: dict[str, Any]  # flattened: {"train.lr": 1e-4, ...}
    metrics: list[dict[str, Any]] = field(default_factory=list)
    events: list[dict[str, Any]] = field(default_factory=list)
    test_predictions: Predictions | None = None

    @property
    def status(self) -> str:
        return str(self.summary.get("status", "unknown"))

    @property
    def seed(self) -> int | None:
        seed = self.summary.get("seed", self.config.get("seed"))
        return None if seed is None else int(seed)

    def number(self, key: str) -> float:
        """A summary metric as float, NaN when missing (failed runs may lack them)."""
        value = self.summary.get(key)
        return float(value) if isinstance(value, (int, float)) else math.nan


@dataclass
class Group:
    """Runs that share a configuration except for the seed."""

    config: dict[str, Any]  # the grouping config (flattened, seed/paths/logger/hydra removed)
    runs: list[Run]  # completed runs, sorted by seed
    name: str = ""

    @property
    def pai_mode(self) -> str:
        return str(self.config.get("pai.mode"))

    def run_for_seed(self) -> dict[int, Run]:
        return {run.seed: run for run in self.runs}


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


# --------------------------------------------------------------------------------------------------
# Reading run folders
# --------------------------------------------------------------------------------------------------


def find_run_folders(root: Path) -> list[Path]:
    """Every folder under root (root included) holding summary.json; no descent below a run folder."""
    found = []
    for folder, subfolders, files in os.walk(root):
        if "summary.json" in files:
            found.append(Path(folder))
            subfolders.clear()  # a run's own subfolders (model/, wandb/) hold no other runs
        else:
            subfolders.sort()
    return sorted(found)


def _read_json(path: Path) -> Any:
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except json.JSONDecodeError as exc:
        raise CompareError(f"{path}: not valid JSON ({exc.msg}, line {exc.lineno})") from None
    except OSError as exc:
        raise CompareError(f"{path}: cannot read ({exc.strerror})") from None


def _read_jsonl(path: Path) -> list[dict[str, Any]]:
    if not path.is_file():
        return []
    records = []
    for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), start=1):
        if not line.strip():
            continue
        try:
            records.append(json.loads(line))
        except json.JSONDecodeError as exc:
            raise CompareError(f"{path}:{number}: not valid JSON ({exc.msg})") from None
    return records


def read_predictions(path: Path) -> Predictions:
    """predictions/<split>.csv with header row,line,gold,pred."""
    with path.open(newline="", encoding="utf-8") as handle:
        reader = csv.DictReader(handle)
        missing = {"row", "gold", "pred"} - set(reader.fieldnames or [])
        if missing:
            raise CompareError(f"{path}: missing column(s) {', '.join(sorted(missing))}")
        try:
            records = [(int(r["row"]), float(r["gold"]), float(r["pred"])) for r in reader]
        except (TypeError, ValueError) as exc:
            raise CompareError(f"{path}: unreadable value ({exc})") from None
    if not records:
        raise CompareError(f"{path}: no prediction rows")
    data = np.array(records, dtype=float)
    order = np.argsort(data[:, 0], kind="stable")
    data = data[order]
    return Predictions(rows=data[:, 0].astype(int), gold=data[:, 1], pred=data[:, 2])


def config_of(summary: dict[str, Any]) -> dict[str, Any]:
    """The flattened config, with pai.mode/experiment filled from the summary if the config lacks them."""
    config = flatten(summary.get("config") or {})
    if summary.get("pai") is not None:
        config.setdefault("pai.mode", summary["pai"])
    if summary.get("experiment") is not None:
        config.setdefault("experiment", summary["experiment"])
    return config


def load_run_folder(folder: Path) -> Run:
    """A run folder per the contract. Metrics, events and predictions are read for completed runs only."""
    summary = _read_json(folder / "summary.json")
    if not isinstance(summary, dict):
        raise CompareError(f"{folder / 'summary.json'}: expected a JSON object")
    run = Run(source=str(folder), summary=summary, config=config_of(summary))
    if run.status == COMPLETED:
        run.metrics = _read_jsonl(folder / "metrics.jsonl")
        run.events = _read_jsonl(folder / "events.jsonl")
        test_csv = folder / "predictions" / "test.csv"
        if test_csv.is_file():
            run.test_predictions = read_predictions(test_csv)
    return run


def load_folders(folders: Sequence[str]) -> list[Run]:
    """All runs below the given folders, each once; every folder must hold at least one completed run."""
    loaded: dict[Path, Run] = {}  # by resolved path: a sweep and one of its runs may both be given
    for name in folders:
        root = Path(name)
        if not root.is_dir():
            raise CompareError(f"no such folder: {name}")
        runs_here = []
        for folder in find_run_folders(root):
            if folder.resolve() not in loaded:
                loaded[folder.resolve()] = load_run_folder(folder)
            runs_here.append(loaded[folder.resolve()])
        if not runs_here:
            raise CompareError(f"{name}: no run folders (no summary.json below it)")
        if not any(run.status == COMPLETED for run in runs_here):
            statuses = Counter(run.status for run in runs_here)
            found = ", ".join(f"{count} {status}" for status, count in sorted(statuses.items()))
            raise CompareError(f"{name}: no finished runs (found {found})")
    return list(loaded.values())


def load_wandb_runs(path: str) -> list[Run]:
    """Runs as W&B recorded them: a project (entity/project) or sweep (entity/project/sweep_id) via
    wandb.Api(), or a local folder of W&B run folders (offline runs, read with `wandb leet`).

    Summary, config and history map onto the run-folder structures; test predictions come from the
    run's file predictions/test.csv, which exists only if the training job uploaded it (wandb.save);
    without it the run counts as lacking predictions. Any failure to reach or read W&B becomes a
    one-line CompareError.
    """
    local = Path(path).is_dir()
    parts = path.strip("/").split("/")
    if not local and (len(parts) not in (2, 3) or not all(parts)):
        raise CompareError(f"--wandb wants entity/project, entity/project/sweep_id or a folder, got {path!r}")
    try:
        runs = _load_offline_wandb_runs(Path(path)) if local else _load_server_runs(path, parts)
    except CompareError:
        raise
    except Exception as exc:  # wandb raises many types (UsageError, CommError, HTTP errors)
        reason = " ".join(str(exc).split()) or type(exc).__name__
        raise CompareError(f"cannot read W&B runs from {path}: {reason}") from None
    if not any(run.status == COMPLETED for run in runs):
        raise CompareError(f"W&B {path}: no finished runs (found {len(runs)} runs)")
    return runs


def _load_server_runs(path: str, parts: list[str]) -> list[Run]:
    import wandb

    api = wandb.Api(timeout=WANDB_TIMEOUT_S)
    runs = []
    for wandb_run in (api.sweep(path).runs if len(parts) == 3 else api.runs(path)):
        def download(tmp: str, wandb_run=wandb_run) -> Path:
            wandb_run.file("predictions/test.csv").download(root=tmp, replace=True)
            return Path(tmp) / "predictions" / "test.csv"

        runs.append(_run_from_wandb(f"wandb:{'/'.join(wandb_run.path)}", dict(wandb_run.config),
                                    dict(wandb_run.summary_metrics), wandb_run.state,
                                    lambda wandb_run=wandb_run: wandb_run.scan_history(), download))
    return runs


def _load_offline_wandb_runs(folder: Path) -> list[Run]:
    from nexus.tracking import read_offline_run, read_offline_run_state

    runs = []
    for record_file in sorted(folder.rglob("run-*.wandb")):
        run_dir = record_file.parent
        state = read_offline_run_state(run_dir)
        csv_file = run_dir / "files" / "predictions" / "test.csv"
        runs.append(_run_from_wandb(
            str(run_dir), state["config"], state["summary"], state["state"],
            lambda run_dir=run_dir: [r["history"]["item"] for r in read_offline_run(run_dir) if r["type"] == "history"],
            lambda tmp, csv_file=csv_file: csv_file))
    if not runs:
        raise CompareError(f"{folder}: no W&B runs (no run-*.wandb below it)")
    return runs


def _run_from_wandb(source: str, config: dict, summary: dict, state: str, history, predictions_file) -> Run:
    """A W&B run as a Run: `history()` gives its logged rows, `predictions_file(tmp)` its test.csv."""
    summary = {k: v for k, v in summary.items() if not k.startswith("_")}
    config = flatten({k: v for k, v in config.items() if not k.startswith("_")})
    # W&B keeps each config group's option beside its dotted keys (pai: history, pai.mode: ...);
    # grouping reads the dotted keys, as it does for run folders.
    summary["config"] = {k: v for k, v in config.items() if not any(o.startswith(f"{k}.") for o in config)}
    # The W&B run state stands in for the harness's status when the summary does not carry one.
    state_to_status = {"finished": COMPLETED, "crashed": "failed", "failed": "failed", "killed": "interrupted"}
    summary.setdefault("status", state_to_status.get(state, state))
    run = Run(source=source, summary=summary, config=config_of(summary))
    if run.status == COMPLETED:
        # epoch -1 holds the zero-shot numbers; a restructure is marked on its epoch's row
        rows = [r for r in history() if isinstance(r.get("epoch"), (int, float)) and r["epoch"] >= 0]
        run.metrics = [{k: v for k, v in r.items() if not k.startswith("_")} for r in rows]
        run.events = [{"epoch": r["epoch"], "kind": r["pai/restructure"]} for r in rows if r.get("pai/restructure")]
        with tempfile.TemporaryDirectory() as tmp:
            try:
                run.test_predictions = read_predictions(predictions_file(tmp))
            except Exception:  # wandb signals a missing file with its own error types
                pass  # left as None: require_predictions() reports it with every other such run
    return run


def require_predictions(runs: Iterable[Run]) -> None:
    lacking = [run.source for run in runs if run.status == COMPLETED and run.test_predictions is None]
    if lacking:
        more = f" (and {len(lacking) - 1} more)" if len(lacking) > 1 else ""
        raise CompareError(f"finished run lacks predictions/test.csv: {lacking[0]}{more}")


# --------------------------------------------------------------------------------------------------
# Grouping and naming
# --------------------------------------------------------------------------------------------------


def _hashable(value: Any) -> str:
    return json.dumps(value, sort_keys=True, default=str)


def grouping_config(config: dict[str, Any]) -> dict[str, Any]:
    """The flattened config without what nexus.config.configuration leaves out (seed, paths, ...)."""
    return {key: value for key, value in config.items() if key.split(".")[0] not in NOT_CONFIGURATION}


def group_runs(runs: Iterable[Run]) -> list[Group]:
    """Completed runs grouped by grouping_config; groups are named and sorted baseline first."""
    by_key: dict[str, Group] = {}
    for run in runs:
        if run.status != COMPLETED:
            continue
        config = grouping_config(run.config)
        key = _hashable(config)
        by_key.setdefault(key, Group(config=config, runs=[])).runs.append(run)
    groups = list(by_key.values())
    for group in groups:
        group.runs.sort(key=lambda run: (run.seed is None, run.seed or 0, run.source))
        seeds = Counter(run.seed for run in group.runs)
        duplicated = [seed for seed, count in seeds.items() if count > 1]
        if duplicated:
            sources = [run.source for run in group.runs if run.seed == duplicated[0]]
            raise CompareError(
                f"two finished runs of one configuration share seed {duplicated[0]}: "
                f"{sources[0]} and {sources[1]}; pass only one of them"
            )
    name_groups(groups)
    groups.sort(key=lambda g: (g.pai_mode != BASELINE_MODE, g.name))
    return groups


def format_value(value: Any) -> str:
    if isinstance(value, str):
        return value
    return json.dumps(value)  # 1e-4 -> 0.0001, True -> true, lists as JSON


def differing_keys(groups: Sequence[Group]) -> list[str]:
    """Config keys whose value is not the same in every group (a key missing somewhere differs)."""
    keys = sorted({key for group in groups for key in group.config})
    return [
        key
        for key in keys
        if len({_hashable(group.config.get(key, "<missing>")) for group in groups}) > 1
    ]


def _label(key: str) -> str:
    return "pai" if key == "pai.mode" else key


def _names(groups: Sequence[Group], keys: Sequence[str]) -> list[str]:
    return [
        " ".join(f"{_label(key)}={format_value(group.config.get(key, '<missing>'))}" for key in keys)
        for group in groups
    ]


def name_groups(groups: Sequence[Group]) -> None:
    """Name each group by pai mode plus the keys that differ between groups, e.g. 'pai=history train.lr=0.0001'.

    Keys that experiment bundles set alongside the mode (experiment, train.max_epochs) are left out
    when the remaining keys still tell every group apart; the report lists all differing keys anyway.
    """
    keys = ["pai.mode"] + [key for key in differing_keys(groups) if key != "pai.mode"]
    for droppable in NAME_DROPPABLE_KEYS:
        fewer = [key for key in keys if key != droppable]
        if len(set(_names(groups, fewer))) == len(groups):
            keys = fewer
    for group, name in zip(groups, _names(groups, keys)):
        group.name = name


# --------------------------------------------------------------------------------------------------
# Baseline matching
# --------------------------------------------------------------------------------------------------


def _baseline_matching_config(config: dict[str, Any]) -> str:
    kept = {
        key: value
        for key, value in config.items()
        if key not in BASELINE_IGNORED_KEYS and not key.startswith(BASELINE_IGNORED_PREFIXES)
    }
    return _hashable(kept)


def select_group_by_name(groups: Sequence[Group], wanted: str) -> Group:
    """An exact group name, else the one group whose name contains `wanted`."""
    exact = [g for g in groups if g.name == wanted]
    matches = exact or [g for g in groups if wanted in g.name]
    names = "; ".join(g.name for g in groups)
    if not matches:
        raise CompareError(f"--baseline {wanted!r} matches no configuration (have: {names})")
    if len(matches) > 1:
        found = "; ".join(g.name for g in matches)
        raise CompareError(f"--baseline {wanted!r} is ambiguous, it matches: {found}")
    return matches[0]


def assign_baselines(groups: Sequence[Group], baseline_name: str | None = None) -> list[tuple[Group, Group]]:
    """(group, its baseline) for every group that is compared.

    With --baseline every other group is compared with the named one. Otherwise each group whose
    pai.mode is not 'disabled' is compared with the 'disabled' group whose config is equal apart from
    pai.*, experiment and train.max_epochs; none or several such groups is an error.
    """
    if baseline_name is not None:
        baseline = select_group_by_name(groups, baseline_name)
        return [(group, baseline) for group in groups if group is not baseline]
    baselines = [g for g in groups if g.pai_mode == BASELINE_MODE]
    pairs = []
    for group in groups:
        if group.pai_mode == BASELINE_MODE:
            continue
        wanted = _baseline_matching_config(group.config)
        matches = [b for b in baselines if _baseline_matching_config(b.config) == wanted]
        if not matches:
            raise CompareError(
                f"no baseline for {group.name!r}: no pai.mode=disabled runs with the same config "
                "(apart from pai.*, experiment, train.max_epochs); add baseline runs or pass --baseline NAME"
            )
        if len(matches) > 1:
            found = "; ".join(b.name for b in matches)
            raise CompareError(f"several baselines fit {group.name!r} ({found}); pass --baseline NAME")
        pairs.append((group, matches[0]))
    return pairs


# --------------------------------------------------------------------------------------------------
# Statistics
# --------------------------------------------------------------------------------------------------


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


def paired_test_predictions(group: Group, baseline: Group) -> tuple[list[int], np.ndarray, np.ndarray, np.ndarray]:
    """Seeds present in both groups, the shared gold scores and (seeds, n) predictions of each group.

    Every paired run must hold the same test rows with the same gold scores, or the comparison is off.
    """
    new_by_seed, base_by_seed = group.run_for_seed(), baseline.run_for_seed()
    seeds = sorted(s for s in new_by_seed.keys() & base_by_seed.keys() if s is not None)
    if not seeds:
        return [], np.empty(0), np.empty((0, 0)), np.empty((0, 0))
    reference = base_by_seed[seeds[0]]
    rows, gold = reference.test_predictions.rows, reference.test_predictions.gold
    for seed in seeds:
        for run in (new_by_seed[seed], base_by_seed[seed]):
            preds = run.test_predictions
            if preds.rows.shape != rows.shape or not np.array_equal(preds.rows, rows):
                raise CompareError(f"test rows differ between {reference.source} and {run.source}")
            if not np.allclose(preds.gold, gold, rtol=0, atol=1e-9):
                raise CompareError(f"test gold scores differ between {reference.source} and {run.source}")
    pred_new = np.stack([new_by_seed[s].test_predictions.pred for s in seeds])
    pred_base = np.stack([base_by_seed[s].test_predictions.pred for s in seeds])
    return seeds, gold, pred_new, pred_base


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


# --------------------------------------------------------------------------------------------------
# Plots (matplotlib's object API with the Agg canvas: no pyplot state, no display needed)
# --------------------------------------------------------------------------------------------------


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
    if len({g.pai_mode for g in groups}) < 2 or len({_hashable(g.config.get("train.lr")) for g in groups}) < 2:
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


# --------------------------------------------------------------------------------------------------
# Report rendering
# --------------------------------------------------------------------------------------------------


def fmt(value: Any, digits: int = 4, signed: bool = False) -> str:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "n/a"
    if isinstance(value, float):
        return f"{value:+.{digits}f}" if signed else f"{value:.{digits}f}"
    return str(value)


def _pm(mean: float, std: float) -> str:
    return f"{fmt(mean)} ± {fmt(std)}"


def _ci_text(low: float, high: float, signed: bool = False) -> str:
    if math.isnan(low):
        return "n/a"
    return f"[{fmt(low, signed=signed)}, {fmt(high, signed=signed)}]"


def summary_table(rows: Sequence[dict[str, Any]]) -> tuple[list[str], list[list[str]]]:
    header = [
        "configuration", "seeds", "best dev Spearman", "test Spearman", "test 95% CI (seeds)",
        "zero-shot test", "params", "dendrites", "epochs to best", "time/run (s)",
    ]
    body = []
    for row in rows:
        ci = _ci_text(row["test_spearman_ci_low"], row["test_spearman_ci_high"])
        if ci == "n/a":
            ci = f"n/a (< {MIN_SEEDS_FOR_CI} seeds)"
        body.append([
            row["configuration"],
            str(row["n_seeds"]),
            _pm(row["best_val_spearman_mean"], row["best_val_spearman_std"]),
            _pm(row["test_spearman_mean"], row["test_spearman_std"]),
            ci,
            fmt(row["zero_shot_test_spearman"]),
            fmt(row["params_mean"], 0),
            fmt(row["dendrites_mean"], 1),
            fmt(row["epochs_to_best_mean"], 1),
            fmt(row["time_per_run_s_mean"], 1),
        ])
    return header, body


def comparison_table(comparisons: Sequence[Comparison]) -> tuple[list[str], list[list[str]]]:
    header = [
        "configuration", "baseline", "paired seeds", "Δ test Spearman", "95% CI (paired bootstrap)",
        "Williams p per seed", "verdict",
    ]
    body = [
        [
            c.group.name,
            c.baseline.name,
            str(len(c.seeds)),
            fmt(c.delta, signed=True),
            _ci_text(*c.delta_ci, signed=True),
            ", ".join(f"{w.seed}: {w.p:.3g}" for w in c.williams) or "n/a",
            c.verdict,
        ]
        for c in comparisons
    ]
    return header, body


def verdict_line(c: Comparison) -> str:
    if not c.seeds:
        return f"{c.group.name} vs {c.baseline.name}: {c.verdict} (no seed in common)"
    return (
        f"{c.group.name} vs {c.baseline.name}: {c.verdict} "
        f"(Δ test Spearman {fmt(c.delta, signed=True)}, 95% CI {_ci_text(*c.delta_ci, signed=True)} "
        f"over {c.n_pairs} test pairs × {len(c.seeds)} seeds; Williams p < {ALPHA} in "
        f"{c.n_williams_significant} of {len(c.seeds)} seeds)"
    )


def config_difference_table(groups: Sequence[Group]) -> tuple[list[str], list[list[str]]]:
    keys = differing_keys(groups)
    body = [[g.name] + [format_value(g.config.get(key, "<missing>")) for key in keys] for g in groups]
    return ["configuration"] + keys, body


def failed_table(failed: Sequence[Run]) -> tuple[list[str], list[list[str]]]:
    body = [[run.source, run.status, str(run.summary.get("reason") or "")] for run in failed]
    return ["run", "status", "reason"], body


METHODS_TEXT = [
    f"Δ = mean over paired seeds of Spearman(configuration) − Spearman(baseline) on the test split. "
    f"Its 95% interval is a paired bootstrap ({PAIRED_BOOTSTRAP_RESAMPLES} resamples): test pairs are "
    "drawn with replacement (the same pairs for both models and all seeds) and seeds are drawn with "
    "replacement, each seed keeping its baseline partner.",
    "Williams' test (Steiger 1980, eq. 7) compares the two Spearman correlations with the gold scores "
    "of one seed, which are dependent because they share the gold scores.",
    f"Verdict: better/worse when the bootstrap interval excludes 0 and Williams' p < {ALPHA} in the "
    f"same direction for a majority of the paired seeds; '{VERDICT_TOO_FEW}' below "
    f"{MIN_SEEDS_FOR_CI} paired seeds.",
    f"Test 95% CI (seeds): percentile bootstrap of the mean over seeds (scipy.stats.bootstrap), "
    f"shown from {MIN_SEEDS_FOR_CI} seeds. Epochs to best counts training epochs up to the best-dev one.",
]


def _markdown_table(header: Sequence[str], body: Sequence[Sequence[str]]) -> str:
    def cells(row: Sequence[str]) -> str:
        return "| " + " | ".join(str(c).replace("|", "\\|") for c in row) + " |"

    return "\n".join([cells(header), cells(["---"] * len(header))] + [cells(row) for row in body])


def _html_table(header: Sequence[str], body: Sequence[Sequence[str]]) -> str:
    head = "".join(f"<th>{html.escape(h)}</th>" for h in header)
    rows = "".join("<tr>" + "".join(f"<td>{html.escape(str(c))}</td>" for c in row) + "</tr>" for row in body)
    return f"<table><thead><tr>{head}</tr></thead><tbody>{rows}</tbody></table>"


@dataclass
class ReportContent:
    """What the Markdown and HTML renderings share: (header, body) tables, verdict lines, PNG files."""

    summary: tuple[list[str], list[list[str]]]
    comparisons: tuple[list[str], list[list[str]]] | None
    verdicts: list[str]
    differences: tuple[list[str], list[list[str]]] | None
    failed: tuple[list[str], list[list[str]]] | None
    images: list[tuple[str, str]]  # (file name, caption)


def render_markdown(content: ReportContent) -> str:
    parts = ["# NEXUS comparison report", "", "## Configurations", "", _markdown_table(*content.summary), ""]
    if content.comparisons:
        parts += ["## Against the baseline", "", _markdown_table(*content.comparisons), "", "### Verdicts", ""]
        parts += [f"- {line}" for line in content.verdicts] + [""]
    if content.differences:
        parts += ["## What differs between configurations", "", _markdown_table(*content.differences), ""]
    if content.failed:
        parts += ["## Runs that did not complete", "", _markdown_table(*content.failed), ""]
    parts += ["## Plots", ""] + [f"![{caption}]({name})\n" for name, caption in content.images]
    parts += ["## Method", ""] + [f"- {line}" for line in METHODS_TEXT] + [""]
    return "\n".join(parts)


HTML_STYLE = """
body { font-family: sans-serif; margin: 2em; max-width: 1400px; }
table { border-collapse: collapse; margin: 1em 0; font-size: 0.9em; }
th, td { border: 1px solid #999; padding: 0.3em 0.6em; text-align: left; }
th { background: #eee; }
img { max-width: 100%; border: 1px solid #ddd; margin: 0.5em 0; }
"""


def render_html(content: ReportContent, out: Path) -> str:
    """Self-contained HTML: the PNGs are embedded as base64 data URIs."""
    parts = [
        "<!DOCTYPE html>",
        '<html lang="en"><head><meta charset="utf-8"><title>NEXUS comparison report</title>',
        f"<style>{HTML_STYLE}</style></head><body>",
        "<h1>NEXUS comparison report</h1>",
        "<h2>Configurations</h2>",
        _html_table(*content.summary),
    ]
    if content.comparisons:
        parts += ["<h2>Against the baseline</h2>", _html_table(*content.comparisons), "<h3>Verdicts</h3><ul>"]
        parts += [f"<li>{html.escape(line)}</li>" for line in content.verdicts] + ["</ul>"]
    if content.differences:
        parts += ["<h2>What differs between configurations</h2>", _html_table(*content.differences)]
    if content.failed:
        parts += ["<h2>Runs that did not complete</h2>", _html_table(*content.failed)]
    parts.append("<h2>Plots</h2>")
    for name, caption in content.images:
        encoded = base64.b64encode((out / name).read_bytes()).decode("ascii")
        parts.append(
            f'<figure><img alt="{html.escape(caption)}" src="data:image/png;base64,{encoded}">'
            f"<figcaption>{html.escape(caption)}</figcaption></figure>"
        )
    parts += ["<h2>Method</h2><ul>"] + [f"<li>{html.escape(line)}</li>" for line in METHODS_TEXT] + ["</ul>"]
    parts.append("</body></html>")
    return "\n".join(parts)


def write_table_csv(rows: Sequence[dict[str, Any]], path: Path) -> None:
    columns = list(rows[0].keys()) if rows else []
    with path.open("w", newline="", encoding="utf-8") as handle:
        writer = csv.DictWriter(handle, fieldnames=columns)
        writer.writeheader()
        for row in rows:
            writer.writerow({k: ("" if isinstance(v, float) and math.isnan(v) else v) for k, v in row.items()})


# --------------------------------------------------------------------------------------------------
# Orchestration
# --------------------------------------------------------------------------------------------------


def build_report(runs: Sequence[Run], out: Path, baseline_name: str | None = None) -> list[Comparison]:
    """Group, compare, plot and write every output file into `out`; returns the comparisons."""
    require_predictions(runs)
    groups = group_runs(runs)
    if not groups:
        raise CompareError("no finished runs to compare")
    failed = [run for run in runs if run.status != COMPLETED]
    pairs = assign_baselines(groups, baseline_name)
    comparisons = [compare_to_baseline(group, baseline) for group, baseline in pairs]
    comparison_of = {id(c.group): c for c in comparisons}

    rows = [summarize_group(g) | comparison_columns(comparison_of.get(id(g))) for g in groups]
    out.mkdir(parents=True, exist_ok=True)
    write_table_csv(rows, out / "table.csv")

    images = []
    panels = [[c.baseline, c.group] for c in comparisons] or [groups]
    plot_curves(panels, out / "curves.png")
    images.append(("curves.png", "Dev Spearman and train loss per epoch"))
    plot_test_spearman(rows, out / "test_spearman.png")
    images.append(("test_spearman.png", "Test Spearman per configuration (95% CI over seeds)"))
    if plot_lr_by_mode(groups, out / "lr_by_mode.png"):
        images.append(("lr_by_mode.png", "Best dev Spearman by learning rate and PAI mode"))

    content = ReportContent(
        summary=summary_table(rows),
        comparisons=comparison_table(comparisons) if comparisons else None,
        verdicts=[verdict_line(c) for c in comparisons],
        differences=config_difference_table(groups) if len(groups) > 1 else None,
        failed=failed_table(failed) if failed else None,
        images=images,
    )
    (out / "report.md").write_text(render_markdown(content), encoding="utf-8")
    (out / "report.html").write_text(render_html(content, out), encoding="utf-8")
    return comparisons


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="nexus-compare",
        description="Compare finished NEXUS runs (dendritic vs baseline) and write a report.",
    )
    parser.add_argument("dirs", nargs="*", metavar="DIR", help="run, sweep or Hydra multirun folders")
    parser.add_argument("--out", required=True, help="folder for report.md, report.html, table.csv, PNGs")
    parser.add_argument("--baseline", help="compare every configuration with this one (name or substring)")
    parser.add_argument(
        "--wandb", metavar="ENTITY/PROJECT[/SWEEP]",
        help="also read runs from W&B (a reachable server), or from a folder of W&B run folders (offline runs)"
    )
    return parser.parse_args(argv)


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    try:
        if not args.dirs and not args.wandb:
            raise CompareError("give at least one run folder or --wandb ENTITY/PROJECT")
        runs = load_folders(args.dirs)
        if args.wandb:
            runs += load_wandb_runs(args.wandb)
        out = Path(args.out)
        comparisons = build_report(runs, out, args.baseline)
    except CompareError as exc:
        message = " ".join(str(exc).split())  # one line, whatever the cause carried
        print(f"nexus-compare: error: {message}", file=sys.stderr)
        return 2
    for comparison in comparisons:
        print(verdict_line(comparison))
    print(f"report: {out / 'report.md'} and {out / 'report.html'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
