"""W&B runs on disk: the run folders in the `wandb/` folders of NEXUS runs, and which of them are
complete, by what W&B itself recorded (`wandb leet inspect --summary --json`).

A run's `wandb/` folder can hold more than its one run: an online attempt that timed out before the
run fell back to offline leaves a stub `run-<time>-<id>` (state finished, no history), and a run
killed mid-way leaves a log without an exit record. Readers (nexus-compare --wandb, nexus-publish)
skip each such folder with its reason, one line, and read the rest.
"""

from __future__ import annotations

import re
import subprocess
from pathlib import Path

from nexus.errors import UserError, one_line

# wandb's names for a run's folder: run-<time>-<id> (online), offline-run-<time>-<id>
RUN_FOLDER = re.compile(r"(offline-)?run-\S+-\w+")


def run_folders(root: Path) -> list[Path]:
    """W&B run folders at or below `root` (not through links: wandb's `latest-run` names one twice)."""
    if RUN_FOLDER.fullmatch(root.name):
        return [root]
    return sorted(p for p in root.rglob("*run-*") if RUN_FOLDER.fullmatch(p.name) and p.is_dir() and not p.is_symlink())


def run_id(folder: Path) -> str:
    return folder.name.rsplit("-", 1)[1]


def is_online(folder: Path) -> bool:
    return not folder.name.startswith("offline-")


def why_incomplete(folder: Path, state: dict) -> str | None:
    """None for a complete run: W&B recorded its end (an exit record, whatever the exit code) and
    at least one history row (every NEXUS run logs its zero-shot row first)."""
    if state.get("exit_code") is None:
        return "no exit record in its W&B log (the run was killed, or is still running)"
    if state.get("step") is None:
        if is_online(folder):
            fell_back = any(RUN_FOLDER.fullmatch(other.name) and not is_online(other) for other in folder.parent.iterdir())
            return "an online attempt with no history" + (" (the run fell back to offline)" if fell_back else "")
        return "no history in its W&B log"
    return None


def inspect_run(folder: Path) -> tuple[dict | None, str | None]:
    """(the run's final state, None) for a complete run, else (None, why it is skipped)."""
    from nexus.tracking import read_offline_run_state

    if not any(folder.glob("run-*.wandb")):
        return None, "no W&B log (run-<id>.wandb) in it"
    try:
        state = read_offline_run_state(folder)
    except subprocess.CalledProcessError as err:
        return None, f"W&B cannot read its log: {one_line(err.stderr)[:200]}"
    why = why_incomplete(folder, state)
    return (None, why) if why else (state, None)


def require_api_key() -> None:
    """Refuse, before any request, to talk to a W&B server without credentials (the user's to give)."""
    from nexus.tracking import credentials_source

    if credentials_source() is None:
        raise UserError("no W&B API key: run `wandb login` (or set WANDB_API_KEY)")
