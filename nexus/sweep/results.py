"""The results table a runner prints at the end: every run, best first."""

from __future__ import annotations

import sys

from nexus.sweep.state import SweepRun


def short_value(value) -> str:
    """A parameter value for the table: floats to 4 significant digits."""
    return f"{value:.4g}" if isinstance(value, float) else str(value)


def results_rows(runs: list[SweepRun], metric: str | None, maximize: bool) -> tuple[list[str], list[list[str]]]:
    keys = list(dict.fromkeys(key for run in runs for key in run.params))
    metrics = [m for m in dict.fromkeys([metric, "test/spearman"]) if m]

    def order(run: SweepRun):
        value = run.summary.get(metric)
        return (value is None, -(value or 0) if maximize else (value or 0), run.name)

    rows = []
    for run in sorted(runs, key=order):
        cells = [run.folder_name, run.state, *(short_value(run.values().get(k, "")) for k in keys)]
        cells += [f"{run.summary[m]:.4f}" if isinstance(run.summary.get(m), (int, float)) else "-" for m in metrics]
        seconds = run.summary.get("time/total_s")
        cells += [f"{seconds:.0f}" if seconds is not None else "-", (run.reason or "")[:80]]
        rows.append(cells)
    return ["run", "state", *keys, *metrics, "time_s", "reason"], rows


def print_results(runs: list[SweepRun], metric: str | None, maximize: bool, title: str) -> None:
    header, rows = results_rows(runs, metric, maximize)
    from rich.console import Console
    from rich.table import Table

    widths = [max(len(cell) for cell in column) for column in zip(header, *rows)]
    table = Table(title=title)
    for name in header:
        table.add_column(name)
    for cells in rows:
        table.add_row(*cells)
    # Not a terminal (a log file, a pipe): the table's natural width, not rich's 80 columns.
    Console(width=None if sys.stdout.isatty() else sum(widths) + 3 * len(widths) + 1).print(table)
