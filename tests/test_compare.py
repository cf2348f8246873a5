"""nexus.compare on synthetic run folders whose truth is known (no training, seconds to run)."""

from __future__ import annotations

import copy
import csv
import json
import shutil
import struct
import subprocess
from pathlib import Path

import numpy as np
import pytest
from scipy import stats

from nexus import compare
from nexus.errors import UserError
from nexus.compare import (
    Comparison,
    VERDICT_BETTER,
    VERDICT_SAME,
    VERDICT_TOO_FEW,
    VERDICT_WORSE,
    assign_baselines,
    compare_to_baseline,
    decide_verdict,
    group_runs,
    load_folders,
    main,
    paired_bootstrap_difference,
    seed_ci,
    WilliamsResult,
    williams_test,
)

N_PAIRS = 400
CHROMIUM = Path("/usr/bin/chromium")

# --------------------------------------------------------------------------------------------------
# Synthetic run folders, written exactly per the run-folder contract
# --------------------------------------------------------------------------------------------------

BASE_CONFIG = {
    "model": {"name_or_path": "sentence-transformers/all-MiniLM-L6-v2", "adapter": {"out_features": 384}},
    "data": {"name": "stsb", "limit": {"train": None, "val": None, "test": None}},
    "pai": {
        "mode": "disabled",
        "n_epochs_to_switch": 3,
        "max_dendrites": 3,
        "improvement_threshold": [0.001, 0.0001, 0.0],
    },
    "train": {"lr": 1e-4, "batch_size": 32, "weight_decay": 0.01, "max_epochs": 20, "optimizer": "adamw"},
    "logger": {"backend": "none"},
    "experiment": "baseline",
    "seed": 42,
    "paths": {"root": "/tmp/nexus", "runs_dir": "/tmp/nexus/runs", "cache_dir": "/tmp/nexus/cache"},
}


def make_gold(n: int = N_PAIRS, seed: int = 0) -> np.ndarray:
    """Gold scores in 0..1 on the STS grid (x/25), so there are ties as in the real data."""
    return np.round(np.random.default_rng(seed).random(n) * 25) / 25


def noisy(gold: np.ndarray, scale: float, seed: int) -> np.ndarray:
    return gold + np.random.default_rng(seed).normal(0.0, scale, gold.size)


def make_config(pai: str = "disabled", seed: int = 42, lr: float = 1e-4, **overrides) -> dict:
    """The resolved config of one run; overrides are dotted keys, e.g. {"logger.backend": "wandb"}."""
    config = copy.deepcopy(BASE_CONFIG)
    config["pai"]["mode"] = pai
    config["seed"] = seed
    config["train"]["lr"] = lr
    if pai != "disabled":
        config["experiment"] = "dendritic"
        config["train"]["max_epochs"] = 40
    for dotted, value in overrides.items():
        *parents, leaf = dotted.split(".")
        node = config
        for part in parents:
            node = node.setdefault(part, {})
        node[leaf] = value
    return config


def write_run(
    folder: Path,
    gold: np.ndarray | None = None,
    pred: np.ndarray | None = None,
    *,
    pai: str = "disabled",
    seed: int = 42,
    lr: float = 1e-4,
    status: str = "completed",
    reason: str | None = None,
    epochs: int = 6,
    restructure_epochs: tuple[int, ...] = (),
    with_predictions: bool = True,
    config_overrides: dict | None = None,
) -> Path:
    """A run folder: summary.json, metrics.jsonl, events.jsonl, predictions/{val,test}.csv."""
    folder.mkdir(parents=True)
    config = make_config(pai, seed, lr, **(config_overrides or {}))
    summary = {
        "status": status,
        "reason": reason,
        "experiment": config["experiment"],
        "seed": seed,
        "pai": pai,
        "config": config,
    }
    if status == "completed":
        test_spearman = float(stats.spearmanr(gold, pred).statistic)
        dendrites = len(restructure_epochs)
        summary |= {
            "best/val_spearman": test_spearman + 0.01,
            "best/epoch": epochs - 2,
            "test/spearman": test_spearman,
            "test/pearson": float(stats.pearsonr(gold, pred).statistic),
            "zero_shot/val_spearman": 0.82,
            "zero_shot/test_spearman": 0.80,
            "pai/dendrites": dendrites,
            "pai/params": 147840 * (1 + dendrites),
            "pai/restructures": dendrites,
            "epochs": epochs,
            "time/total_s": 12.5,
        }
        metrics = [
            {
                "epoch": epoch,
                "train/loss": 0.1 / (epoch + 1) + 0.001 * seed,
                "val/spearman": test_spearman - 0.05 / (epoch + 1),
                "val/pearson": test_spearman - 0.06 / (epoch + 1),
                "pai/mode": "n" if pai != "disabled" else "disabled",
                "pai/dendrites": sum(e <= epoch for e in restructure_epochs),
                "pai/params": 147840,
                "time/epoch_s": 2.0,
            }
            for epoch in range(epochs)
        ]
        (folder / "metrics.jsonl").write_text("".join(json.dumps(m) + "\n" for m in metrics))
        events = [
            {"epoch": e, "kind": "dendrites_added", "dendrites": i + 1, "params": 147840 * (i + 2)}
            for i, e in enumerate(restructure_epochs)
        ]
        (folder / "events.jsonl").write_text("".join(json.dumps(e) + "\n" for e in events))
        if with_predictions:
            (folder / "predictions").mkdir()
            for split in ("val", "test"):
                lines = ["row,line,gold,pred"] + [
                    f"{row},{row + 1},{float(g)!r},{float(p)!r}" for row, (g, p) in enumerate(zip(gold, pred))
                ]
                (folder / "predictions" / f"{split}.csv").write_text("\n".join(lines) + "\n")
    (folder / "summary.json").write_text(json.dumps(summary, indent=2))
    return folder


