"""The runner of one sweep folder: its state, the engine that proposes the next run, and the
runs in flight (started, reaped, stopped)."""

from __future__ import annotations

import json
import os
import random
import signal
import subprocess
import sys
import time
from dataclasses import asdict
from pathlib import Path

import numpy as np

from nexus.errors import UserError
from nexus.run_folder import read_summary, write_json_atomic
from nexus.sweep.placement import Placement
from nexus.sweep.processes import (POLL_S, STOP_GRACE_S, ForkedRun, orphan_alive, process_start, signal_group,
                                   spawn, stop_orphan)
from nexus.sweep.state import DONE_STATUSES, STATE_FILE, SweepRun, as_json
from nexus.sweep.sweep_file import agent_command, hydra_string, import_sweeps, program_args


def last_line(path: Path) -> str | None:
    try:
        lines = [line.strip() for line in path.read_text(errors="replace").splitlines() if line.strip()]
    except OSError:
        return None
    return lines[-1] if lines else None


class SweepRunner:
    """One sweep folder: its state, its runs in flight, and the engine that proposes the next run."""

    def __init__(self, folder: Path, sweep_file: Path, config: dict, overrides: list[str], placement: Placement,
                 launch=None, seed: int | None = None):
        """`launch`: launch.py as a module, imported with what its runs import, to fork each run
        from this process; None: each run is its command, in a fresh process. `seed`: proposals
        of random and bayes sweeps are reproducible (None: they are not)."""
        sweeps = import_sweeps()
        self.folder, self.config, self.overrides = folder, config, overrides
        self.engine_config = sweeps.SweepConfig(config)  # defaults filled in, as the server does
        self.name = str(config.get("name") or sweep_file.stem)
        self.metric = (config.get("metric") or {}).get("name")
        self.runs: list[SweepRun] = []
        self.procs: dict[str, subprocess.Popen | ForkedRun] = {}
        self.placement, self.launch, self.seed = placement, launch, seed
        self.exhausted = False
        self.env = dict(os.environ)
        self.state_file = folder / STATE_FILE
        self.header = {"sweep_file": str(sweep_file), "name": self.name, "config": as_json(config),
                       "overrides": overrides, "seed": seed}

    # -- state --------------------------------------------------------------------------------
    def load(self) -> None:
        if not self.state_file.is_file():
            return
        state = json.loads(self.state_file.read_text())
        for key in ("config", "overrides"):
            if state[key] != self.header[key]:
                raise UserError(f"{self.folder} holds a sweep with other {key} ({state['sweep_file']}); "
                                "use another --dir")
        self.runs = [SweepRun(**run) for run in state["runs"]]

    def save(self) -> None:
        write_json_atomic(self.state_file, {**self.header, "runs": [asdict(run) for run in self.runs]})

    def run_dir(self, run: SweepRun) -> Path:
        return self.folder / "runs" / run.folder_name

    def find(self, name: str) -> SweepRun:
        return next(run for run in self.runs if run.name == name)

    def recover(self) -> None:
        """After an interruption: stop orphans, keep what finished, queue the rest to go on."""
        for run in self.runs:
            if run.state not in DONE_STATUSES:
                self.recover_run(run)
        self.save()

    def recover_run(self, run: SweepRun) -> None:
        """A run no runner saw end goes on in its own folder: the same command, and launch.py
        (resume=auto) continues from the checkpoint there, if the run got as far as one."""
        if run.pid and orphan_alive(run, self.run_dir(run)):
            stop_orphan(run, self.run_dir(run))
        summary = read_summary(self.run_dir(run))
        if summary and summary.get("status") in DONE_STATUSES:
            self.record(run, 0 if summary["status"] == "completed" else 1, summary)
            return
        run.state, run.pid, run.pid_start = "pending", None, None

    def retry_failed(self) -> None:
        """--retry-failed: each failed parameter set runs again from the start, in a fresh folder
        (run-003-attempt2): the failed attempt's folder stays as it ended, its error and logs in it."""
        for run in self.runs:
            if run.state == "failed":
                while self.run_dir(run).exists():
                    run.attempt += 1
                run.state, run.exit_code, run.reason, run.summary = "pending", None, None, {}
        self.save()

    # -- proposing, starting, reaping ----------------------------------------------------------
    def next_run(self) -> SweepRun | None:
        pending = [run for run in self.runs if run.state == "pending"]
        if pending:
            return pending[0]
        cap = self.config.get("run_cap")
        if self.exhausted or (cap is not None and len(self.runs) >= cap):
            return None
        proposal = self.propose()
        if proposal is None:  # grid: every parameter set has a run
            self.exhausted = True
            return None
        run = SweepRun(name=f"run-{len(self.runs):03d}", params=proposal.config)
        while self.run_dir(run).exists():  # a folder the state file does not know (lost state)
            run.attempt += 1
        self.runs.append(run)
        return run

    def propose(self):
        """The engine's next parameter set (None: a grid has none left)."""
        if self.seed is not None:
            # The engine draws from Python's and numpy's global generators, which the runner uses for
            # nothing else: seeded from --seed and the number of runs so far, the k-th proposal is
            # the same for every runner with that seed, and across restarts.
            random.seed(f"{self.seed}:{len(self.runs)}")
            np.random.seed([self.seed, len(self.runs)])
        return import_sweeps().next_run(self.engine_config, self.engine_history())

    def engine_history(self) -> list:
        """The runs as the engine sees them: done ones with their metric, so bayes learns from
        them; the others count as running."""
        sweeps = import_sweeps()
        done = {"completed": sweeps.RunState.finished, "failed": sweeps.RunState.failed}
        return [sweeps.SweepRun(name=run.name, config=run.params,
                                state=done.get(run.state, sweeps.RunState.running),
                                summary_metrics={self.metric: run.summary[self.metric]}
                                if self.metric in run.summary else {})
                for run in self.runs]

    def command(self, run: SweepRun) -> list[str]:
        """The agent's command for the run, then --override values and the runner's own two."""
        run_dir = self.run_dir(run)
        return [*agent_command(self.config, run.params, interpreter=sys.executable,
                               args_json_file=str(run_dir / "sweep_args.json")),
                *self.overrides, f"hydra.run.dir={hydra_string(str(run_dir))}",
                f"++logger.sweep={hydra_string(self.name)}"]

    def start(self, run: SweepRun) -> None:
        run_dir = self.run_dir(run)
        run_dir.mkdir(parents=True, exist_ok=True)  # it exists when the run goes on from a checkpoint
        run.command = self.command(run)
        if "${args_json_file}" in map(str, self.config.get("command") or []):
            (run_dir / "sweep_args.json").write_text(json.dumps(run.values()))
        run.gpu = self.placement.card([self.find(name).gpu for name in self.procs])
        proc = spawn(run.command, run_dir, self.placement.env(self.env, run.gpu), self.launch,
                     self.config.get("program"), program_args(run.command, self.config))
        self.procs[run.name] = proc
        run.state, run.pid_start = "running", process_start(proc.pid)
        # A child that has exited already has no start time to read, and can never be an orphan.
        run.pid = proc.pid if run.pid_start is not None else None
        self.save()
        where = f"  (GPU {run.gpu})" if run.gpu is not None else ""
        print(f"{run.folder_name}: started  {run.describe()}{where}", flush=True)

    def record(self, run: SweepRun, exit_code: int, summary: dict | None) -> None:
        summary = summary or {}
        run.exit_code, run.summary, run.pid, run.pid_start = exit_code, summary, None, None
        ok = exit_code == 0 and summary.get("status", "completed") == "completed"
        run.state = "completed" if ok else "failed"
        run.reason = None if ok else (last_line(self.run_dir(run) / "stderr.log") or summary.get("reason")
                                      or f"exit code {exit_code}")

    def reap(self) -> None:
        for name, proc in list(self.procs.items()):
            code = proc.poll()
            if code is None:
                continue
            del self.procs[name]
            run = self.find(name)
            self.record(run, code, read_summary(self.run_dir(run)))
            self.save()
            value = run.summary.get(self.metric)
            result = f"{self.metric} {value:.4f}" if isinstance(value, (int, float)) else ""
            print(f"{run.folder_name}: {run.state}  {result or run.reason or ''}", flush=True)

    def stop_all(self) -> None:
        """Ctrl-C: each run gets SIGINT (launch.py records it as interrupted), then SIGKILL."""
        for proc in self.procs.values():
            signal_group(proc.pid, signal.SIGINT)
        deadline = time.monotonic() + STOP_GRACE_S
        for proc in self.procs.values():
            try:
                proc.wait(timeout=max(0.0, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                signal_group(proc.pid, signal.SIGKILL)
                proc.wait()
        for name in self.procs:
            run = self.find(name)
            run.state, run.pid, run.pid_start, run.reason = "interrupted", None, None, "interrupted"
        self.procs.clear()
        self.save()

    def run(self, count: int | None) -> None:
        started = 0
        while True:
            while len(self.procs) < self.placement.workers and (count is None or started < count):
                run = self.next_run()
                if run is None:
                    break
                self.start(run)
                started += 1
            if not self.procs:
                return
            time.sleep(POLL_S)
            self.reap()
