"""The nexus-sweep command line (also `python -m nexus.sweep`)."""

from __future__ import annotations

import argparse
import contextlib
import signal
import threading
from pathlib import Path

from nexus.errors import UserError, report
from nexus.sweep.processes import import_for_forking
from nexus.sweep.results import print_results
from nexus.sweep.runner import SweepRunner
from nexus.sweep.sweep_file import check_sweep, load_sweep_file

LOCK_FILE = "sweep.lock"


def default_folder(sweep_file: Path) -> Path:
    from nexus.compose import default_home

    return default_home() / "sweeps" / sweep_file.stem


@contextlib.contextmanager
def locked(folder: Path):
    """One runner per folder: hold `folder`/sweep.lock for the block."""
    from filelock import FileLock, Timeout

    lock = FileLock(folder / LOCK_FILE)
    try:
        lock.acquire(timeout=0)
    except Timeout:
        raise UserError(f"{folder} is in use by another nexus-sweep ({folder / LOCK_FILE} is locked)") from None
    try:
        yield
    finally:
        lock.release()


@contextlib.contextmanager
def sigterm_as_interrupt():
    """SIGTERM (kill, SLURM's preemption) stops the runner like Ctrl-C (main thread only)."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    previous = signal.signal(signal.SIGTERM, signal.default_int_handler)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)


def run_sweep(sweep_file: Path, folder: Path | None = None, workers: int = 1, count: int | None = None,
              overrides: list[str] | None = None, fork: bool = True) -> int:
    """Run (or go on with) a sweep file in `folder`. 0: every run completed, 1: some failed,
    130: interrupted. Raises UserError, before any run starts, for a sweep that cannot run.
    `fork`: fork the runs of launch.py from this process where possible (see the package's doc);
    safe only in a process that has run no torch computation and no W&B run yet: a child forked
    after OpenMP's thread pool started can hang (`python -m nexus.sweep` runs none)."""
    overrides = list(overrides or [])
    folder = (folder or default_folder(sweep_file)).expanduser().resolve()
    config = load_sweep_file(sweep_file)
    try:
        check_sweep(config, overrides, folder)
    except UserError as err:
        raise UserError(f"{sweep_file}: {err}") from None
    folder.mkdir(parents=True, exist_ok=True)
    interrupted = False
    with locked(folder):
        launch = import_for_forking(config) if fork else None
        print(f"sweep {sweep_file}: each run {'forked from this runner' if launch else 'a fresh process'}, "
              f"{workers} at a time", flush=True)
        runner = SweepRunner(folder, sweep_file, config, overrides, workers, launch)
        with sigterm_as_interrupt():
            runner.load()
            runner.recover()
            try:
                runner.run(workers, count)
            except KeyboardInterrupt:
                interrupted = True
                print("interrupted: stopping the runs in flight; run the same command again to go on", flush=True)
                runner.stop_all()
    goal = (config.get("metric") or {}).get("goal", "maximize")
    print_results(runner.runs, runner.metric, goal == "maximize", f"sweep {runner.name}: {folder}")
    if interrupted:
        return 130
    return 1 if any(run.state == "failed" for run in runner.runs) else 0


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    def positive(text: str) -> int:
        if not text.isdigit() or int(text) < 1:
            raise argparse.ArgumentTypeError(f"expected a whole number >= 1, got {text!r}")
        return int(text)

    parser = argparse.ArgumentParser(prog="nexus-sweep",
                                     description="Run a W&B sweep file on this machine, without a W&B server.")
    parser.add_argument("sweep_file", type=Path, help="a W&B sweep file, e.g. sweeps/pai.yaml")
    parser.add_argument("--workers", type=positive, default=1, help="runs at once (default 1)")
    parser.add_argument("--count", type=positive, default=None,
                        help="start at most K runs in this invocation, as `wandb agent --count`")
    parser.add_argument("--dir", type=Path, default=None,
                        help="the sweep's folder (default $NEXUS_HOME/sweeps/<sweep file stem>)")
    parser.add_argument("--override", action="append", default=[], metavar="KEY=VALUE",
                        help="a Hydra override appended to every run's command (repeatable), "
                             "e.g. logger.log_model=false")
    parser.add_argument("--no-fork", dest="fork", action="store_false",
                        help="start every run as a fresh process, as `wandb agent` does")
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    try:
        return run_sweep(args.sweep_file, args.dir, args.workers, args.count, args.override, args.fork)
    except UserError as err:
        return report(err)