def write_pair_sweep(
    root: Path,
    baseline_noise: float,
    dendritic_noise: float,
    seeds=(1, 2, 3),
    identical: bool = False,
    pai: str = "history",
) -> Path:
    """Baseline and one dendritic mode at the same lr, one folder per (mode, seed), like a multirun."""
    gold = make_gold()
    for number, seed in enumerate(seeds):
        base_pred = noisy(gold, baseline_noise, seed=100 + seed)
        dend_pred = base_pred.copy() if identical else noisy(gold, dendritic_noise, seed=200 + seed)
        write_run(root / "multirun" / f"{2 * number}", gold, base_pred, pai="disabled", seed=seed)
        write_run(
            root / "multirun" / f"{2 * number + 1}", gold, dend_pred, pai=pai, seed=seed,
            restructure_epochs=(2, 4),
        )
    return root


def comparisons_for(*folders: Path, baseline: str | None = None):
    groups = group_runs(load_folders([str(f) for f in folders]))
    return [compare_to_baseline(g, b) for g, b in assign_baselines(groups, baseline)]


def run_main(capsys, *argv: str) -> tuple[int, str, str]:
    code = main([str(a) for a in argv])
    captured = capsys.readouterr()
    return code, captured.out, captured.err


def assert_one_line_error(err: str, *fragments: str) -> None:
    lines = err.strip().splitlines()
    assert len(lines) == 1, err
    assert lines[0].startswith("error: ")
    assert "Traceback" not in err
    for fragment in fragments:
        assert fragment in lines[0], lines[0]


# --------------------------------------------------------------------------------------------------
# Verdicts
# --------------------------------------------------------------------------------------------------


def test_identical_predictions_give_no_significant_difference(tmp_path):
    write_pair_sweep(tmp_path, 0.2, 0.2, identical=True)
    [comparison] = comparisons_for(tmp_path)
    assert comparison.verdict == VERDICT_SAME
    assert comparison.seeds == [1, 2, 3]
    assert comparison.delta == 0.0
    low, high = comparison.delta_ci
    assert low <= 0.0 <= high
    assert all(w.t == 0.0 and w.p == 1.0 for w in comparison.williams)


@pytest.mark.parametrize(
    ("baseline_noise", "dendritic_noise", "verdict", "sign"),
    [(0.3, 0.05, VERDICT_BETTER, 1), (0.05, 0.3, VERDICT_WORSE, -1)],
)
def test_less_noise_is_better_and_more_noise_is_worse(tmp_path, baseline_noise, dendritic_noise, verdict, sign):
    write_pair_sweep(tmp_path, baseline_noise, dendritic_noise)
    [comparison] = comparisons_for(tmp_path)
    assert comparison.group.pai_mode == "history"
    assert comparison.baseline.pai_mode == "disabled"
    assert comparison.verdict == verdict
    # the interval excludes 0 on the expected side and holds the observed difference
    low, high = comparison.delta_ci
    assert sign * low > 0 and sign * high > 0
    assert low <= comparison.delta <= high
    # the observed difference is the mean over seeds of the per-seed Spearman differences
    per_seed = [w.r_new - w.r_base for w in comparison.williams]
    assert comparison.delta == pytest.approx(np.mean(per_seed), abs=1e-12)
    assert sign * comparison.delta > 0.1
    assert comparison.n_williams_significant == 3
    assert all(w.p < 1e-6 and np.sign(w.t) == sign for w in comparison.williams)


def test_two_seeds_are_too_few_to_tell_but_numbers_are_shown(tmp_path):
    write_pair_sweep(tmp_path, 0.3, 0.05, seeds=(1, 2))
    [comparison] = comparisons_for(tmp_path)
    assert comparison.verdict == VERDICT_TOO_FEW
    assert len(comparison.williams) == 2
    assert comparison.delta > 0.1 and comparison.delta_ci[0] > 0


