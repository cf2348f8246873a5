"""A sweep sharing one machine's GPUs against the same runs one at a time: the speed-up, side by side.

    python -m benchmarks.gpu_sweep sweeps/finetune.yaml --runs-per-gpu 6 --out gpu_sweep.json   # 1. the sweep
    python -m benchmarks.gpu_sweep sweeps/finetune.yaml --alone 2 --out gpu_sweep.json          # 2. runs alone

Run from the repository root, both parts with the same --work-dir and --out (each part adds its
results to --out, so the two may run as separate commands on the same machine).

1. The sweep: `python -m nexus.sweep FILE --gpus all --runs-per-gpu K` in an empty folder; its wall
   time, and every card's memory in use (nvidia-smi, each second): the machine's peak.
2. Alone: N of the sweep's parameter sets, spread over its order, each run by itself on the first
   card with the command the sweep gave it (a folder of its own, torch's default threads, as a
   user runs one); the wall time of each, process start included.
3. Both together: the speed-up (runs x mean alone wall / sweep wall), each alone run's best dev
   Spearman against its twin in the sweep, and peak GPU memory per run (its gpu/peak_memory_mb).
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from pathlib import Path

from benchmarks.common import REPO, load_average, machine, say


def parse_args(argv):
    parser = argparse.ArgumentParser(prog="python -m benchmarks.gpu_sweep", description=__doc__.split("\n\n")[0])
    parser.add_argument("sweep_file", type=Path)
    parser.add_argument("--runs-per-gpu", type=int, default=None, help="part 1: run the sweep, K runs per card")
    parser.add_argument("--alone", type=int, default=None, help="part 2: N of the sweep's runs, one at a time")
    parser.add_argument("--override", action="append", default=[], help="passed to nexus.sweep (repeatable)")
    parser.add_argument("--work-dir", type=Path, default=Path("/tmp/gpu_sweep"))
    parser.add_argument("--out", type=Path, required=True)
    return parser.parse_args(argv)


class GpuMemory:
    """nvidia-smi's memory in use on every card, once a second, while the `with` block runs."""

    def __init__(self, log: Path):
        self.log = log

    def __enter__(self):
        self.out = self.log.open("w")
        self.sampler = subprocess.Popen(
            ["nvidia-smi", "--query-gpu=timestamp,index,memory.used", "--format=csv,noheader,nounits", "-l", "1"],
            stdout=self.out, stderr=subprocess.DEVNULL)
        return self

    def __exit__(self, *exc):
        self.sampler.terminate()
        self.sampler.wait()
        self.out.close()

    def peaks(self) -> dict:
        """The peak MiB in use on each card, and of all cards together at one sample."""
        by_time: dict[str, dict[str, float]] = {}
        for line in self.log.read_text().splitlines():
            stamp, index, used = (field.strip() for field in line.split(","))
            by_time.setdefault(stamp, {})[index] = float(used)
        cards = {index for sample in by_time.values() for index in sample}
        return {"per_card_mib": {i: max(s.get(i, 0.0) for s in by_time.values()) for i in sorted(cards)},
                "total_mib": max((sum(s.values()) for s in by_time.values()), default=None),
                "samples": len(by_time)}


def sweep_runs(folder: Path) -> list[dict]:
    return json.loads((folder / "sweep.json").read_text())["runs"]


