"""Run a W&B sweep file on this machine, without a W&B server.

    python -m nexus.sweep sweeps/pai.yaml [--workers N] [--count K] [--dir DIR] [--override KEY=VALUE ...]
                                          [--no-fork]

What an agent would do, offline: W&B's own search engine (the open-source `sweeps` package, the
one the W&B server runs) picks each parameter set, for grid, random and bayes, and the command
line is built by the functions `wandb agent` uses. To that command the runner appends the
--override values, then its own two overrides: `hydra.run.dir=DIR/runs/<run>` and
`++logger.sweep=<sweep name>` (++ because `logger=none` has no such key), so every run of the
sweep carries the W&B tag `sweep:<name>`; its W&B group stays its configuration without the seed,
as for a run started any other way. Two deliberate differences:

- ${interpreter} is this Python (sys.executable) where the agent puts `python` from PATH, so the
  runs use the environment the runner was started from.
- Fork mode. When the command runs NEXUS's own launch.py with this Python (and the platform has
  fork), each run is a forked child of the runner instead of a fresh process: the runner imports
  launch.py and what its runs import (torch, sentence-transformers, W&B, perforatedai) once, and
  each child starts as `python launch.py ARGS` would (its own process group, no stdin, stdout and
  stderr in the run's logs, SIGTERM at its default, the same OMP_NUM_THREADS, the same sys.argv)
  and calls launch.main(ARGS). A fresh process spends ~15 s importing and exiting before and
  after a run; a fork, well under a second. The runner itself runs no torch computation and
  starts no W&B, so nothing is forked mid-way (thread pools, W&B's service). Each run's recorded
  command is still the equivalent command line; --no-fork starts every run as that fresh
  process, as `wandb agent` does.

DIR (default $NEXUS_HOME/sweeps/<sweep file stem>) holds `sweep.json` (the state, rewritten
atomically after every change), `sweep.lock` (held while a runner works on DIR: one runner per
DIR) and runs/<run>/ (the Hydra run folder, plus the run's stdout.log and stderr.log).

Stopping and going on: Ctrl-C (or SIGTERM) stops the runs in flight; run the same command again
and only what is missing runs. A run is done once its folder's summary.json says completed or
failed (or it exited non-zero: recorded with its last stderr line, and the sweep goes on); a run
that was in flight is run again with the same parameters in a fresh folder (run-007-attempt2).
After a kill -9 of the runner its runs live on as orphans: the next runner stops them first (a
run's process is known by its pid and start time, so a reused pid is never taken for it).
"""

from __future__ import annotations

import argparse
import contextlib
import copy
import importlib
import importlib.util
import io
import json
import multiprocessing
import os
import platform
import signal
import subprocess
import sys
import threading
import time
import warnings
from dataclasses import asdict, dataclass, field
from pathlib import Path

import yaml

from nexus.errors import UserError
from nexus.tracking import SUMMARY_FILE, write_json_atomic

STATE_FILE = "sweep.json"
LOCK_FILE = "sweep.lock"
POLL_S = 0.5
STOP_GRACE_S = 30  # a run told to stop writes summary.json (status interrupted) and finishes W&B
DONE_STATUSES = ("completed", "failed")  # summary.json statuses that make a run done
# What wandb's agent substitutes for ${interpreter} (wandb/wandb_agent.py, Agent._command_run).
AGENT_INTERPRETER = "python"
# What a run of launch.py imports, some of it only when it gets there: imported once by a runner
# that forks its runs.
RUN_IMPORTS = ("nexus.run", "sentence_transformers", "wandb", "perforatedai.utils_perforatedai")


