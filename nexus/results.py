"""results.md: one run's summary in the shape of the NEXUS report ("Project NEXUS - Training Results
Summary": an epoch table with a Status column, the loss reduction, the restructure epochs), plus what
that report lacked: zero-shot and test Spearman of the best-dev model, parameters, each architecture's
best, and, once nexus-compare has paired the run with a baseline, the difference and its interval."""

from __future__ import annotations

import re
from pathlib import Path

from nexus.run_folder import RESULTS_FILE
from nexus.tables import markdown_table

COMPARE_BEGIN = "<!-- nexus-compare: begin -->"
COMPARE_END = "<!-- nexus-compare: end -->"
NOT_COMPARED = ("Not compared yet: run `nexus-compare` over this run and its `pai=disabled` twin "
                "(same settings and seed, e.g. `+experiment=nexus pai=disabled`); it fills in this section.")


def _f(value, digits: int = 4) -> str:
    return "n/a" if value is None else f"{value:.{digits}f}"


def epoch_statuses(history: list[dict], events: list[dict], best_epoch: int) -> dict[int, str]:
    """Each epoch's Status: `Baseline` (epoch 0), `Dendritic Activation #k` (dendrites added after it),
    `Dendrites reloaded` (PAI went back to an earlier best), `Final Best` (the best-dev epoch), joined
    when several apply; `Training` otherwise."""
    marks: dict[int, list[str]] = {r["epoch"]: [] for r in history}
    marks.setdefault(0, []).insert(0, "Baseline")
    activations = 0
    for event in events:
        if event["kind"] == "dendrites_added":
            activations += 1
            marks.setdefault(event["epoch"], []).append(f"Dendritic Activation #{activations}")
        elif event["kind"] == "reloaded_best":
            marks.setdefault(event["epoch"], []).append("Dendrites reloaded")
    marks.setdefault(best_epoch, []).append("Final Best")
    return {epoch: ", ".join(parts) or "Training" for epoch, parts in marks.items()}


def training_lines(history: list[dict], events: list[dict]) -> list[str]:
    """The loss reduction (first -> last epoch) and the restructure epochs, as the report gave them."""
    first, last = history[0]["train/loss"], history[-1]["train/loss"]
    added = [str(e["epoch"]) for e in events if e["kind"] == "dendrites_added"]
    reloaded = [str(e["epoch"]) for e in events if e["kind"] == "reloaded_best"]
    return [
        (f"- Loss reduction: {100 * (first - last) / first:.1f}% ({first:.4f} -> {last:.4f}, "
         f"epoch {history[0]['epoch']} -> {history[-1]['epoch']})"),
        f"- Dendrites added after epochs: {', '.join(added) or 'none'}",
        f"- Best model reloaded by PAI after epochs: {', '.join(reloaded) or 'none'}",
        f"- Restructures: {len(added) + len(reloaded)}",
    ]


def best_model_table(summary: dict) -> str:
    rows = [
        ["zero-shot dev Spearman (backbone alone)", _f(summary.get("zero_shot/val_spearman"))],
        ["zero-shot test Spearman", _f(summary.get("zero_shot/test_spearman"))],
        [f"best dev Spearman (epoch {summary['best/epoch']})", _f(summary["best/val_spearman"])],
        ["test Spearman of the best-dev model", _f(summary["test/spearman"])],
        ["test Pearson of the best-dev model", _f(summary["test/pearson"])],
        ["adapter parameters (pai/params)", f"{summary['pai/params']:,}"],
        ["dendrites kept", str(summary["pai/dendrites"])],
    ]
    return markdown_table(["", "value"], rows)


def architectures_table(architectures: list[dict]) -> str:
    rows = [[str(a["dendrites"]), f"{a['params']:,}", str(a["epochs"]), _f(a["best_val_spearman"]),
             str(a["best_epoch"]), _f(a["test_spearman"])] for a in architectures]
    return markdown_table(["Dendrites", "Params", "Epochs", "Best Val Spearman", "at epoch",
                           "Test Spearman (its best model)"], rows)


def render_results(history: list[dict], events: list[dict], summary: dict, comparison: str | None = None) -> str:
    """results.md's text. `comparison`: the Markdown nexus-compare wrote for this run, if any."""
    statuses = epoch_statuses(history, events, summary["best/epoch"])
    epochs = [[str(r["epoch"]), f"{r['train/loss']:.4f}", f"{r['val/spearman']:.4f}", statuses[r["epoch"]]]
              for r in history]
    title = f"{summary['experiment']}, pai={summary['pai']}, seed {summary['seed']}"
    parts = [f"# Training results: {title}", "", "## Per epoch", "",
             markdown_table(["Epoch", "Train Loss", "Val Spearman", "Status"], epochs), "",
             "## Training", "", *training_lines(history, events), "",
             "## The best-dev model", "", best_model_table(summary), ""]
    if summary.get("pai/architectures"):
        parts += ["## Per architecture (best of each dendrite count)", "",
                  architectures_table(summary["pai/architectures"]), ""]
    if summary["pai"] != "disabled":
        parts += [COMPARE_BEGIN, comparison or f"## Against the baseline\n\n{NOT_COMPARED}", COMPARE_END, ""]
    return "\n".join(parts)


def write_results(run_dir: Path, history: list[dict], events: list[dict], summary: dict) -> Path:
    path = Path(run_dir) / RESULTS_FILE
    path.write_text(render_results(history, events, summary), encoding="utf-8")
    return path


def set_comparison(path: Path, markdown: str) -> None:
    """Replace results.md's nexus-compare section (between its markers) with `markdown`."""
    text = path.read_text(encoding="utf-8")
    section = f"{COMPARE_BEGIN}\n{markdown}\n{COMPARE_END}"
    pattern = re.compile(re.escape(COMPARE_BEGIN) + ".*?" + re.escape(COMPARE_END), re.DOTALL)
    text = pattern.sub(lambda _: section, text) if pattern.search(text) else f"{text.rstrip()}\n\n{section}\n"
    path.write_text(text, encoding="utf-8")


def results_html(markdown: str) -> str:
    """results.md as HTML, for W&B's HTML media panel (W&B renders no Markdown logged by a run)."""
    from markdown_it import MarkdownIt

    style = "<style>table{border-collapse:collapse}td,th{border:1px solid #999;padding:2px 8px}</style>"
    return style + MarkdownIt("commonmark").enable("table").render(markdown)
