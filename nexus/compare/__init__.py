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

With --wandb DIR, each W&B run folder below DIR that holds no complete run (an online attempt that
fell back to offline, a killed run) is skipped with a line on stderr saying why (nexus.wandb_runs).
Exit codes: 2 for the user's mistake (bad input, no W&B key), before any work; 1 when the W&B server
cannot be reached or fails while reading.

This package only reads finished runs; it never trains. Its modules, each importing only those above it:
runs (reading run folders and W&B runs), grouping (configurations, names, baselines), stats (the
statistics on plain arrays), comparison (a configuration against its baseline), plots, report
(Markdown, HTML, CSV and build_report), cli (the command line).
"""

from nexus.compare.cli import main
from nexus.compare.comparison import Comparison, WilliamsResult, compare_to_baseline
from nexus.compare.grouping import Group, assign_baselines, group_runs
from nexus.compare.report import build_report, verdict_line, verdict_table_markdown
from nexus.compare.runs import RunResult, load_folders, load_wandb_runs, require_predictions
from nexus.compare.stats import (
    VERDICT_BETTER,
    VERDICT_SAME,
    VERDICT_TOO_FEW,
    VERDICT_WORSE,
    decide_verdict,
    paired_bootstrap_difference,
    seed_ci,
    williams_test,
)

__all__ = [
    "Comparison", "Group", "RunResult", "VERDICT_BETTER", "VERDICT_SAME", "VERDICT_TOO_FEW", "VERDICT_WORSE",
    "WilliamsResult", "assign_baselines", "build_report", "compare_to_baseline", "decide_verdict", "group_runs",
    "load_folders", "load_wandb_runs", "main", "paired_bootstrap_difference", "require_predictions", "seed_ci",
    "verdict_line", "verdict_table_markdown", "williams_test",
]
