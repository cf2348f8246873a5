"""Sentence-pair files: STS-B's tab-separated format, or a user's own with the same settings.

Every problem is reported with the file and line before any training starts.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from importlib import resources
from pathlib import Path

import numpy as np

from nexus.errors import UserError

SPLITS = ("train", "val", "test")
PACKAGE_PREFIX = "pkg:"


@dataclass(frozen=True)
class Pairs:
    """One split: sentence pairs, gold scores scaled to 0..1, and the source line of each row."""

    sentences1: list[str]
    sentences2: list[str]
    scores: np.ndarray
    lines: np.ndarray

    def __len__(self) -> int:
        return len(self.scores)


def resolve_path(path: str) -> Path:
    """`pkg:stsbenchmark/sts-dev.csv` points inside the installed package; anything else is a file path."""
    if path.startswith(PACKAGE_PREFIX):
        return Path(str(resources.files("nexus") / "data" / path[len(PACKAGE_PREFIX):]))
    return Path(path).expanduser()


def read_pairs(path: str, data_cfg, limit: int | None = None) -> Pairs:
    file = resolve_path(path)
    if not file.is_file():
        raise UserError(f"data file not found: {file}")
    try:
        text = file.read_text(encoding="utf-8")
    except UnicodeDecodeError as err:
        line_no = file.read_bytes()[: err.start].count(b"\n") + 1
        raise UserError(f"{file}:{line_no}: not valid UTF-8 (byte {err.object[err.start]:#x})") from None

    # Plain Python values: OmegaConf attribute access per line would dominate the parse.
    score_col, first_col, second_col = (int(data_cfg.columns[k]) - 1 for k in ("score", "sentence1", "sentence2"))
    needed = max(score_col, first_col, second_col) + 1
    delimiter = str(data_cfg.delimiter)
    low, high = float(data_cfg.score_min), float(data_cfg.score_max)
    s1, s2, scores, lines = [], [], [], []
    rows = text.splitlines()
    first = 2 if data_cfg.skip_header else 1
    for line_no, row in enumerate(rows[first - 1:], start=first):
        if limit is not None and len(scores) >= limit:
            break
        if not row.strip():
            continue
        # STS-B has no quoting; some lines carry extra source fields after the sentences.
        fields = row.split(delimiter)
        if len(fields) < needed:
            raise UserError(f"{file}:{line_no}: {len(fields)} fields, expected at least {needed}")
        a, b = fields[first_col].strip(), fields[second_col].strip()
        if not a or not b:
            raise UserError(f"{file}:{line_no}: empty sentence")
        raw = fields[score_col].strip()
        try:
            score = float(raw)
        except ValueError:
            raise UserError(f"{file}:{line_no}: score {raw!r} is not a number") from None
        if not (low <= score <= high) or math.isnan(score):
            raise UserError(f"{file}:{line_no}: score {score} is outside {low:g}..{high:g}")
        s1.append(a)
        s2.append(b)
        scores.append((score - low) / (high - low))
        lines.append(line_no)
    if not scores:
        raise UserError(f"{file}: no sentence pairs")
    return Pairs(s1, s2, np.asarray(scores, dtype=np.float32), np.asarray(lines, dtype=np.int64))


def load_splits(data_cfg) -> dict[str, Pairs]:
    """Read train/val/test as configured; the order of rows is the order of the file."""
    if float(data_cfg.score_max) <= float(data_cfg.score_min):
        raise UserError("data.score_max must be greater than data.score_min")
    return {
        split: read_pairs(data_cfg[f"{split}_path"], data_cfg, data_cfg.limit[split])
        for split in SPLITS
    }
