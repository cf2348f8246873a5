"""Each compared run's own results.md gets its verdict: nexus-compare fills in the run's "Against the
baseline" section (nexus.results) with its configuration's paired difference and interval, and this
seed's own numbers. Only run folders on this machine; W&B runs have no results.md to update."""

from __future__ import annotations

from pathlib import Path
from typing import Sequence

from nexus.compare.comparison import Comparison
from nexus.results import set_comparison
from nexus.run_folder import RESULTS_FILE
from nexus.tables import markdown_table


def comparison_markdown(c: Comparison, seed: int) -> str:
    """The section for the run of `seed` in `c`'s configuration."""
    own = next(w for w in c.williams if w.seed == seed)
    rows = [
        ["configuration", c.group.name],
        ["baseline", c.baseline.name],
        ["paired seeds", ", ".join(map(str, c.seeds))],
        ["Δ test Spearman (mean over paired seeds)", f"{c.delta:+.4f}"],
        ["95% CI (paired bootstrap over test pairs and seeds)", f"[{c.delta_ci[0]:+.4f}, {c.delta_ci[1]:+.4f}]"],
        [f"seed {seed}: test Spearman, this run vs its baseline",
         f"{own.r_new:.4f} vs {own.r_base:.4f} (Δ {own.r_new - own.r_base:+.4f})"],
        [f"seed {seed}: Williams' test p", f"{own.p:.3g}"],
        ["verdict", c.verdict],
    ]
    return "## Against the baseline (nexus-compare)\n\n" + markdown_table(["", "value"], rows)


def annotate_runs(comparisons: Sequence[Comparison]) -> list[Path]:
    """Write the section into every paired run's results.md; the files written."""
    written = []
    for c in comparisons:
        runs = c.group.runs_by_seed()
        for seed in c.seeds:
            path = Path(runs[seed].source) / RESULTS_FILE
            if path.is_file():
                set_comparison(path, comparison_markdown(c, seed))
                written.append(path)
    return written
