"""Finished runs as nexus-compare reads them: from run folders, or from what W&B recorded."""

from __future__ import annotations

import contextlib
import csv
import math
import os
import sys
import tempfile
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterable, Sequence

import numpy as np

from nexus.config import flatten
from nexus.errors import UserError, one_line
from nexus.progress import progress
from nexus.run_folder import EVENTS_FILE, METRICS_FILE, PREDICTIONS_DIR, SUMMARY_FILE, read_json, read_jsonl
from nexus.wandb_runs import inspect_run, require_api_key, run_folders

COMPLETED = "completed"
WANDB_TIMEOUT_S = 20


@dataclass
class Predictions:
    """One split's predictions, sorted by ``row`` so runs on the same data line up element by element."""

    rows: np.ndarray  # int, 0-based pair index in the split
    gold: np.ndarray  # gold score scaled to 0..1
    pred: np.ndarray  # cosine similarity at the best-dev epoch


@dataclass
class RunResult:
    """One run's recorded outcome, whichever source it was read from."""

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


def find_run_folders(root: Path) -> list[Path]:
    """Every folder under root (root included) holding summary.json; no descent below a run folder."""
    found = []
    for folder, subfolders, files in os.walk(root):
        if SUMMARY_FILE in files:
            found.append(Path(folder))
            subfolders.clear()  # a run's own subfolders (model/, wandb/) hold no other runs
        else:
            subfolders.sort()
    return sorted(found)


def read_predictions(path: Path) -> Predictions:
    """predictions/<split>.csv with header row,line,gold,pred."""
    with path.open(newline="", encoding="utf-8") as handle:
        reader = csv.DictReader(handle)
        missing = {"row", "gold", "pred"} - set(reader.fieldnames or [])
        if missing:
            raise UserError(f"{path}: missing column(s) {', '.join(sorted(missing))}")
        try:
            records = [(int(r["row"]), float(r["gold"]), float(r["pred"])) for r in reader]
        except (TypeError, ValueError) as exc:
            raise UserError(f"{path}: unreadable value ({exc})") from None
    if not records:
        raise UserError(f"{path}: no prediction rows")
    data = np.array(records, dtype=float)
    data = data[np.argsort(data[:, 0], kind="stable")]
    return Predictions(rows=data[:, 0].astype(int), gold=data[:, 1], pred=data[:, 2])


def config_of(summary: dict[str, Any]) -> dict[str, Any]:
    """The flattened config, with pai.mode/experiment filled from the summary if the config lacks them."""
    config = flatten(summary.get("config") or {})
    if summary.get("pai") is not None:
        config.setdefault("pai.mode", summary["pai"])
    if summary.get("experiment") is not None:
        config.setdefault("experiment", summary["experiment"])
    return config


def load_run_folder(folder: Path) -> RunResult:
    """A run folder per the contract. Metrics, events and predictions are read for completed runs only."""
    summary = read_json(folder / SUMMARY_FILE)
    if not isinstance(summary, dict):
        raise UserError(f"{folder / SUMMARY_FILE}: expected a JSON object")
    run = RunResult(source=str(folder), summary=summary, config=config_of(summary))
    if run.status == COMPLETED:
        run.metrics = read_jsonl(folder / METRICS_FILE)
        run.events = read_jsonl(folder / EVENTS_FILE)
        test_csv = folder / PREDICTIONS_DIR / "test.csv"
        if test_csv.is_file():
            run.test_predictions = read_predictions(test_csv)
    return run


def load_folders(folders: Sequence[str]) -> list[RunResult]:
    """All runs below the given folders, each once; every folder must hold at least one completed run."""
    loaded: dict[Path, RunResult] = {}  # by resolved path: a sweep and one of its runs may both be given
    for name in folders:
        root = Path(name)
        if not root.is_dir():
            raise UserError(f"no such folder: {name}")
        runs_here = []
        for folder in find_run_folders(root):
            if folder.resolve() not in loaded:
                loaded[folder.resolve()] = load_run_folder(folder)
            runs_here.append(loaded[folder.resolve()])
        if not runs_here:
            raise UserError(f"{name}: no run folders (no summary.json below it)")
        if not any(run.status == COMPLETED for run in runs_here):
            statuses = Counter(run.status for run in runs_here)
            found = ", ".join(f"{count} {status}" for status, count in sorted(statuses.items()))
            raise UserError(f"{name}: no finished runs (found {found})")
    return list(loaded.values())


class WandbError(Exception):
    """W&B could not be reached or refused a request while reading: one line, exit code 1."""