def test_only_seeds_present_in_both_groups_are_paired(tmp_path):
    gold = make_gold()
    for seed in (1, 2, 3, 4):
        write_run(tmp_path / f"b{seed}", gold, noisy(gold, 0.3, seed), seed=seed)
    for seed in (2, 3, 4, 5):
        write_run(tmp_path / f"d{seed}", gold, noisy(gold, 0.05, seed + 10), pai="fixed", seed=seed)
    [comparison] = comparisons_for(tmp_path)
    assert comparison.seeds == [2, 3, 4]
    assert [w.seed for w in comparison.williams] == [2, 3, 4]
    assert comparison.verdict == VERDICT_BETTER


def test_different_test_rows_or_gold_are_an_error(tmp_path):
    gold = make_gold()
    other_gold = gold.copy()
    other_gold[7] = 1.0 - other_gold[7] if other_gold[7] != 0.5 else 0.1
    write_run(tmp_path / "b", gold, noisy(gold, 0.3, 1), seed=1)
    write_run(tmp_path / "d", other_gold, noisy(gold, 0.05, 2), pai="history", seed=1)
    with pytest.raises(UserError, match="gold scores differ"):
        comparisons_for(tmp_path)
    shutil.rmtree(tmp_path / "d")
    write_run(tmp_path / "d", gold[:-1], noisy(gold, 0.05, 2)[:-1], pai="history", seed=1)
    with pytest.raises(UserError, match="test rows differ"):
        comparisons_for(tmp_path)


# --------------------------------------------------------------------------------------------------
# Grouping, naming and baseline matching
# --------------------------------------------------------------------------------------------------


def test_grouping_ignores_the_seed_paths_logger_hydra_resume_and_nothing_else(tmp_path):
    gold = make_gold()
    pred = noisy(gold, 0.1, 0)
    write_run(tmp_path / "a", gold, pred, pai="history", seed=1)
    write_run(tmp_path / "b", gold, pred, pai="history", seed=2)  # differs in seed only
    write_run(
        tmp_path / "c", gold, pred, pai="history", seed=3,
        config_overrides={
            "paths.root": "/elsewhere", "logger.backend": "wandb", "logger.project": "x",
            "hydra.job.num": 7, "resume": "/tmp/nexus/runs/old",
        },
    )
    write_run(tmp_path / "d", gold, pred, pai="history", seed=1, lr=1e-3)  # differs in lr
    write_run(tmp_path / "e", gold, pred, pai="history", seed=1, config_overrides={"train.batch_size": 64})
    groups = group_runs(load_folders([str(tmp_path)]))
    by_name = {g.name: sorted(Path(r.source).name for r in g.runs) for g in groups}
    assert by_name == {
        "pai=history train.batch_size=32 train.lr=0.0001": ["a", "b", "c"],
        "pai=history train.batch_size=32 train.lr=0.001": ["d"],
        "pai=history train.batch_size=64 train.lr=0.0001": ["e"],
    }


def test_group_names_leave_out_bundle_keys_and_baseline_matches_across_them(tmp_path):
    gold = make_gold()
    for lr in (1e-4, 1e-3):
        write_run(tmp_path / f"base-{lr}", gold, noisy(gold, 0.2, 1), seed=1, lr=lr)
        # dendritic runs also differ in experiment, train.max_epochs and a PAI knob: still matched
        write_run(
            tmp_path / f"dend-{lr}", gold, noisy(gold, 0.2, 2), pai="history", seed=1, lr=lr,
            config_overrides={"pai.n_epochs_to_switch": 5},
        )
    groups = group_runs(load_folders([str(tmp_path)]))
    names = [g.name for g in groups]
    assert names == [
        "pai=disabled pai.n_epochs_to_switch=3 train.lr=0.0001",
        "pai=disabled pai.n_epochs_to_switch=3 train.lr=0.001",
        "pai=history pai.n_epochs_to_switch=5 train.lr=0.0001",
        "pai=history pai.n_epochs_to_switch=5 train.lr=0.001",
    ]
    pairs = {g.name: b.name for g, b in assign_baselines(groups)}
    assert pairs == {
        names[2]: names[0],  # same lr, whatever pai.*, experiment and train.max_epochs say
        names[3]: names[1],
    }


def test_missing_ambiguous_and_named_baselines(tmp_path):
    gold = make_gold()
    write_run(tmp_path / "dend", gold, noisy(gold, 0.1, 1), pai="history", seed=1, lr=1e-3)
    write_run(tmp_path / "fixed", gold, noisy(gold, 0.1, 2), pai="fixed", seed=1, lr=1e-3)
    write_run(tmp_path / "base", gold, noisy(gold, 0.1, 3), seed=1, lr=1e-4)  # other lr: no match
    groups = group_runs(load_folders([str(tmp_path)]))
    with pytest.raises(UserError, match="no baseline for 'pai=fixed"):
        assign_baselines(groups)
    pairs = assign_baselines(groups, "pai=disabled")
    assert sorted(g.name for g, _ in pairs) == ["pai=fixed train.lr=0.001", "pai=history train.lr=0.001"]
    assert {b.name for _, b in pairs} == {"pai=disabled train.lr=0.0001"}
    with pytest.raises(UserError, match="ambiguous"):
        assign_baselines(groups, "train.lr=0.001")
    with pytest.raises(UserError, match="matches no configuration"):
        assign_baselines(groups, "pai=every_epoch")


