"""The report: its tables as Markdown, HTML and CSV, and build_report, which writes every file."""

from __future__ import annotations

import base64
import csv
import html
import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Sequence

from nexus.compare.comparison import Comparison, compare_to_baseline, comparison_columns, summarize_group
from nexus.compare.grouping import (Group, assign_baselines, assign_param_matched, config_value_text, differing_keys,
                                    group_runs, trained_params)
from nexus.compare.plots import (plot_curves, plot_forest, plot_lr_by_mode, plot_params_vs_test,
                                 plot_test_spearman)
from nexus.compare.run_results import annotate_runs
from nexus.compare.runs import COMPLETED, RunResult, require_predictions
from nexus.compare.stats import ALPHA, MIN_SEEDS_FOR_CI, PAIRED_BOOTSTRAP_RESAMPLES, VERDICT_TOO_FEW
from nexus.errors import UserError
from nexus.tables import markdown_table


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


def verdict_table_markdown(comparisons: Sequence[Comparison]) -> str:
    """The table of verdicts, each configuration against its baseline: the report's and nexus-publish's."""
    return markdown_table(*comparison_table(comparisons))


def matched_line(group: Group, c: Comparison | None) -> str:
    """Which plain adapter a dendritic configuration was compared with, by trained parameters."""
    params = f"{trained_params(group):,.0f} trained parameters"
    if c is None:
        return f"{group.name} ({params}): no plain adapter of the same recipe within 1% of that size"
    return (f"{group.name} ({params}) vs {c.baseline.name} ({trained_params(c.baseline):,.0f}): {c.verdict} "
            f"(Δ test Spearman {fmt(c.delta, signed=True)}, 95% CI {_ci_text(*c.delta_ci, signed=True)})")


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
    body = [[g.name] + [config_value_text(g.config.get(key, "<missing>")) for key in keys] for g in groups]
    return ["configuration"] + keys, body


def failed_table(failed: Sequence[RunResult]) -> tuple[list[str], list[list[str]]]:
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

def _html_table(header: Sequence[str], body: Sequence[Sequence[str]]) -> str:
    head = "".join(f"<th>{html.escape(h)}</th>" for h in header)
    rows = "".join("<tr>" + "".join(f"<td>{html.escape(str(c))}</td>" for c in row) + "</tr>" for row in body)
    return f"<table><thead><tr>{head}</tr></thead><tbody>{rows}</tbody></table>"


@dataclass
class ReportContent:
    """What the Markdown and HTML renderings share: (header, body) tables, comparisons, PNG files."""

    summary: tuple[list[str], list[list[str]]]
    comparisons: list[Comparison]
    differences: tuple[list[str], list[list[str]]] | None
    failed: tuple[list[str], list[list[str]]] | None
    images: list[tuple[str, str]]  # (file name, caption)
    run_results: list[Path]  # the runs' results.md given their "Against the baseline" section
    # --param-matched: each dendritic group against the plain adapter of its size, or None (no match)
    matched: list[tuple[Group, Comparison | None]] | None = None


