"""The nexus-sweep command line (also `python -m nexus.sweep`)."""

from __future__ import annotations

import argparse
import contextlib
import os
import signal
import sys
import tempfile
import threading
from pathlib import Path

from nexus.errors import UserError, report
from nexus.sweep.placement import plan
from nexus.sweep.processes import cuda_fails_in_fork, import_for_forking
from nexus.sweep.results import print_results
from nexus.sweep.runner import SweepRunner
from nexus.sweep.sweep_file import check_sweep, grid_size, load_sweep_file, number_strings, read_sweep_yaml

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


def checked_config(sweep_file: Path, overrides: list[str], folder: Path) -> dict:
    """The sweep file, refused (UserError naming it) if it or its runs' arguments are bad."""
    config = load_sweep_file(sweep_file)
    try:
        check_sweep(config, overrides, folder)
    except UserError as err:
        raise UserError(f"{sweep_file}: {err}") from None
    return config


def check_file(sweep_file: Path) -> int:
    """`nexus-sweep check FILE`: the checks a sweep gets before its first run, without running it
    (what to run before `wandb sweep FILE`). 0 and `ok: FILE (...)`, or 2 and each problem in a line."""
    config = read_sweep_yaml(sweep_file)
    problems = number_strings(config.get("parameters") if isinstance(config, dict) else None)
    if problems:
        for problem in problems:
            report(UserError(f"{sweep_file}: {problem}"))
        return 2
    with tempfile.TemporaryDirectory() as folder:  # where the checked runs' folders would go
        config = checked_config(sweep_file, [], Path(folder))
    runs = f"{grid_size(config)} runs for grid" if config["method"] == "grid" else \
        f"{config['method']}: no fixed number of runs"
    print(f"ok: {sweep_file} ({runs})")
    return 0


def run_sweep(sweep_file: Path, folder: Path | None = None, workers: int | None = None, count: int | None = None,
              overrides: list[str] | None = None, fork: bool = True, gpus: str | None = None,
              runs_per_gpu: int | None = None, retry_failed: bool = False, seed: int | None = None) -> int:
    """Run (or go on with) a sweep file in `folder`. 0: every run completed, 1: some failed,
    130: interrupted. Raises UserError, before any run starts, for a sweep that cannot run.
    The arguments are the command line's (`gpus`: --gpus as given). `fork`: fork the runs of
    launch.py from this process where possible (see the package's doc); safe only in a process
    that has run no torch computation and no W&B run yet: a child forked after OpenMP's thread
    pool started can hang (`python -m nexus.sweep` runs none)."""
    placement = plan(workers, gpus, runs_per_gpu, dict(os.environ))
    overrides = list(overrides or [])
    folder = (folder or default_folder(sweep_file)).expanduser().resolve()
    config = checked_config(sweep_file, overrides, folder)
    folder.mkdir(parents=True, exist_ok=True)
    interrupted = False
    with locked(folder):
        if fork and placement.sees_gpus:
            # torch's CUDA check, in what the imports run, would otherwise start CUDA in this
            # process, and CUDA cannot start again in a child forked from it.
            os.environ.setdefault("PYTORCH_NVML_BASED_CUDA_CHECK", "1")
        launch = import_for_forking(config) if fork else None
        no_cuda = launch and placement.sees_gpus and cuda_fails_in_fork(placement.env(os.environ, placement.card([])))
        if no_cuda:
            launch = None
        how = "forked from this runner" if launch else \
            "a fresh process" + (f" (CUDA cannot start in a forked child here: {no_cuda})" if no_cuda else "")
        print(f"sweep {sweep_file}: each run {how}, {placement.workers} at a time{placement.note}", flush=True)
        runner = SweepRunner(folder, sweep_file, config, overrides, placement, launch, seed)
        with sigterm_as_interrupt():
            runner.load()
            runner.recover()
            if retry_failed:
                runner.retry_failed()
            try:
                runner.run(count)
            except KeyboardInterrupt:
                interrupted = True
                print("interrupted: stopping the runs in flight; run the same command again to go on", flush=True)
                runner.stop_all()
    goal = (config.get("metric") or {}).get("goal", "maximize")
    print_results(runner.runs, runner.metric, goal == "maximize", f"sweep {runner.name}: {folder}")
    if interrupted:
        return 130
    return 1 if any(run.state == "failed" for run in runner.runs) else 0


class Parser(argparse.ArgumentParser):
    """Bad arguments are reported as every mistake is here: one line, exit code 2."""

    def error(self, message: str):
        raise UserError(message)


def whole_number(minimum: int):
    def parse(text: str) -> int:
        if not text.isdigit() or int(text) < minimum:
            raise argparse.ArgumentTypeError(f"expected a whole number >= {minimum}, got {text!r}")
        return int(text)
    return parse


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = Parser(prog="nexus-sweep", description="Run a W&B sweep file on this machine, without a W&B server "
                    "(`nexus-sweep check FILE`: only check it).")
    parser.add_argument("sweep_file", type=Path, help="a W&B sweep file, e.g. sweeps/pai.yaml")
    parser.add_argument("--workers", type=whole_number(1), default=None,
                        help="runs at once (default: 1, or GPUs x --runs-per-gpu with --gpus)")
    parser.add_argument("--gpus", default=None, metavar="0,1|all",
                        help="give each run one of these GPUs (CUDA_VISIBLE_DEVICES), spread evenly")
    parser.add_argument("--runs-per-gpu", type=whole_number(1), default=None, metavar="K",
                        help="with --gpus: K runs at once on each GPU (default 1)")
    parser.add_argument("--count", type=whole_number(1), default=None,
                        help="start at most K runs in this invocation, as `wandb agent --count`")
    parser.add_argument("--retry-failed", action="store_true",
                        help="run the failed parameter sets again, each in a fresh folder")
    parser.add_argument("--seed", type=whole_number(0), default=None,
                        help="make the proposals of random and bayes sweeps reproducible")
    parser.add_argument("--dir", type=Path, default=None,
                        help="the sweep's folder (default $NEXUS_HOME/sweeps/<sweep file stem>)")
    parser.add_argument("--override", action="append", default=[], metavar="KEY=VALUE",
                        help="a Hydra override appended to every run's command (repeatable), "
                             "e.g. logger.log_model=false")
    parser.add_argument("--no-fork", dest="fork", action="store_false",
                        help="start every run as a fresh process, as `wandb agent` does")
    return parser.parse_args(argv)


def parse_check_args(argv: list[str]) -> argparse.Namespace:
    parser = Parser(prog="nexus-sweep check", description="Check a sweep file before `wandb sweep FILE`: its "
                    "schema, its runs' arguments, and numbers YAML 1.1 reads as strings (1e-4).")
    parser.add_argument("sweep_file", type=Path, help="a W&B sweep file, e.g. sweeps/pai.yaml")
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    try:
        # `check` first, else a sweep file: a file named check is ./check
        if argv[:1] == ["check"]:
            return check_file(parse_check_args(argv[1:]).sweep_file)
        args = parse_args(argv)
        return run_sweep(args.sweep_file, args.dir, args.workers, args.count, args.override, args.fork,
                         args.gpus, args.runs_per_gpu, args.retry_failed, args.seed)
    except UserError as err:
        return report(err)
