"""The readers of W&B runs on disk (nexus-compare --wandb, nexus-publish) skip, per run, what in a
run's wandb/ folder is not a complete run, say why in one line, and read the rest. The incomplete
runs are made as they arise for real: an online attempt against a server that accepts and never
answers (W&B leaves a stub `run-<time>-<id>`: state finished, no history), and a run killed
mid-way (no exit record)."""

from __future__ import annotations

import csv
import os
import socket
import subprocess
import sys
from pathlib import Path

import pytest

from conftest import REPO, launch
from nexus import compare, publish

# What the run does before it falls back to offline: W&B times out, leaving its stub behind.
ONLINE_ATTEMPT = """
import sys, wandb
try:
    wandb.init(mode="online", dir=sys.argv[1], project="nexus", settings=wandb.Settings(init_timeout=2, silent=True))
except Exception:
    pass
"""
KILLED = """
import os, sys, wandb
run = wandb.init(mode="offline", dir=sys.argv[1], project="nexus", settings=wandb.Settings(silent=True))
run.log({"epoch": -1, "zero_shot/val_spearman": 0.5})
os._exit(1)
"""


def wandb_script(script: str, run_dir: Path, **env: str) -> None:
    """`script` in a process of its own, writing into run_dir/wandb (it fails on purpose: what it
    leaves there is checked)."""
    clean = {k: v for k, v in os.environ.items() if not k.startswith("WANDB_")}
    subprocess.run([sys.executable, "-c", script, str(run_dir)], env={**clean, "HOME": str(run_dir.parent), **env},
                   timeout=300)


@pytest.fixture(scope="module")
def run_with_leftovers(tmp_path_factory) -> dict:
    """A smoke run folder whose wandb/ holds its offline run, a stub of an online attempt and a killed run."""
    run_dir = tmp_path_factory.mktemp("leftovers") / "run"
    assert launch("+experiment=smoke", "logger.log_model=false", f"hydra.run.dir={run_dir}") == 0
    (real,) = (run_dir / "wandb").glob("offline-run-*")
    with socket.socket() as silent:
        silent.bind(("127.0.0.1", 0))
        silent.listen(16)  # the kernel completes the handshakes; nothing reads or replies
        wandb_script(ONLINE_ATTEMPT, run_dir, WANDB_API_KEY="a" * 40,
                     WANDB_BASE_URL=f"http://127.0.0.1:{silent.getsockname()[1]}")
    wandb_script(KILLED, run_dir)
    (stub,) = (run_dir / "wandb").glob("run-*")
    (killed,) = set((run_dir / "wandb").glob("offline-run-*")) - {real}
    return {"run": run_dir, "real": real, "skipped": [
        f"skipped {stub}: an online attempt with no history (the run fell back to offline)",
        f"skipped {killed}: no exit record in its W&B log (the run was killed, or is still running)"]}


def test_compare_reads_the_complete_run_and_says_what_it_skipped(run_with_leftovers, tmp_path, capsys):
    code = compare.main(["--wandb", str(run_with_leftovers["run"]), "--out", str(tmp_path / "out")])
    err = capsys.readouterr().err
    assert code == 0, err
    assert sorted(line for line in err.splitlines() if line.startswith("skipped ")) == \
        sorted(run_with_leftovers["skipped"])
    (row,) = csv.DictReader((tmp_path / "out" / "table.csv").open())
    assert (row["configuration"], row["seeds"]) == ("pai=disabled", "42")  # the one complete run


def test_publish_syncs_the_complete_run_and_says_what_it_skipped(run_with_leftovers, capsys):
    assert publish.main([str(run_with_leftovers["run"]), "--project", "team/nexus", "--dry-run"]) == 0
    out = capsys.readouterr().out
    assert sorted(line for line in out.splitlines() if line.startswith("skipped ")) == \
        sorted(run_with_leftovers["skipped"])
    assert "1. sync 1 offline runs (skipped: 0 already synced, 0 online, 2 incomplete):" in out
    assert out.split("1. sync ", 1)[1].split("\n2. ")[0].rstrip().endswith(str(run_with_leftovers["real"]))


@pytest.mark.parametrize("command", [["nexus.compare", "--out", "{tmp}/out", "--wandb", "{run}"],
                                     ["nexus.publish", "{run}", "--project", "team/nexus", "--dry-run"]],
                         ids=["nexus-compare --wandb", "nexus-publish --dry-run"])
def test_reading_runs_shows_progress_on_stderr(run_with_leftovers, tmp_path, command):
    """On a pipe, a plain line per run read; stdout stays the report."""
    args = [a.format(tmp=tmp_path, run=run_with_leftovers["run"]) for a in command]
    done = subprocess.run([sys.executable, "-m", *args], cwd=REPO, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr
    assert [line for line in done.stderr.splitlines() if line.startswith("reading W&B runs: ")] == \
        [f"reading W&B runs: {k}/3" for k in (1, 2, 3)]
    assert "reading W&B runs" not in done.stdout