def render_markdown(content: ReportContent) -> str:
    parts = ["# NEXUS comparison report", "", "## Configurations", "", markdown_table(*content.summary), ""]
    if content.comparisons:
        parts += ["## Against the baseline", "", verdict_table_markdown(content.comparisons), ""]
        parts += ["### Verdicts", ""] + [f"- {verdict_line(c)}" for c in content.comparisons] + [""]
    if content.matched is not None:
        found = [c for _, c in content.matched if c is not None]
        parts += ["## Against a parameter-matched plain adapter", ""] + [f"- {matched_line(g, c)}" for g, c in content.matched]
        parts += ["", verdict_table_markdown(found), ""] if found else [""]
    if content.differences:
        parts += ["## What differs between configurations", "", markdown_table(*content.differences), ""]
    if content.failed:
        parts += ["## Runs that did not complete", "", markdown_table(*content.failed), ""]
    parts += ["## Plots", ""] + [f"![{caption}]({name})\n" for name, caption in content.images]
    if content.run_results:
        parts += ["## Each run's results.md (its section against the baseline updated)", ""]
        parts += [f"- [{path}]({path.resolve().as_uri()})" for path in content.run_results] + [""]
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
        parts += ["<h2>Against the baseline</h2>", _html_table(*comparison_table(content.comparisons))]
        parts += ["<h3>Verdicts</h3><ul>"] + [f"<li>{html.escape(verdict_line(c))}</li>" for c in content.comparisons]
        parts.append("</ul>")
    if content.matched is not None:
        found = [c for _, c in content.matched if c is not None]
        parts += ["<h2>Against a parameter-matched plain adapter</h2><ul>"]
        parts += [f"<li>{html.escape(matched_line(g, c))}</li>" for g, c in content.matched] + ["</ul>"]
        parts += [_html_table(*comparison_table(found))] if found else []
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
    if content.run_results:
        parts += ["<h2>Each run's results.md (its section against the baseline updated)</h2><ul>"]
        parts += [f'<li><a href="{html.escape(path.resolve().as_uri())}">{html.escape(str(path))}</a></li>'
                  for path in content.run_results] + ["</ul>"]
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


def write_plots(groups: Sequence[Group], comparisons: Sequence[Comparison], rows: Sequence[dict[str, Any]],
                out: Path) -> list[tuple[str, str]]:
    """The PNGs into `out`: (file name, caption) of each written."""
    images = []
    panels = [[c.baseline, c.group] for c in comparisons] or [groups]
    plot_curves(panels, out / "curves.png")
    images.append(("curves.png", "Dev Spearman and train loss per epoch"))
    plot_test_spearman(rows, out / "test_spearman.png")
    images.append(("test_spearman.png", "Test Spearman per configuration (95% CI over seeds)"))
    if plot_lr_by_mode(groups, out / "lr_by_mode.png"):
        images.append(("lr_by_mode.png", "Best dev Spearman by learning rate and PAI mode"))
    plot_params_vs_test(groups, rows, out / "params_vs_test.png")
    images.append(("params_vs_test.png", ("Test Spearman against trained parameters (95% CI over seeds; "
                                          "dotted: each dendrite count's best model)")))
    if plot_forest(comparisons, out / "forest.png"):
        images.append(("forest.png", "Δ test Spearman against the baseline, 95% paired-bootstrap CI"))
    return images


def build_report(runs: Sequence[RunResult], out: Path, baseline_name: str | None = None,
                 param_matched: bool = False) -> list[Comparison]:
    """Group, compare, plot and write every output file into `out`; returns the comparisons
    (with `param_matched`, those against parameter-matched plain adapters follow)."""
    require_predictions(runs)
    groups = group_runs(runs)
    if not groups:
        raise UserError("no finished runs to compare")
    failed = [run for run in runs if run.status != COMPLETED]
    pairs = assign_baselines(groups, baseline_name)
    comparisons = [compare_to_baseline(group, baseline) for group, baseline in pairs]
    matched = [(group, plain and compare_to_baseline(group, plain)) for group, plain in assign_param_matched(groups)] \
        if param_matched else None
    comparison_of = {id(c.group): c for c in comparisons}

    rows = [summarize_group(g) | comparison_columns(comparison_of.get(id(g))) for g in groups]
    out.mkdir(parents=True, exist_ok=True)
    write_table_csv(rows, out / "table.csv")
    content = ReportContent(
        summary=summary_table(rows),
        comparisons=comparisons,
        differences=config_difference_table(groups) if len(groups) > 1 else None,
        failed=failed_table(failed) if failed else None,
        images=write_plots(groups, comparisons, rows, out),
        run_results=annotate_runs(comparisons),
        matched=matched,
    )
    (out / "report.md").write_text(render_markdown(content), encoding="utf-8")
    (out / "report.html").write_text(render_html(content, out), encoding="utf-8")
    return comparisons + [c for _, c in matched or [] if c is not None]