def run_sweep(args, res: dict) -> None:
    folder = args.work_dir / "sweep"
    command = [sys.executable, "-m", "nexus.sweep", str(args.sweep_file), "--gpus", "all",
               "--runs-per-gpu", str(args.runs_per_gpu), "--dir", str(folder),
               *[f"--override={o}" for o in args.override]]
    say(" ".join(command[1:]))
    started = time.perf_counter()
    with GpuMemory(args.work_dir / "gpu_memory_sweep.csv") as memory, \
            (args.work_dir / "sweep.log").open("w") as log:
        rc = subprocess.call(command, cwd=REPO, stdout=log, stderr=subprocess.STDOUT)
    wall = time.perf_counter() - started
    runs = sweep_runs(folder)
    res["sweep"] = {
        "command": " ".join(command[1:]), "rc": rc, "wall_s": wall, "runs_per_gpu": args.runs_per_gpu,
        "runs": {r["name"]: {"state": r["state"], "gpu": r["gpu"], "params": r["params"],
                             **{k: r["summary"].get(k) for k in ("best/val_spearman", "test/spearman",
                                                                 "time/total_s", "gpu/peak_memory_mb")}}
                 for r in runs},
        "gpu_memory": memory.peaks(), "load_at_end": load_average()}
    say(f"sweep: rc {rc}, {len(runs)} runs in {wall:.0f} s")


def run_alone(args, res: dict) -> None:
    runs = sweep_runs(args.work_dir / "sweep")
    picked = [runs[i * len(runs) // args.alone] for i in range(args.alone)]
    res["alone"] = {}
    for run in picked:
        run_dir = args.work_dir / "alone" / run["name"]
        # The sweep's command for it, in a folder of its own and outside the sweep.
        command = [arg for arg in run["command"] if not arg.startswith(("hydra.run.dir=", "++logger.sweep="))]
        command.append(f"hydra.run.dir={run_dir}")
        env = {**os.environ, "CUDA_VISIBLE_DEVICES": run["gpu"].split(",")[0]}
        say(f"{run['name']} alone: {' '.join(command)}")
        started = time.perf_counter()
        with GpuMemory(args.work_dir / f"gpu_memory_{run['name']}.csv") as memory, \
                (args.work_dir / f"alone_{run['name']}.log").open("w") as log:
            rc = subprocess.call(command, cwd=REPO, env=env, stdout=log, stderr=subprocess.STDOUT)
        wall = time.perf_counter() - started
        summary = json.loads((run_dir / "summary.json").read_text()) if (run_dir / "summary.json").is_file() else {}
        res["alone"][run["name"]] = {
            "rc": rc, "wall_s": wall, "command": " ".join(command), "gpu_memory": memory.peaks(),
            **{k: summary.get(k) for k in ("status", "best/val_spearman", "test/spearman", "time/total_s",
                                           "gpu/peak_memory_mb")}}
        say(f"{run['name']} alone: rc {rc}, {wall:.0f} s, best dev {summary.get('best/val_spearman')}")


def together(res: dict) -> dict:
    """The speed-up and agreement, once both parts are in."""
    sweep, alone = res["sweep"], res["alone"]
    mean_alone = sum(a["wall_s"] for a in alone.values()) / len(alone)
    peaks = [r["gpu/peak_memory_mb"] for r in sweep["runs"].values() if r.get("gpu/peak_memory_mb")]
    return {
        "runs": len(sweep["runs"]),
        "mean_alone_wall_s": mean_alone,
        "speedup": len(sweep["runs"]) * mean_alone / sweep["wall_s"],
        "best_dev_difference": {name: a["best/val_spearman"] - sweep["runs"][name]["best/val_spearman"]
                                for name, a in alone.items()
                                if a.get("best/val_spearman") is not None
                                and sweep["runs"][name].get("best/val_spearman") is not None},
        "peak_gpu_memory_per_run_mb": max(peaks, default=None),
        "peak_gpu_memory_total_mib": sweep["gpu_memory"]["total_mib"],
    }


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    args.work_dir.mkdir(parents=True, exist_ok=True)
    res = json.loads(args.out.read_text()) if args.out.is_file() else {}
    res.setdefault("machine", machine())
    if args.runs_per_gpu:
        run_sweep(args, res)
    if args.alone:
        run_alone(args, res)
    if "sweep" in res and "alone" in res:
        res["together"] = together(res)
        print(json.dumps(res["together"], indent=2))
    args.out.write_text(json.dumps(res, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
