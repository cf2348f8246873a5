"""The processes of a sweep's runs: started fresh or forked from the runner (on GPU machines too,
where a probe says CUDA starts in a fork), known by pid and start time, signalled as a group, and
stopped when a killed runner left them behind."""

from __future__ import annotations

import contextlib
import importlib
import importlib.util
import io
import multiprocessing
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

from nexus.run_folder import read_summary
from nexus.sweep.state import DONE_STATUSES, SweepRun
from nexus.sweep.sweep_file import agent_command, nexus_program

POLL_S = 0.5
STOP_GRACE_S = 30  # a run told to stop writes summary.json (status interrupted) and finishes W&B
# What a run of launch.py imports, some of it only when it gets there: imported once by a runner
# that forks its runs.
RUN_IMPORTS = ("nexus.run", "sentence_transformers", "wandb", "perforatedai.utils_perforatedai")


# ---------------------------------------------------------------------------------------------
# Knowing a process, signalling it
# ---------------------------------------------------------------------------------------------

def process_start(pid: int) -> int | None:
    """When process `pid` started (clock ticks after boot: field 22 of /proc/<pid>/stat); None if
    it has exited (gone, or a zombie not yet reaped) or there is no /proc (not Linux)."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    fields = stat.rsplit(")", 1)[1].split()  # after the command name, which may hold anything: fields 3...
    return None if fields[0] == "Z" else int(fields[19])


def orphan_alive(run: SweepRun, run_dir: Path) -> bool:
    """Whether the run's process outlived its runner: the same pid and start time, so a reused pid
    is never mistaken for it. Linux /proc; elsewhere orphans are not detected."""
    if run.pid is None:
        return False
    if run.pid_start is None:  # a state file from before start times were recorded (fresh processes only)
        try:
            return str(run_dir).encode() in Path(f"/proc/{run.pid}/cmdline").read_bytes()
        except OSError:
            return False
    return process_start(run.pid) == run.pid_start


def signal_group(pid: int, sig: int) -> None:
    """Send `sig` to the run's process group (launch.py and W&B's service process), if it still exists."""
    with contextlib.suppress(ProcessLookupError):
        os.killpg(pid, sig)


def stop_orphan(run: SweepRun, run_dir: Path) -> None:
    """Stop a run a killed runner left behind; one that has written its result may finish W&B first."""
    print(f"{run.folder_name}: stopping the run left over by the interrupted runner (pid {run.pid})")
    deadline = time.monotonic() + STOP_GRACE_S
    while (read_summary(run_dir) or {}).get("status") in DONE_STATUSES and time.monotonic() < deadline \
            and orphan_alive(run, run_dir):
        time.sleep(POLL_S)
    if orphan_alive(run, run_dir):
        signal_group(run.pid, signal.SIGKILL)
        while orphan_alive(run, run_dir) and time.monotonic() < deadline + 10:
            time.sleep(0.1)


# ---------------------------------------------------------------------------------------------
# Starting a run: a fresh process, or a fork of the runner
# ---------------------------------------------------------------------------------------------

def spawn(command: list[str], run_dir: Path, env: dict, launch=None, program: str = "",
          args: list[str] | None = None):
    """Start a run with stdout.log and stderr.log in `run_dir`: `command` as a fresh process, or,
    given `launch` (launch.py as a module), `program`'s main(args) in a forked child; either way
    with environment `env`. The logs are appended to: a run that goes on from its checkpoint keeps
    the log of its interrupted part."""
    with open(run_dir / "stdout.log", "a") as out, open(run_dir / "stderr.log", "a") as err:
        if launch is not None:
            return ForkedRun(launch, program, args, out.fileno(), err.fileno(), env)
        # Like the agent: a process group of its own (stopped as a whole) and no stdin.
        return subprocess.Popen(command, stdin=subprocess.DEVNULL, stdout=out, stderr=err, env=env,
                                process_group=0)


class ForkedRun:
    """A run in a forked child of this runner, with what the runner uses of Popen: pid, poll(), wait()."""

    def __init__(self, launch, program: str, args: list[str], out: int, err: int, env: dict):
        self.process = multiprocessing.get_context("fork").Process(
            target=run_forked, args=(launch, program, args, out, err, env))
        self.process.start()
        self.pid = self.process.pid
        # The child makes its group too; both, as shells do, so that it exists once we return.
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.setpgid(self.pid, self.pid)

    def poll(self) -> int | None:
        return self.process.exitcode

    def wait(self, timeout: float | None = None) -> int:
        self.process.join(timeout)
        if self.process.exitcode is None:
            raise subprocess.TimeoutExpired(self.process.name, timeout)
        return self.process.exitcode


def run_forked(launch, program: str, args: list[str], out: int, err: int, env: dict) -> None:
    """The forked child: made what `python PROGRAM ARGS` would start as, then PROGRAM's main(ARGS)."""
    os.setpgid(0, 0)  # like the agent's runs: a group of its own, stopped as a whole
    stdin = os.open(os.devnull, os.O_RDONLY)
    for source, target in ((stdin, 0), (out, 1), (err, 2)):
        os.dup2(source, target)
    os.close(stdin)
    # The runner's sys.stdout may be anything (redirected in Python, pytest's capture): fd 1 and 2
    # now, for the child's whole life; stderr line-buffered as Python makes it.
    sys.stdout = open(1, "w", closefd=False)  # noqa: SIM115
    sys.stderr = open(2, "w", buffering=1, errors="backslashreplace", closefd=False)  # noqa: SIM115
    # The runner's SIGTERM handler raises KeyboardInterrupt; a run installs its own on the default.
    # (SIGINT is the runner's as it started, as a fresh process would have it.)
    signal.signal(signal.SIGTERM, signal.SIG_DFL)
    # The run's environment (its GPU, its threads): CUDA reads CUDA_VISIBLE_DEVICES when a run first
    # uses it, which the runner never does.
    os.environ.clear()
    os.environ.update(env)
    threads = env.get("OMP_NUM_THREADS", "")
    if threads.isdigit() and int(threads) > 0:
        import torch

        torch.set_num_threads(int(threads))  # torch read OMP_NUM_THREADS at import, in the runner
    sys.argv = [program, *args]
    try:
        code = launch.main(args)
    finally:
        # What W&B's atexit hook does at a fresh process's exit (a forked child skips atexit):
        # finish a run left open and stop its service process in order.
        import wandb

        wandb.teardown()
    sys.exit(code)