def load_wandb_runs(path: str) -> list[RunResult]:
    """Runs as W&B recorded them: a project (entity/project) or sweep (entity/project/sweep_id) via
    wandb.Api(), or a local folder of W&B run folders (offline runs, read with `wandb leet`).

    Summary, config and history map onto the run-folder structures; test predictions come from the
    run's file predictions/test.csv, which exists only if the training job uploaded it (wandb.save);
    without it the run counts as lacking predictions. No credentials is a UserError; any failure to
    reach or read the server, a one-line WandbError.
    """
    local = Path(path).is_dir()
    parts = path.strip("/").split("/")
    if not local and (len(parts) not in (2, 3) or not all(parts)):
        raise UserError(f"--wandb wants entity/project, entity/project/sweep_id or a folder, got {path!r}")
    if local:
        runs = _load_offline_wandb_runs(Path(path))
    else:
        require_api_key()
        try:
            runs = _load_server_runs(path, parts)
        except Exception as exc:  # noqa: BLE001  wandb raises many types (UsageError, CommError, HTTP errors)
            reason = one_line(exc) or type(exc).__name__
            raise WandbError(f"cannot read W&B runs from {path}: {reason}") from None
    if not any(run.status == COMPLETED for run in runs):
        raise UserError(f"W&B {path}: no finished runs (found {len(runs)} runs)")
    return runs


def _load_server_runs(path: str, parts: list[str]) -> list[RunResult]:
    import wandb

    api = wandb.Api(timeout=WANDB_TIMEOUT_S)
    found = api.sweep(path).runs if len(parts) == 3 else api.runs(path)
    runs = []
    for wandb_run in progress(list(found), "reading W&B runs"):
        def download(tmp: str, wandb_run=wandb_run) -> Path:
            wandb_run.file("predictions/test.csv").download(root=tmp, replace=True)
            return Path(tmp) / "predictions" / "test.csv"

        runs.append(_run_from_wandb(f"wandb:{'/'.join(wandb_run.path)}", dict(wandb_run.config),
                                    dict(wandb_run.summary_metrics), wandb_run.state,
                                    lambda wandb_run=wandb_run: wandb_run.scan_history(), download))
    return runs


def _load_offline_wandb_runs(folder: Path) -> list[RunResult]:
    """The complete W&B runs below `folder`; each other one in a run's wandb/ folder (an online
    attempt that fell back to offline, a killed run) is skipped with a line on stderr saying why."""
    from nexus.tracking import read_offline_run

    folders = run_folders(folder)
    if not folders:
        raise UserError(f"{folder}: no W&B runs (no W&B run folder, e.g. wandb/offline-run-*, below it)")
    runs = []
    for run_dir in progress(folders, "reading W&B runs"):
        state, why = inspect_run(run_dir)
        if why:
            print(f"skipped {run_dir}: {why}", file=sys.stderr)
            continue
        runs.append(_run_from_wandb(
            str(run_dir), state["config"], state["summary"], state["state"],
            lambda run_dir=run_dir: [r["history"]["item"] for r in read_offline_run(run_dir) if r["type"] == "history"],
            lambda tmp, csv_file=run_dir / "files" / "predictions" / "test.csv": csv_file))
    if not runs:
        raise UserError(f"{folder}: no complete W&B runs (each skipped one is said above)")
    return runs


def _run_from_wandb(source: str, config: dict, summary: dict, state: str, history, predictions_file) -> RunResult:
    """A W&B run as a RunResult: `history()` gives its logged rows, `predictions_file(tmp)` its test.csv."""
    # W&B's own keys (_step, ...) and media (tables, images: {"_type": ...}) are not summary numbers
    summary = {k: v for k, v in summary.items()
               if not k.startswith("_") and not (isinstance(v, dict) and "_type" in v)}
    config = flatten({k: v for k, v in config.items() if not k.startswith("_")})
    # W&B keeps each config group's option beside its dotted keys (pai: history, pai.mode: ...);
    # grouping reads the dotted keys, as it does for run folders.
    summary["config"] = {k: v for k, v in config.items() if not any(o.startswith(f"{k}.") for o in config)}
    # The W&B run state stands in for the harness's status when the summary does not carry one.
    state_to_status = {"finished": COMPLETED, "crashed": "failed", "failed": "failed", "killed": "interrupted"}
    summary.setdefault("status", state_to_status.get(state, state))
    run = RunResult(source=source, summary=summary, config=config_of(summary))
    if run.status == COMPLETED:
        # epoch -1 holds the zero-shot numbers; a restructure is marked on its epoch's row
        rows = [r for r in history() if isinstance(r.get("epoch"), (int, float)) and r["epoch"] >= 0]
        run.metrics = [{k: v for k, v in r.items() if not k.startswith("_")} for r in rows]
        run.events = [{"epoch": r["epoch"], "kind": r["pai/restructure"]} for r in rows if r.get("pai/restructure")]
        # wandb signals a missing file with its own error types; left as None, require_predictions()
        # reports it with every other such run
        with tempfile.TemporaryDirectory() as tmp, contextlib.suppress(Exception):
            run.test_predictions = read_predictions(predictions_file(tmp))
    return run


def require_predictions(runs: Iterable[RunResult]) -> None:
    lacking = [run.source for run in runs if run.status == COMPLETED and run.test_predictions is None]
    if lacking:
        more = f" (and {len(lacking) - 1} more)" if len(lacking) > 1 else ""
        raise UserError(f"finished run lacks predictions/test.csv: {lacking[0]}{more}")
