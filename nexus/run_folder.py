"""A run's folder: the names of its files (the contract in docs/run-folder.md), and the one
way each is written and read. Written atomically, so a kill never leaves half a file looking whole."""

from __future__ import annotations

import json
import os
from pathlib import Path

from nexus.errors import UserError

SUMMARY_FILE = "summary.json"
METRICS_FILE = "metrics.jsonl"
EVENTS_FILE = "events.jsonl"
CHECKPOINT_FILE = "checkpoint.pt"
ERROR_LOG = "error.log"
PREDICTIONS_DIR = "predictions"
MODEL_DIR = "model"
PLOT_FILE = "training_results.png"
RESULTS_FILE = "results.md"


def write_json_atomic(path: Path, data) -> None:
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.write_text(json.dumps(data, indent=2, default=float) + "\n")
    os.replace(tmp, path)


def write_jsonl(path: Path, rows: list[dict]) -> None:
    path.write_text("".join(json.dumps(row) + "\n" for row in rows))


def append_jsonl(path: Path, rows: list[dict]) -> None:
    with open(path, "a") as f:
        for row in rows:
            f.write(json.dumps(row) + "\n")


def read_json(path: Path):
    """A JSON file; a missing or broken one is the user's to fix: UserError naming it."""
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except json.JSONDecodeError as err:
        raise UserError(f"{path}: not valid JSON ({err.msg}, line {err.lineno})") from None
    except OSError as err:
        raise UserError(f"{path}: cannot read ({err.strerror})") from None


def read_jsonl(path: Path) -> list[dict]:
    """One record per line ([] when the file does not exist); a broken line is reported as file:line."""
    if not path.is_file():
        return []
    records = []
    for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), start=1):
        if line.strip():
            try:
                records.append(json.loads(line))
            except json.JSONDecodeError as err:
                raise UserError(f"{path}:{number}: not valid JSON ({err.msg})") from None
    return records


def read_summary(run_dir: Path) -> dict | None:
    """summary.json without its config, or None while there is none (a run not started, or mid-write)."""
    try:
        summary = json.loads((run_dir / SUMMARY_FILE).read_text())
    except (OSError, ValueError):
        return None
    summary.pop("config", None)
    return summary


def is_completed(run_dir: Path) -> bool:
    return (read_summary(run_dir) or {}).get("status") == "completed"