def import_sweeps():
    """The `sweeps` package; its pydantic models warn on import, which would break one-line errors."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        import sweeps
    return sweeps


# ---------------------------------------------------------------------------------------------
# The sweep file: schema, parameter values, the agent's command line
# ---------------------------------------------------------------------------------------------

def one_line(text: str) -> str:
    return " ".join(str(text).split())


def schema_problem(config) -> str | None:
    """The first violation of the sweep schema (what `wandb sweep` checks), naming its key."""
    import jsonschema

    sweeps = import_sweeps()
    from sweeps.config.schema import validator

    if not isinstance(config, dict):
        return "a sweep file is a YAML mapping (method, metric, parameters, ...)"
    error = jsonschema.exceptions.best_match(validator.iter_errors(config))
    if error is not None:  # jsonschema knows where; the sweeps summary below only says what
        return f"{'.'.join(map(str, error.absolute_path)) or 'top level'}: {one_line(error.message)}"
    try:
        violations = sweeps.schema_violations_from_proposed_config(config)
    except ValueError as err:  # a parameter that is not a mapping
        return one_line(err)
    return one_line(violations[0]) if violations else None


def load_sweep_file(path: Path) -> dict:
    """The sweep file as `wandb sweep` reads it (yaml.safe_load, YAML 1.1), schema-checked."""
    try:
        config = yaml.safe_load(path.read_text())
    except OSError as err:
        raise UserError(f"cannot read sweep file {path}: {err.strerror}") from None
    except yaml.YAMLError as err:
        raise UserError(f"{path}: not valid YAML: {one_line(err)}") from None
    problem = schema_problem(config)
    if problem:
        raise UserError(f"{path}: {problem}")
    if "${program}" in map(str, config.get("command") or ["${program}"]) and not config.get("program"):
        raise UserError(f"{path}: program: required by ${{program}} in the command")
    return config


def agent_command(config: dict, params: dict, interpreter: str = AGENT_INTERPRETER,
                  args_json_file: str = "") -> list[str]:
    """The argv `wandb agent` runs for one parameter set (`params`: {"key": {"value": v}}).

    wandb builds the macro values with create_sweep_command_args, fills ${envvar:...} with
    create_sweep_command, then substitutes macros in a loop inline in Agent._command_run: the
    loop and the four values the agent adds are copied from there (wandb 0.31), since wandb has
    no function for them.
    """
    from wandb.sdk.launch.sweeps import utils as sweep_utils

    # create_sweep_command edits the list in place: hand it a copy.
    command = sweep_utils.create_sweep_command(copy.deepcopy(config.get("command")) or None)
    sweep_vars = sweep_utils.create_sweep_command_args({"args": params})
    sweep_vars["interpreter"] = [interpreter]
    sweep_vars["program"] = [config.get("program")]
    sweep_vars["args_json_file"] = [args_json_file]
    if platform.system() != "Windows":
        sweep_vars["env"] = ["/usr/bin/env"]
    argv = []
    for c in command:
        c = str(c)
        if c.startswith("${") and c.endswith("}"):
            argv += sweep_vars.get(c[2:-1]) or []
        else:
            argv += [c]
    return argv


def hydra_string(text: str) -> str:
    """`text` as a Hydra override value that stays a string whatever it looks like (quoted)."""
    return "'" + text.replace("'", "\\'") + "'"


def covering_sets(config: dict) -> list[dict]:
    """A few parameter sets that between them use every listed value of every parameter: the
    engine's first pick with the `values` lists walked in step (each one a point of a grid)."""
    first = import_sweeps().next_run(config, []).config
    lists = {key: p["values"] for key, p in config["parameters"].items() if p.get("values")}
    steps = max((len(values) for values in lists.values()), default=1)
    return [{**first, **{key: {"value": values[i % len(values)]} for key, values in lists.items()}}
            for i in range(steps)]


def program_args(argv: list[str], config: dict) -> list[str] | None:
    """The arguments a Hydra program receives: what follows the program in the command."""
    program = config.get("program")
    return argv[argv.index(program) + 1:] if program in argv else None


def check_parameter_values(config: dict, fixed_args: list[str], config_dir: Path) -> None:
    """YAML 1.1 turns off/on/yes/no into booleans and null reaches the command as 'None':
    refuse both where the config does not hold a boolean (a `pai` option, a number, a name)."""
    from hydra import compose, initialize_config_dir
    from hydra.core.global_hydra import GlobalHydra
    from omegaconf import OmegaConf

    odd = [(key, value) for key, p in config["parameters"].items()
           for value in ([p["value"]] if "value" in p else p.get("values", []))
           if value is None or isinstance(value, bool)]
    if not odd:
        return
    GlobalHydra.instance().clear()
    try:
        with initialize_config_dir(config_dir=str(config_dir), version_base="1.3"):
            cfg = compose(config_name="config", overrides=fixed_args, return_hydra_config=True)
    except Exception:  # noqa: BLE001  the fixed arguments themselves are bad: preflight says how
        return
    finally:
        GlobalHydra.instance().clear()
    missing = object()
    for key, value in odd:
        if value is None:
            raise UserError(f"parameters.{key}: null reaches the command line as the string 'None'; "
                            "give a value")
        current = OmegaConf.select(cfg, key, default=missing)
        if key in cfg.hydra.runtime.choices or (current is not missing and not isinstance(current, bool)):
            raise UserError(f"parameters.{key}: {value} is a YAML boolean (YAML 1.1 reads off/on/yes/no "
                            "as false/true), not a value for it; quote the value, e.g. 'off'")