def test_two_runs_of_one_configuration_with_the_same_seed_are_an_error(tmp_path):
    gold = make_gold()
    write_run(tmp_path / "first", gold, noisy(gold, 0.1, 1), seed=1)
    write_run(tmp_path / "again", gold, noisy(gold, 0.1, 2), seed=1)
    with pytest.raises(UserError, match="share seed 1"):
        group_runs(load_folders([str(tmp_path)]))


# --------------------------------------------------------------------------------------------------
# Statistics
# --------------------------------------------------------------------------------------------------


def test_williams_test_textbook_case():
    # Steiger (1980) case A, as in R psych::r.test(n=103, r12=.4, r13=.5, r23=.1) -> t = -0.89, p = 0.37.
    # By hand: |R| = 1 - .16 - .25 - .01 + 2(.4)(.5)(.1) = 0.62; rbar = .45;
    # denominator = 2(102/100)(0.62) + .45^2 (.9)^3 = 1.2648 + 0.1476225 = 1.4124225;
    # t = -0.1 * sqrt(102 * 1.1 / 1.4124225) = -0.1 * sqrt(79.43794...) = -0.891280
    t, p = williams_test(0.4, 0.5, 0.1, 103)
    assert t == pytest.approx(-0.891280, abs=1e-6)
    assert p == pytest.approx(2 * stats.t.sf(0.891280, 100), abs=1e-6)
    assert p == pytest.approx(0.3749, abs=1e-4)


def test_williams_test_is_antisymmetric_and_zero_for_equal_correlations():
    t, p = williams_test(0.7, 0.6, 0.8, 400)
    t_swapped, p_swapped = williams_test(0.6, 0.7, 0.8, 400)
    assert t > 0 and t_swapped == pytest.approx(-t) and p_swapped == pytest.approx(p)
    assert williams_test(0.8, 0.8, 1.0, 400) == (0.0, 1.0)  # identical predictors
    assert williams_test(0.8, 0.8, 0.5, 400) == (0.0, 1.0)
    # more pairs, same correlations: stronger evidence
    assert williams_test(0.7, 0.6, 0.8, 4000)[1] < p
    with pytest.raises(ValueError):
        williams_test(0.7, 0.6, 0.8, 3)


def test_bootstrap_resample_spearman_equals_scipy_on_the_resampled_rows():
    """The count-based ranks give exactly scipy's Spearman of explicitly resampled (tied) data."""
    gold = make_gold(300)
    pred = noisy(gold, 0.2, 1)
    rng = np.random.default_rng(5)
    drawn = rng.integers(0, gold.size, size=(4, gold.size))
    counts = np.stack([np.bincount(d, minlength=gold.size) for d in drawn]).astype(float)
    fast = compare.stats._weighted_corr(
        compare.stats._ResampledRanks(gold).ranks(counts), compare.stats._ResampledRanks(pred).ranks(counts), counts
    )
    expected = [stats.spearmanr(gold[d], pred[d]).statistic for d in drawn]
    np.testing.assert_allclose(fast, expected, atol=1e-12)


def test_paired_bootstrap_is_reproducible_on_full_test_size():
    gold = make_gold(1379)
    pred_new = np.stack([noisy(gold, 0.20, s) for s in range(3)])
    pred_base = np.stack([noisy(gold, 0.22, 10 + s) for s in range(3)])
    observed, ci, differences = paired_bootstrap_difference(gold, pred_new, pred_base)
    assert differences.shape == (2000,)
    assert ci[0] < observed < ci[1]
    assert paired_bootstrap_difference(gold, pred_new, pred_base)[1] == ci


def test_paired_bootstrap_matches_scipy_paired_bootstrap_with_one_seed():
    """With one seed only the test pairs are resampled: scipy.stats.bootstrap(paired=True) is a reference."""
    gold = make_gold(300)
    pred_new, pred_base = noisy(gold, 0.20, 1), noisy(gold, 0.30, 2)
    observed, (low, high), differences = paired_bootstrap_difference(gold, pred_new[None], pred_base[None])

    def difference(g, a, b):
        return stats.spearmanr(g, a).statistic - stats.spearmanr(g, b).statistic

    reference = stats.bootstrap(
        (gold, pred_new, pred_base), difference, paired=True, vectorized=False, n_resamples=1000,
        method="percentile", rng=np.random.default_rng(3),
    )
    assert observed == pytest.approx(difference(gold, pred_new, pred_base), abs=1e-12)
    assert differences.std() == pytest.approx(reference.standard_error, rel=0.15)
    assert low == pytest.approx(reference.confidence_interval.low, abs=0.2 * (high - low))
    assert high == pytest.approx(reference.confidence_interval.high, abs=0.2 * (high - low))
    assert high - low > 0.02  # the test-pair noise is real, not collapsed by the seed resampling


