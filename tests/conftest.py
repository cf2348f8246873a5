"""Shared fixtures: one embedding cache for the whole session (the real MiniLM encodes each
smoke sentence once), a helper that runs the real entry point with argv, and the hold that lets
tests kill or signal runs at a known point."""

from __future__ import annotations

import json
import os
import time
from pathlib import Path
from typing import Callable

import pytest

from nexus.train import set_denormal_flushing

REPO = Path(__file__).resolve().parents[1]

# Runs in this process (launch(...)) start as `python launch.py` does, with denormals flushed on
# every thread: that has to happen before torch's first parallel operation starts OpenMP's
# workers, and tests run torch (the cache's encoder) before their first run. Otherwise the last
# bit of a run's metrics here can differ from the same run in a fresh process.
set_denormal_flushing(True)


CARDS = os.environ.get("CUDA_VISIBLE_DEVICES")  # the GPUs this test process was given, if it names them


def pytest_collection_modifyitems(config, items):
    """Where torch sees no GPU, each `gpu` test is skipped and says why. Where it sees one, the
    other tests still check what docs/reliability.md promises of the CPU (runs equal to the last bit across
    processes, launchers and resumes): their runs are kept off the cards, as CUDA_VISIBLE_DEVICES=""
    keeps any program off them; the `gpu` tests give their runs the cards back (`with_gpus`)."""
    # NVML answers without starting CUDA in this process: runs forked from it later could not start it.
    os.environ.setdefault("PYTORCH_NVML_BASED_CUDA_CHECK", "1")
    import torch

    if torch.cuda.is_available():
        os.environ["CUDA_VISIBLE_DEVICES"] = ""
        return
    for item in items:
        if "gpu" in item.keywords:
            item.add_marker(pytest.mark.skip(reason="needs a CUDA GPU: torch sees none here"))


def with_gpus(env: dict) -> dict:
    """`env` with the GPUs this test process was given: for the runs of `gpu` tests."""
    env = {k: v for k, v in env.items() if k != "CUDA_VISIBLE_DEVICES"}
    return env if CARDS is None else {**env, "CUDA_VISIBLE_DEVICES": CARDS}


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


@pytest.fixture(autouse=True)
def own_wandb_service_per_test():
    """A W&B run in this process starts wandb's service and exports its address (WANDB_SERVICE):
    every process a later test starts would log through this process's service instead of its own.
    Stop it after each test, as a fresh process's exit does (wandb's atexit hook)."""
    yield
    if "WANDB_SERVICE" in os.environ:
        import wandb

        wandb.teardown()


def launch(*args: str) -> int:
    """`python launch.py ARGS` in this process, as Hydra sees it."""
    import launch as entry

    return entry.main(list(args))


def read_jsonl(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


def read_json(path: Path) -> dict:
    return json.loads(path.read_text())


def without_times(rows: list[dict]) -> list[dict]:
    """Records (epochs, summaries) without their wall times: what two runs of one config share."""
    return [{k: v for k, v in row.items() if not k.startswith("time/")} for row in rows]


def offline_run_dirs(run_dir: Path) -> list[Path]:
    return sorted((run_dir / "wandb").glob("offline-run-*"))


def records(run_dir: Path, kind: str) -> list[dict]:
    """The `kind` records (run, history, summary, exit, ...) of the run folder's one offline W&B run."""
    from nexus.tracking import read_offline_run

    (wandb_run,) = offline_run_dirs(run_dir)
    return [r[kind] for r in read_offline_run(wandb_run) if r["type"] == kind]


@pytest.fixture(scope="session")
def smoke_cfg():
    """The composed config of `+experiment=smoke` (nexus.compose: the one way tests compose configs)."""
    from nexus.compose import compose

    return compose(["+experiment=smoke"])


def wait_for(condition: Callable, what: str, process=None, timeout: float = 300):
    """`condition()`'s first truthy value. Only for states the test has arranged to come (a run
    waiting at a hold stays there): the deadline turns a hang into a failure, it decides nothing."""
    deadline = time.monotonic() + timeout
    while not (value := condition()):
        assert process is None or process.poll() is None, f"the process ended before {what}"
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.02)
    return value


class Hold:
    """Runs started with `env` wait after epoch `epoch`'s checkpoint until released
    (nexus.train.hold_for_tests): "the run is in flight" is then a fact, not a matter of timing."""

    def __init__(self, folder: Path, epoch: int):
        folder.mkdir(parents=True, exist_ok=True)
        self.folder = folder
        self.env = {**os.environ, "NEXUS_TEST_HOLD": f"{epoch}:{folder}"}

    def held(self) -> set[int]:
        """The pids of the runs waiting now."""
        return {int(mark.name) for mark in self.folder.iterdir()}

    def wait(self, pid: int, process=None) -> None:
        wait_for(lambda: pid in self.held(), f"run {pid} to wait at the hold", process)

    def release(self, pid: int) -> None:
        (self.folder / str(pid)).unlink(missing_ok=True)

    def release_all(self) -> None:
        """After a test, so that no run it held waits forever."""
        for pid in self.held():
            self.release(pid)
