"""Shared fixtures: one embedding cache for the whole session (the real MiniLM encodes each
smoke sentence once), and a helper that runs the real entry point with argv."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="session", autouse=True)
def nexus_home(tmp_path_factory) -> Path:
    """Runs and caches go to a temporary NEXUS_HOME, never to the user's home or the repo."""
    home = tmp_path_factory.mktemp("nexus_home")
    os.environ["NEXUS_HOME"] = str(home)
    os.environ["WANDB_SILENT"] = "true"
    # logger.mode=auto goes online wherever W&B has credentials: tests never do (those of the mode
    # itself set their own environment).
    os.environ["WANDB_MODE"] = "offline"
    return home


def launch(*args: str) -> int:
    """`python launch.py ARGS` in this process, as Hydra sees it."""
    import launch as entry

    return entry.main(list(args))


def read_jsonl(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


def read_json(path: Path) -> dict:
    return json.loads(path.read_text())