def test_paired_bootstrap_interval_covers_the_spread_between_seeds():
    """Seeds that disagree widen the interval: the seeds are resampled, not just the test pairs."""
    gold = make_gold(1379)
    pred_new = np.stack([noisy(gold, scale, seed) for seed, scale in enumerate((0.05, 0.2, 0.35))])
    pred_base = np.stack([noisy(gold, 0.35, 10 + seed) for seed in range(3)])
    per_seed = [
        stats.spearmanr(gold, new).statistic - stats.spearmanr(gold, base).statistic
        for new, base in zip(pred_new, pred_base)
    ]
    observed, (low, high), _ = paired_bootstrap_difference(gold, pred_new, pred_base)
    assert observed == pytest.approx(np.mean(per_seed), abs=1e-12)
    assert max(per_seed) - min(per_seed) > 0.2
    assert high - low > 0.5 * (max(per_seed) - min(per_seed))
    assert low < np.mean(per_seed) < high


def test_williams_seeds_count_only_in_the_direction_of_the_difference():
    def williams(seed, t, p):
        return WilliamsResult(seed, r_new=0.8, r_base=0.7, r_between=0.9, t=t, p=p)

    comparison = Comparison(
        group=None, baseline=None, seeds=[1, 2, 3], n_pairs=400, delta=0.02, delta_ci=(0.01, 0.03),
        williams=[williams(1, 3.0, 0.003), williams(2, -3.0, 0.003), williams(3, 2.5, 0.2)], verdict="",
    )
    assert comparison.n_williams_significant == 1


def test_verdict_needs_interval_and_williams_majority():
    assert decide_verdict(3, (0.01, 0.03), n_williams_significant=2) == VERDICT_BETTER
    assert decide_verdict(3, (-0.03, -0.01), n_williams_significant=2) == VERDICT_WORSE
    assert decide_verdict(3, (0.01, 0.03), n_williams_significant=1) == VERDICT_SAME
    assert decide_verdict(4, (0.01, 0.03), n_williams_significant=2) == VERDICT_SAME  # 2 of 4 is no majority
    assert decide_verdict(3, (-0.01, 0.03), n_williams_significant=3) == VERDICT_SAME
    assert decide_verdict(2, (0.01, 0.03), n_williams_significant=2) == VERDICT_TOO_FEW


def test_seed_ci_needs_three_seeds():
    assert seed_ci([0.80, 0.81]) is None
    low, high = seed_ci([0.80, 0.81, 0.83, 0.82])
    assert 0.80 <= low < 0.815 < high <= 0.83
    assert seed_ci([0.8, 0.8, 0.8]) == (0.8, 0.8)


# --------------------------------------------------------------------------------------------------
# The command line: files written and errors
# --------------------------------------------------------------------------------------------------


def write_lr_mode_sweep(root: Path) -> Path:
    """Baseline + history at two lrs, 3 seeds, plus one failed run: what a small sweep leaves behind."""
    gold = make_gold()
    for lr in (1e-4, 1e-3):
        for seed in (1, 2, 3):
            write_run(root / f"disabled-{lr}-{seed}", gold, noisy(gold, 0.3, seed), seed=seed, lr=lr)
            write_run(
                root / f"history-{lr}-{seed}", gold, noisy(gold, 0.05, 10 + seed), pai="history",
                seed=seed, lr=lr, restructure_epochs=(2, 4),
            )
    write_run(root / "history-crashed", pai="history", seed=4, status="failed", reason="CUDA out of memory")
    return root


