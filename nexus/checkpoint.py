"""The run's checkpoint: written atomically after every epoch, removed when the run completes; and
the completed run that makes a repeated command (a Hydra multirun run again) skip its job."""

from __future__ import annotations

import json
import os
from pathlib import Path

import torch

from nexus.config import configuration
from nexus.errors import UserError
from nexus.run_folder import CHECKPOINT_FILE, SUMMARY_FILE


def save_checkpoint(run_dir: Path, state: dict) -> None:
    tmp = run_dir / f".{CHECKPOINT_FILE}.tmp"
    torch.save(state, tmp)
    os.replace(tmp, run_dir / CHECKPOINT_FILE)  # a kill mid-write leaves the previous checkpoint intact


def load_checkpoint(run_dir: Path, resume, config: dict) -> dict | None:
    """The state to continue from, per `resume` (auto | true | false), or None to start fresh."""
    path = run_dir / CHECKPOINT_FILE
    if resume is False or not path.is_file():
        if resume is True:
            raise UserError(f"resume=true: no checkpoint in {run_dir}")
        return None
    # Our own file, written by save_checkpoint: it pickles PAI's objects, so a full unpickle.
    state = torch.load(path, weights_only=False, map_location="cpu")
    if configuration(state["config"]) != configuration(config) or state["config"]["seed"] != config["seed"]:
        raise UserError(f"{path} was written by another configuration; use resume=false to start over")
    return state


def networks_to(state: dict, device: str) -> None:
    """A checkpoint is loaded on the CPU: its networks (the current one, the best so far, each
    architecture's best) go where the run trains, in place, so PAI's tracker, which the same file
    pickled with them, keeps pointing at them."""
    best = [state["best"], *state.get("architectures", {}).values()]
    for net in (state["net"], *(b.net for b in best)):
        net.to(device)


def remove_checkpoint(run_dir: Path) -> None:
    (run_dir / CHECKPOINT_FILE).unlink(missing_ok=True)


def completed_run(run_dir: Path, resume, config: dict) -> dict | None:
    """summary.json of a run of this configuration and seed that already completed in `run_dir`
    (resume=auto or true: nothing left to do), or None: run it (resume=false always runs)."""
    try:
        summary = json.loads((run_dir / SUMMARY_FILE).read_text())
    except (OSError, ValueError):
        return None
    done = resume is not False and summary.get("status") == "completed"
    same = configuration(summary.get("config") or {}) == configuration(config) and summary.get("seed") == config["seed"]
    return summary if done and same else None