def nexus_program(config: dict) -> Path | None:
    """The sweep's program when it is NEXUS's launch.py (conf/ beside it) and the command runs it."""
    program = config.get("program")
    if Path(program or "").name != "launch.py" or program_args(agent_command(config, {}), config) is None:
        return None
    return Path(program) if (Path(program).resolve().parent / "conf" / "config.yaml").is_file() else None


def check_sweep(config: dict, extra_args: list[str], folder: Path) -> None:
    """Refuse a sweep whose runs launch.py would refuse, before any of them starts."""
    program = config.get("program")
    if "${program}" in map(str, config.get("command") or ["${program}"]) and not Path(program).is_file():
        raise UserError(f"program: {program} not found in {Path.cwd()} (run from the folder `wandb agent` "
                        "would run in: the repository root)")
    if nexus_program(config) is None:
        return  # not NEXUS's launch.py: its arguments are its own business
    from nexus.preflight import preflight

    config_dir = Path(program).resolve().parent / "conf"
    fixed = program_args(agent_command(config, {}), config)

    jobs = [program_args(agent_command(config, params), config) + extra_args for params in covering_sets(config)]
    if any(arg.startswith("-") for args in jobs for arg in args):
        raise UserError("command: launch.py takes Hydra overrides (key=value): use ${args_no_hyphens}, "
                        "not ${args}")
    check_parameter_values(config, fixed + extra_args, config_dir)
    run_dir = hydra_string(str(folder / "runs" / "check"))
    for args in jobs:
        preflight([*args, f"hydra.run.dir={run_dir}"])


# ---------------------------------------------------------------------------------------------
# Runs and the state file
# ---------------------------------------------------------------------------------------------

@dataclass
class Run:
    name: str
    params: dict  # {"key": {"value": v}}: the config of the engine's SweepRun
    attempt: int = 1
    state: str = "pending"  # pending | running | finished | failed | interrupted
    pid: int | None = None
    pid_start: int | None = None  # the process's start time: with pid, what identifies it
    exit_code: int | None = None
    reason: str | None = None
    summary: dict = field(default_factory=dict)  # summary.json without the config
    command: list[str] = field(default_factory=list)

    @property
    def folder_name(self) -> str:
        return self.name if self.attempt == 1 else f"{self.name}-attempt{self.attempt}"

    def values(self) -> dict:
        return {key: p["value"] for key, p in self.params.items()}


def read_summary(run_dir: Path) -> dict | None:
    try:
        summary = json.loads((run_dir / SUMMARY_FILE).read_text())
    except (OSError, ValueError):
        return None
    summary.pop("config", None)
    return summary


def last_line(path: Path) -> str | None:
    try:
        lines = [line.strip() for line in path.read_text(errors="replace").splitlines() if line.strip()]
    except OSError:
        return None
    return lines[-1] if lines else None