def test_main_writes_report_table_and_plots(tmp_path, capsys):
    runs = write_lr_mode_sweep(tmp_path / "sweep")
    out = tmp_path / "report"
    code, stdout, stderr = run_main(capsys, runs, "--out", out)
    assert code == 0, stderr
    assert "better" in stdout

    for name in ("report.md", "report.html", "table.csv", "curves.png", "test_spearman.png", "lr_by_mode.png",
                 "params_vs_test.png", "forest.png"):
        assert (out / name).is_file(), name
    for png in out.glob("*.png"):
        assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and png.stat().st_size > 5000

    with (out / "table.csv").open() as handle:
        rows = list(csv.DictReader(handle))
    assert [r["configuration"] for r in rows] == [
        "pai=disabled train.lr=0.0001",
        "pai=disabled train.lr=0.001",
        "pai=history train.lr=0.0001",
        "pai=history train.lr=0.001",
    ]
    assert [r["n_seeds"] for r in rows] == ["3"] * 4
    assert [r["verdict"] for r in rows] == ["", "", "better", "better"]
    history = rows[2]
    assert history["baseline"] == "pai=disabled train.lr=0.0001"
    assert float(history["dendrites_mean"]) == 2.0
    assert float(history["epochs_to_best_mean"]) == 5.0  # best/epoch 4 (0-based) -> 5 epochs
    assert float(history["delta_ci_low"]) > 0
    assert float(history["test_spearman_ci_low"]) <= float(history["test_spearman_mean"]) <= float(
        history["test_spearman_ci_high"]
    )
    assert float(history["zero_shot_test_spearman"]) == pytest.approx(0.80)

    report = (out / "report.md").read_text(encoding="utf-8")
    assert "| configuration | seeds | best dev Spearman | test Spearman |" in report
    assert "| pai=history train.lr=0.001 | 3 |" in report
    assert "- pai=history train.lr=0.0001 vs pai=disabled train.lr=0.0001: better (Δ test Spearman +" in report
    assert "CUDA out of memory" in report and "history-crashed" in report
    assert "![Dev Spearman and train loss per epoch](curves.png)" in report

    page = (out / "report.html").read_text(encoding="utf-8")
    assert page.count("data:image/png;base64,") == 5
    assert 'src="curves.png"' not in page  # self-contained: no links to files


def test_main_without_lr_and_mode_variation_has_no_lr_plot_and_ci_not_available(tmp_path, capsys):
    write_pair_sweep(tmp_path / "runs", 0.3, 0.05, seeds=(1, 2))
    out = tmp_path / "out"
    code, stdout, stderr = run_main(capsys, tmp_path / "runs", "--out", out)
    assert code == 0, stderr
    assert not (out / "lr_by_mode.png").exists()
    report = (out / "report.md").read_text(encoding="utf-8")
    assert "too few seeds to tell" in report
    assert "n/a (< 3 seeds)" in report


def test_no_finished_runs_is_a_one_line_error(tmp_path, capsys):
    write_run(tmp_path / "runs" / "0", pai="history", status="failed", reason="boom")
    write_run(tmp_path / "runs" / "1", pai="history", status="interrupted", reason="SIGTERM", seed=2)
    code, _, err = run_main(capsys, tmp_path / "runs", "--out", tmp_path / "out")
    assert code == 2
    assert_one_line_error(err, "no finished runs", "1 failed", "1 interrupted")
    assert not (tmp_path / "out").exists()


def test_folder_without_run_folders_is_a_one_line_error(tmp_path, capsys):
    (tmp_path / "empty").mkdir()
    code, _, err = run_main(capsys, tmp_path / "empty", "--out", tmp_path / "out")
    assert code == 2
    assert_one_line_error(err, "no run folders")


def test_missing_predictions_is_a_one_line_error(tmp_path, capsys):
    write_pair_sweep(tmp_path / "runs", 0.2, 0.1)
    gold = make_gold()
    write_run(tmp_path / "runs" / "late", gold, gold, pai="history", seed=9, with_predictions=False)
    code, _, err = run_main(capsys, tmp_path / "runs", "--out", tmp_path / "out")
    assert code == 2
    assert_one_line_error(err, "lacks predictions/test.csv", "late")


def test_missing_folder_and_no_inputs_are_one_line_errors(tmp_path, capsys):
    code, _, err = run_main(capsys, tmp_path / "nope", "--out", tmp_path / "out")
    assert code == 2
    assert_one_line_error(err, "no such folder", "nope")
    code, _, err = run_main(capsys, "--out", tmp_path / "out")
    assert code == 2
    assert_one_line_error(err, "at least one run folder")


def test_bad_baseline_name_is_a_one_line_error(tmp_path, capsys):
    write_pair_sweep(tmp_path / "runs", 0.2, 0.1)
    code, _, err = run_main(capsys, tmp_path / "runs", "--out", tmp_path / "out", "--baseline", "pai=fixed")
    assert code == 2
    assert_one_line_error(err, "matches no configuration")


def _isolated_wandb_env(monkeypatch, tmp_path, api_key: str | None, base_url: str | None = None) -> None:
    """No user settings, netrc or key leak in; nothing is written outside tmp_path."""
    monkeypatch.delenv("WANDB_API_KEY", raising=False)
    monkeypatch.setenv("WANDB_CONFIG_DIR", str(tmp_path / "wandb-config"))
    monkeypatch.setenv("WANDB_DIR", str(tmp_path / "wandb-dir"))
    monkeypatch.setenv("WANDB_CACHE_DIR", str(tmp_path / "wandb-cache"))
    monkeypatch.setenv("NETRC", str(tmp_path / "netrc"))
    monkeypatch.setenv("WANDB_MODE", "online")
    if api_key:
        monkeypatch.setenv("WANDB_API_KEY", api_key)
    if base_url:
        monkeypatch.setenv("WANDB_BASE_URL", base_url)


