"""Measurements in subprocesses: peak memory of one `launch.py` run, and the offline sweep."""

from __future__ import annotations

import contextlib
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

from benchmarks.common import REPO, load_average, say

# Runs a command with its output in a log file; prints the peak RSS of its process tree's largest
# process (RUSAGE_CHILDREN: Linux keeps the maximum over waited-for descendants).
PEAK_WRAPPER = r"""
import json, resource, subprocess, sys
with open(sys.argv[1], "w") as log:
    rc = subprocess.call(sys.argv[2:], stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL)
print(json.dumps({"rc": rc, "maxrss_kb": resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss}))
"""


def peak_memory(command: list[str], env: dict, log: Path, timeout: float | None = None) -> dict:
    """Runs `command` (output to `log`); its wall time and the peak RSS of its largest process.
    On timeout the whole process group gets SIGTERM (a sweep stops its runs), then SIGKILL."""
    started = time.perf_counter()
    proc = subprocess.Popen([sys.executable, "-c", PEAK_WRAPPER, str(log), *command], cwd=REPO, env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, start_new_session=True)
    try:
        stdout, stderr = proc.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGTERM)
        try:
            proc.communicate(timeout=60)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.communicate()
        return {"rc": None, "error": f"timed out after {timeout:.0f}s", "timed_out": True,
                "wall_s": time.perf_counter() - started, "log": str(log), "load": load_average()}
    wall = time.perf_counter() - started
    try:
        info = json.loads(stdout.strip().splitlines()[-1])
    except (IndexError, ValueError):
        return {"rc": proc.returncode, "error": (stderr or stdout)[-500:], "wall_s": wall}
    return {"rc": info["rc"], "peak_mb": info["maxrss_kb"] / 1024, "wall_s": wall, "log": str(log),
            "load": load_average()}


def measure_run_memory(home: Path, work: Path, tiny: bool) -> dict:
    """Peak RSS of one `launch.py` run in a subprocess: warm cache (most sweep runs) and, unless
    tiny, cold cache (the run that builds it)."""
    base = ["+experiment=smoke", "train.max_epochs=2"] if tiny else ["+experiment=dendritic", "train.max_epochs=5"]
    results = {}
    homes = {"warm_cache": home} if tiny else {"warm_cache": home, "cold_cache": work / "home-cold"}
    for name, nexus_home in homes.items():
        env = {**os.environ, "NEXUS_HOME": str(nexus_home), "WANDB_SILENT": "true"}
        command = [sys.executable, "launch.py", *base, "logger=none", f"hydra.run.dir={work / ('mem-' + name)}"]
        results[name] = {**peak_memory(command, env, work / f"mem-{name}.log"), "command": " ".join(command[1:])}
        say(f"run peak memory ({name}): {results[name].get('peak_mb', float('nan')):.0f} MiB")
    return results


def measure_sweep(workers: int, sweep_file: Path, work: Path, timeout: float | None) -> dict:
    """The sweep from an empty NEXUS_HOME (cache build included), as a user runs it."""
    home = work / f"sweep-home-{workers}"
    folder = home / "sweep"
    env = {**os.environ, "NEXUS_HOME": str(home), "WANDB_SILENT": "true"}
    command = [sys.executable, "-m", "nexus.sweep", str(sweep_file), "--workers", str(workers), "--dir", str(folder)]
    say(f"sweep with {workers} worker(s): {' '.join(command[1:])}")
    info = peak_memory(command, env, work / f"sweep-{workers}.log", timeout)
    states: dict[str, int] = {}
    with contextlib.suppress(OSError, ValueError):
        for run in json.loads((folder / "sweep.json").read_text()).get("runs", []):
            states[str(run.get("state"))] = states.get(str(run.get("state")), 0) + 1
    return {**info, "workers": workers, "runs": states, "sweep_file": str(sweep_file),
            "command": " ".join(command[1:]), "load": load_average()}