def cuda_fails_in_fork(env: dict) -> str | None:
    """Why a run forked from this process could not use CUDA (the first line of the error), or None
    when it can, or when it will see no GPU and train on the CPU. A forked probe with the run's
    environment `env` finds out: CUDA cannot start in a child of a process that started it, and
    what this process imported may have (torch's availability check starts it, unless
    PYTORCH_NVML_BASED_CUDA_CHECK=1 makes it ask NVML)."""
    context = multiprocessing.get_context("fork")
    reader, writer = context.Pipe(duplex=False)

    def probe():
        os.environ.clear()
        os.environ.update(env)
        try:
            import torch

            if torch.cuda.is_available():
                torch.cuda.init()
            writer.send(None)
        except Exception as err:  # noqa: BLE001 - any failure means: do not fork CUDA runs
            writer.send((str(err).strip().splitlines() or [type(err).__name__])[0])

    child = context.Process(target=probe)
    child.start()
    child.join()
    return reader.recv() if reader.poll() else f"the probe exited with code {child.exitcode}"


def import_for_forking(config: dict):
    """launch.py as a module, with what its runs import, when the sweep's runs can be forked from
    this process: the command runs NEXUS's launch.py with this Python, the platform has fork, and
    the `nexus` imported here is the one beside launch.py (the one a fresh `python launch.py`
    imports). None otherwise."""
    import nexus

    program = nexus_program(config)
    if program is None or "fork" not in multiprocessing.get_all_start_methods():
        return None
    argv = agent_command(config, {}, interpreter=sys.executable)
    if argv[:argv.index(config["program"])] not in ([sys.executable], ["/usr/bin/env", sys.executable]):
        return None
    if Path(nexus.__file__).resolve().parent != program.resolve().parent / "nexus":
        return None
    spec = importlib.util.spec_from_file_location(program.stem, program)
    launch = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(launch)
    for name in RUN_IMPORTS:
        try:
            with contextlib.redirect_stdout(io.StringIO()):  # perforatedai's banner: not the sweep's output
                importlib.import_module(name)
        except ImportError:  # perforatedai is needed by dendritic runs only; they will say so
            pass
    return launch