def test_wandb_without_credentials_is_the_users_mistake_exit_code_2(tmp_path, monkeypatch, capsys):
    _isolated_wandb_env(monkeypatch, tmp_path, api_key=None)
    code, _, err = run_main(capsys, "--wandb", "someone/nexus", "--out", tmp_path / "out")
    assert code == 2
    assert err == "error: no W&B API key: run `wandb login` (or set WANDB_API_KEY)\n"


def test_wandb_unreachable_server_is_a_failure_while_working_exit_code_1(tmp_path, monkeypatch, capsys):
    _isolated_wandb_env(monkeypatch, tmp_path, api_key="a" * 40, base_url="http://127.0.0.1:9")
    monkeypatch.setattr(compare.runs, "WANDB_TIMEOUT_S", 1)
    code, _, err = run_main(capsys, "--wandb", "someone/nexus/abc123", "--out", tmp_path / "out")
    assert code == 1
    assert_one_line_error(err, "cannot read W&B runs from someone/nexus/abc123", "127.0.0.1:9")


def test_wandb_bad_path_is_a_one_line_error(tmp_path, capsys):
    code, _, err = run_main(capsys, "--wandb", "just-a-project", "--out", tmp_path / "out")
    assert code == 2
    assert_one_line_error(err, "entity/project")


# --------------------------------------------------------------------------------------------------
# The HTML report in a real browser
# --------------------------------------------------------------------------------------------------


def _chromium(profile: Path, *args: str) -> subprocess.CompletedProcess:
    command = [
        str(CHROMIUM), "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
        "--disable-background-networking", "--disable-component-update", "--disable-sync",
        "--disable-dev-shm-usage", f"--user-data-dir={profile}", *args,
    ]
    return subprocess.run(command, capture_output=True, text=True, timeout=120)


@pytest.mark.skipif(not CHROMIUM.exists(), reason="chromium not installed (apt-get install -y chromium)")
def test_html_report_renders_in_headless_chromium(tmp_path, capsys):
    write_pair_sweep(tmp_path / "runs", 0.3, 0.05)
    out = tmp_path / "out"
    assert run_main(capsys, tmp_path / "runs", "--out", out)[0] == 0
    url = (out / "report.html").resolve().as_uri()

    dom = _chromium(tmp_path / "profile-dom", "--dump-dom", url)
    assert dom.returncode == 0, dom.stderr[-2000:]
    assert "<table>" in dom.stdout
    assert "<td>pai=history</td>" in dom.stdout
    assert "pai=history vs pai=disabled: better" in dom.stdout
    # every plot the report wrote is inline in the page
    plots = list(out.glob("*.png"))
    assert len(plots) >= 2 and dom.stdout.count("data:image/png;base64,") == len(plots)

    screenshot = tmp_path / "page.png"
    shot = _chromium(tmp_path / "profile-shot", f"--screenshot={screenshot}", "--window-size=1200,2000", url)
    assert shot.returncode == 0, shot.stderr[-2000:]
    data = screenshot.read_bytes()
    assert data[:8] == b"\x89PNG\r\n\x1a\n"
    width, height = struct.unpack(">II", data[16:24])  # IHDR
    assert (width, height) == (1200, 2000)
    assert len(data) > 20_000  # a blank page compresses to a few KB; tables and plots do not


def test_param_matched_compares_dendrites_with_a_plain_adapter_of_their_size(tmp_path, capsys):
    """One dendrite (295,680 trained parameters) against the same-recipe Dense baseline and against
    a plain MLP of 295,680; two dendrites find no plain adapter of their size and say so."""
    gold = make_gold()
    mlp = {"model.adapter.kind": "mlp", "model.adapter.hidden": 384, "model.adapter.depth": 2}
    for seed in (1, 2, 3):
        write_run(tmp_path / f"dense-{seed}", gold, noisy(gold, 0.26, 100 + seed), seed=seed)
        write_run(tmp_path / f"one-{seed}", gold, noisy(gold, 0.20, 200 + seed), pai="history", seed=seed,
                  restructure_epochs=(2,))
        write_run(tmp_path / f"two-{seed}", gold, noisy(gold, 0.20, 300 + seed), pai="fixed", seed=seed,
                  restructure_epochs=(2, 4))
        folder = write_run(tmp_path / f"mlp-{seed}", gold, noisy(gold, 0.14, 400 + seed), seed=seed,
                           config_overrides=mlp)
        summary = json.loads((folder / "summary.json").read_text())
        (folder / "summary.json").write_text(json.dumps({**summary, "pai/params": 295680}))
    code, out, _ = run_main(capsys, tmp_path, "--out", tmp_path / "report", "--param-matched")
    assert code == 0
    report = (tmp_path / "report" / "report.md").read_text()
    section = report.split("## Against a parameter-matched plain adapter")[1].split("\n## ")[0]
    lines = [line for line in section.splitlines() if line.startswith("- ")]
    (one,) = [line for line in lines if line.startswith("- pai=history")]
    (two,) = [line for line in lines if line.startswith("- pai=fixed")]
    assert "(295,680 trained parameters) vs " in one and "model.adapter.kind=mlp (295,680)" in one
    assert VERDICT_WORSE in one  # the plain MLP of that size does better than the dendrite
    assert "(443,520 trained parameters): no plain adapter" in two
    verdicts = [line for line in out.splitlines() if " vs " in line]
    assert len(verdicts) == 3  # two against the Dense baseline, one against the MLP
    assert sum(VERDICT_BETTER in line for line in verdicts) == 2  # the dendrites beat the plain Dense layer
