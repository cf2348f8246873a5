"""Markdown tables, one way: the comparison report, the benchmark and nexus-publish all print them."""

from __future__ import annotations

from typing import Sequence


def markdown_table(header: Sequence[str], rows: Sequence[Sequence[str]]) -> str:
    """A GitHub-flavoured Markdown table; `|` inside a cell is escaped."""
    def cells(row: Sequence[str]) -> str:
        return "| " + " | ".join(str(c).replace("|", "\\|") for c in row) + " |"

    return "\n".join([cells(header), cells(["---"] * len(header))] + [cells(row) for row in rows])