def process_start(pid: int) -> int | None:
    """When process `pid` started (clock ticks after boot: field 22 of /proc/<pid>/stat); None if
    it has exited (gone, or a zombie not yet reaped) or there is no /proc (not Linux)."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    fields = stat.rsplit(")", 1)[1].split()  # after the command name, which may hold anything: fields 3...
    return None if fields[0] == "Z" else int(fields[19])


def orphan_alive(run: Run, run_dir: Path) -> bool:
    """Whether the run's process outlived its runner: the same pid and start time, so a reused pid
    is never mistaken for it. Linux /proc; elsewhere orphans are not detected."""
    if run.pid is None:
        return False
    if run.pid_start is None:  # recorded before start times were: a fresh process whose command names its folder
        try:
            return str(run_dir).encode() in Path(f"/proc/{run.pid}/cmdline").read_bytes()
        except OSError:
            return False
    return process_start(run.pid) == run.pid_start


class ForkedRun:
    """A run in a forked child of this runner, with what the runner uses of Popen: pid, poll(), wait()."""

    def __init__(self, launch, program: str, args: list[str], out: int, err: int, threads: str | None):
        self.process = multiprocessing.get_context("fork").Process(
            target=run_forked, args=(launch, program, args, out, err, threads))
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


def run_forked(launch, program: str, args: list[str], out: int, err: int, threads: str | None) -> None:
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
    if threads is not None:
        os.environ["OMP_NUM_THREADS"] = threads
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


def as_json(data):
    """What a JSON round trip makes of `data`, so a reloaded state compares equal."""
    return json.loads(json.dumps(data, default=str))


class SweepRunner:
    """One sweep folder: its state, its runs in flight, and the engine that proposes the next run."""

    def __init__(self, folder: Path, sweep_file: Path, config: dict, overrides: list[str], workers: int,
                 launch=None):
        """`launch`: launch.py as a module, imported with what its runs import, to fork each run
        from this process; None: each run is its command, in a fresh process."""
        sweeps = import_sweeps()
        self.folder, self.config, self.overrides = folder, config, overrides
        self.engine_config = sweeps.SweepConfig(config)  # defaults filled in, as the server does
        self.name = str(config.get("name") or sweep_file.stem)
        self.metric = (config.get("metric") or {}).get("name")
        self.runs: list[Run] = []
        self.procs: dict[str, subprocess.Popen | ForkedRun] = {}
        self.launch = launch
        self.exhausted = False
        self.env = dict(os.environ)
        if workers > 1 and "OMP_NUM_THREADS" not in self.env:
            # N runs on N cores: torch's default (all cores per run) oversubscribes them.
            self.env["OMP_NUM_THREADS"] = str(max(1, (os.cpu_count() or 1) // workers))
        self.state_file = folder / STATE_FILE
        self.header = {"sweep_file": str(sweep_file), "name": self.name, "config": as_json(config),
                       "overrides": overrides}

    # -- state --------------------------------------------------------------------------------
    def load(self) -> None:
        if not self.state_file.is_file():
            return
        state = json.loads(self.state_file.read_text())
        for key in ("config", "overrides"):
            if state[key] != self.header[key]:
                raise UserError(f"{self.folder} holds a sweep with other {key} ({state['sweep_file']}); "
                                "use another --dir")
        self.runs = [Run(**run) for run in state["runs"]]

    def save(self) -> None:
        write_json_atomic(self.state_file, {**self.header, "runs": [asdict(run) for run in self.runs]})

    def run_dir(self, run: Run) -> Path:
        return self.folder / "runs" / run.folder_name

    def recover(self) -> None:
        """After an interruption: stop orphans, keep what finished, queue the rest afresh."""
        for run in self.runs:
            if run.state in ("finished", "failed"):
                continue
            if run.pid and orphan_alive(run, self.run_dir(run)):
                self.stop_orphan(run)
            summary = read_summary(self.run_dir(run))
            if summary and summary.get("status") in DONE_STATUSES:
                self.record(run, 0 if summary["status"] == "completed" else 1, summary)
                continue
            while self.run_dir(run).exists():
                run.attempt += 1
            run.state, run.pid, run.pid_start = "pending", None, None
        self.save()

    def stop_orphan(self, run: Run) -> None:
        run_dir = self.run_dir(run)
        print(f"{run.folder_name}: stopping the run left over by the interrupted runner (pid {run.pid})")
        deadline = time.monotonic() + STOP_GRACE_S
        # An orphan that has written its result only finishes W&B: let it.
        while (read_summary(run_dir) or {}).get("status") in DONE_STATUSES and time.monotonic() < deadline \
                and orphan_alive(run, run_dir):
            time.sleep(POLL_S)
        if orphan_alive(run, run_dir):
            try:
                os.killpg(run.pid, signal.SIGKILL)  # its group: launch.py and W&B's service process
            except ProcessLookupError:
                pass
            while orphan_alive(run, run_dir) and time.monotonic() < deadline + 10:
                time.sleep(0.1)

    # -- proposing, starting, reaping ----------------------------------------------------------
    def next_run(self) -> Run | None:
        pending = [run for run in self.runs if run.state == "pending"]
        if pending:
            return pending[0]
        cap = self.config.get("run_cap")
        if self.exhausted or (cap is not None and len(self.runs) >= cap):
            return None
        sweeps = import_sweeps()
        finished = {"finished": sweeps.RunState.finished, "failed": sweeps.RunState.failed}
        # Finished runs with their metric, so bayes learns from them; the others count as running.
        history = [sweeps.SweepRun(name=run.name, config=run.params,
                                   state=finished.get(run.state, sweeps.RunState.running),
                                   summary_metrics={self.metric: run.summary[self.metric]}
                                   if self.metric in run.summary else {})
                   for run in self.runs]
        proposal = sweeps.next_run(self.engine_config, history)
        if proposal is None:  # grid: every parameter set has a run
            self.exhausted = True
            return None
        run = Run(name=f"run-{len(self.runs):03d}", params=proposal.config)
        while self.run_dir(run).exists():  # a folder the state file does not know (lost state)
            run.attempt += 1
        self.runs.append(run)
        return run

    def start(self, run: Run) -> None:
        run_dir = self.run_dir(run)
        run_dir.mkdir(parents=True)
        run.command = [*agent_command(self.config, run.params, interpreter=sys.executable,
                                      args_json_file=str(run_dir / "sweep_args.json")),
                       *self.overrides, f"hydra.run.dir={hydra_string(str(run_dir))}",
                       f"++logger.sweep={hydra_string(self.name)}"]
        if "${args_json_file}" in map(str, self.config.get("command") or []):
            (run_dir / "sweep_args.json").write_text(json.dumps(run.values()))
        with open(run_dir / "stdout.log", "w") as out, open(run_dir / "stderr.log", "w") as err:
            if self.launch is not None:
                proc = ForkedRun(self.launch, self.config["program"], program_args(run.command, self.config),
                                 out.fileno(), err.fileno(), self.env.get("OMP_NUM_THREADS"))
            else:
                # Like the agent: a process group of its own (stopped as a whole) and no stdin.
                proc = subprocess.Popen(run.command, stdin=subprocess.DEVNULL, stdout=out, stderr=err,
                                        env=self.env, process_group=0)
        self.procs[run.name] = proc
        run.state, run.pid, run.pid_start = "running", proc.pid, process_start(proc.pid)
        self.save()
        print(f"{run.folder_name}: started  {describe_values(run)}", flush=True)

    def record(self, run: Run, exit_code: int, summary: dict | None) -> None:
        summary = summary or {}
        run.exit_code, run.summary, run.pid, run.pid_start = exit_code, summary, None, None
        ok = exit_code == 0 and summary.get("status", "completed") == "completed"
        run.state = "finished" if ok else "failed"
        run.reason = None if ok else (last_line(self.run_dir(run) / "stderr.log") or summary.get("reason")
                                      or f"exit code {exit_code}")

    def reap(self) -> None:
        for name, proc in list(self.procs.items()):
            code = proc.poll()
            if code is None:
                continue
            del self.procs[name]
            run = next(r for r in self.runs if r.name == name)
            self.record(run, code, read_summary(self.run_dir(run)))
            self.save()
            value = run.summary.get(self.metric)
            result = f"{self.metric} {value:.4f}" if isinstance(value, (int, float)) else ""
            print(f"{run.folder_name}: {run.state}  {result or run.reason or ''}", flush=True)

    def stop_all(self) -> None:
        """Ctrl-C: each run gets SIGINT (launch.py records it as interrupted), then SIGKILL."""
        for proc in self.procs.values():
            with_group(proc.pid, signal.SIGINT)
        deadline = time.monotonic() + STOP_GRACE_S
        for proc in self.procs.values():
            try:
                proc.wait(timeout=max(0.0, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                with_group(proc.pid, signal.SIGKILL)
                proc.wait()
        for name in self.procs:
            run = next(r for r in self.runs if r.name == name)
            run.state, run.pid, run.pid_start, run.reason = "interrupted", None, None, "interrupted"
        self.procs.clear()
        self.save()

    def run(self, workers: int, count: int | None) -> None:
        started = 0
        while True:
            while len(self.procs) < workers and (count is None or started < count):
                run = self.next_run()
                if run is None:
                    break
                self.start(run)
                started += 1
            if not self.procs:
                return
            time.sleep(POLL_S)
            self.reap()


def with_group(pid: int, sig: int) -> None:
    try:
        os.killpg(pid, sig)
    except ProcessLookupError:
        pass


def describe_values(run: Run) -> str:
    return " ".join(f"{key}={value}" for key, value in run.values().items())


# ---------------------------------------------------------------------------------------------
# The results table
# ---------------------------------------------------------------------------------------------

def format_value(value) -> str:
    return f"{value:.4g}" if isinstance(value, float) else str(value)


def results_rows(runs: list[Run], metric: str | None, maximize: bool) -> tuple[list[str], list[list[str]]]:
    keys = list(dict.fromkeys(key for run in runs for key in run.params))
    metrics = [m for m in dict.fromkeys([metric, "test/spearman"]) if m]

    def order(run: Run):
        value = run.summary.get(metric)
        return (value is None, -(value or 0) if maximize else (value or 0), run.name)

    rows = []
    for run in sorted(runs, key=order):
        cells = [run.folder_name, run.state, *(format_value(run.values().get(k, "")) for k in keys)]
        cells += [f"{run.summary[m]:.4f}" if isinstance(run.summary.get(m), (int, float)) else "-" for m in metrics]
        seconds = run.summary.get("time/total_s")
        cells += [f"{seconds:.0f}" if seconds is not None else "-", (run.reason or "")[:80]]
        rows.append(cells)
    return ["run", "state", *keys, *metrics, "time_s", "reason"], rows


def print_results(runs: list[Run], metric: str | None, maximize: bool, title: str) -> None:
    header, rows = results_rows(runs, metric, maximize)
    from rich.console import Console
    from rich.table import Table

    widths = [max(len(cell) for cell in column) for column in zip(header, *rows)]
    table = Table(title=title)
    for name in header:
        table.add_column(name)
    for cells in rows:
        table.add_row(*cells)
    # Not a terminal (a log file, a pipe): the table's natural width, not rich's 80 columns.
    Console(width=None if sys.stdout.isatty() else sum(widths) + 3 * len(widths) + 1).print(table)


# ---------------------------------------------------------------------------------------------
# Entry point
# ---------------------------------------------------------------------------------------------

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


def default_folder(sweep_file: Path) -> Path:
    home = os.environ.get("NEXUS_HOME") or str(Path.home() / "nexus")  # as conf/config.yaml's paths.root
    return Path(home) / "sweeps" / sweep_file.stem


def run_sweep(sweep_file: Path, folder: Path | None = None, workers: int = 1, count: int | None = None,
              overrides: list[str] | None = None, fork: bool = True) -> int:
    """Run (or go on with) a sweep file in `folder`. 0: every run completed, 1: some failed,
    130: interrupted. Raises UserError, before any run starts, for a sweep that cannot run.
    `fork`: fork the runs of launch.py from this process where possible (see the module's doc);
    safe only in a process that has run no torch computation and no W&B run yet: a child forked
    after OpenMP's thread pool started can hang (`python -m nexus.sweep` runs none)."""
    from filelock import FileLock, Timeout

    overrides = list(overrides or [])
    folder = (folder or default_folder(sweep_file)).expanduser().resolve()
    config = load_sweep_file(sweep_file)
    try:
        check_sweep(config, overrides, folder)
    except UserError as err:
        raise UserError(f"{sweep_file}: {err}") from None
    folder.mkdir(parents=True, exist_ok=True)
    lock = FileLock(folder / LOCK_FILE)
    try:
        lock.acquire(timeout=0)
    except Timeout:
        raise UserError(f"{folder} is in use by another nexus-sweep ({folder / LOCK_FILE} is locked)") from None
    main_thread = threading.current_thread() is threading.main_thread()
    interrupted = False
    try:
        launch = import_for_forking(config) if fork else None
        print(f"sweep {sweep_file}: each run {'forked from this runner' if launch else 'a fresh process'}, "
              f"{workers} at a time", flush=True)
        runner = SweepRunner(folder, sweep_file, config, overrides, workers, launch)
        if main_thread:  # SIGTERM (kill, SLURM's preemption) stops like Ctrl-C
            previous = signal.signal(signal.SIGTERM, signal.default_int_handler)
        try:
            runner.load()
            runner.recover()
            try:
                runner.run(workers, count)
            except KeyboardInterrupt:
                interrupted = True
                print("interrupted: stopping the runs in flight; run the same command again to go on", flush=True)
                runner.stop_all()
        finally:
            if main_thread:
                signal.signal(signal.SIGTERM, previous)
    finally:
        lock.release()
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

    parser = argparse.ArgumentParser(prog="nexus-sweep", description=__doc__.split("\n\n")[0])
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
        print(f"error: {err}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