# --------------------------------------------------------------------------------------------------
# Parameters against test Spearman, the forest plot, and each run's results.md
# --------------------------------------------------------------------------------------------------


def add_results_md(folder: Path, architectures: list[dict] | None = None) -> None:
    """results.md as a run writes it (nexus.results), from the synthetic run's own files."""
    from nexus.results import write_results

    summary = json.loads((folder / "summary.json").read_text())
    if architectures is not None:
        summary["pai/architectures"] = architectures
        (folder / "summary.json").write_text(json.dumps(summary))
    metrics, events = ([json.loads(line) for line in (folder / name).read_text().splitlines()]
                       for name in ("metrics.jsonl", "events.jsonl"))
    write_results(folder, metrics, events, summary)


def test_params_plot_and_forest_plot_are_written_and_referenced(tmp_path, capsys):
    runs = write_pair_sweep(tmp_path / "runs", 0.3, 0.05)
    for folder in sorted((runs / "multirun").iterdir())[1::2]:  # the dendritic runs: tested architectures
        add_results_md(folder, [{"dendrites": d, "params": 147840 * (1 + d), "epochs": 2, "best_val_spearman": 0.8,
                                 "best_epoch": 2 * d, "test_spearman": 0.80 + 0.01 / (1 + d)} for d in range(3)])
    out = tmp_path / "out"
    code, _, stderr = run_main(capsys, runs, "--out", out)
    assert code == 0, stderr
    report = (out / "report.md").read_text(encoding="utf-8")
    assert "](params_vs_test.png)" in report and "](forest.png)" in report
    for name in ("params_vs_test.png", "forest.png"):
        assert (out / name).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert (out / "report.html").read_text(encoding="utf-8").count("data:image/png;base64,") == 4


def test_baselines_alone_have_a_params_plot_but_no_forest_plot(tmp_path, capsys):
    gold = make_gold()
    for seed in (1, 2, 3):
        write_run(tmp_path / "runs" / str(seed), gold, noisy(gold, 0.3, seed), seed=seed)
    code, _, stderr = run_main(capsys, tmp_path / "runs", "--out", tmp_path / "out")
    assert code == 0, stderr
    assert (tmp_path / "out" / "params_vs_test.png").is_file()
    assert not (tmp_path / "out" / "forest.png").exists()
    assert "forest.png" not in (tmp_path / "out" / "report.md").read_text(encoding="utf-8")


def test_each_paired_runs_results_md_gets_its_difference_and_interval(tmp_path, capsys):
    runs = write_pair_sweep(tmp_path / "runs", 0.3, 0.05)
    folders = sorted((runs / "multirun").iterdir())
    for folder in folders:
        add_results_md(folder)
    dendritic = folders[1::2]
    assert "Not compared yet" in (dendritic[0] / "results.md").read_text()
    [comparison] = comparisons_for(runs)
    for _ in range(2):  # a second comparison replaces the section, it does not add one
        code, _, stderr = run_main(capsys, runs, "--out", tmp_path / "out")
        assert code == 0, stderr
    for folder in dendritic:
        text = (folder / "results.md").read_text()
        seed = json.loads((folder / "summary.json").read_text())["seed"]
        own = next(w for w in comparison.williams if w.seed == seed)
        assert "Not compared yet" not in text and text.count("## Against the baseline") == 1
        assert f"| Δ test Spearman (mean over paired seeds) | {comparison.delta:+.4f} |" in text
        assert f"[{comparison.delta_ci[0]:+.4f}, {comparison.delta_ci[1]:+.4f}]" in text
        assert f"{own.r_new:.4f} vs {own.r_base:.4f}" in text and "| verdict | better |" in text
    for folder in folders[0::2]:  # baselines: no section at all
        assert "Against the baseline" not in (folder / "results.md").read_text()
    report = (tmp_path / "out" / "report.md").read_text(encoding="utf-8")
    assert all(f"[{folder / 'results.md'}]" in report for folder in dendritic)
