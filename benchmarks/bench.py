"""Benchmark NEXUS on the full STS-B, in one process run; prints a Markdown table for BENCHMARKS.md.

    python -m benchmarks.bench                      # everything, 3 repetitions, medians quoted
    python -m benchmarks.bench --skip-sweep --reps 5 --out bench.json
    python -m benchmarks.bench --tiny --skip-sweep  # seconds: the smoke test's settings

Run from the repository root. What it measures (each with the machine, the load average and
the torch thread count):

- embedding-cache build: sentences per second into a fresh cache folder (cold), and a second
  `encode_splits` that hits the cache;
- one adapter epoch on cached inputs against the same epoch without the cache (the frozen
  backbone re-encoding every batch of sentence pairs), timed on a handful of batches and extrapolated;
- one dendritic epoch (PAI, no restructure) against one baseline epoch, with PAI drawing its graphs
  every epoch (its own behaviour) and with `nexus.pai_graphs` (graphs on restructure and at the end);
- the offline sweep (`python -m nexus.sweep sweeps/pai.yaml --workers N`) from an empty cache;
- peak resident memory of one run (`launch.py` in a subprocess) and of the sweep's largest process.

An epoch is what a run logs as `time/epoch_s`: training, dev Spearman and the growth decision
(`nexus.train.fit` measures it). The per-epoch checkpoint write is timed separately.
"""

from __future__ import annotations

import argparse
import os
import shutil
import signal
import sys
import tempfile
import threading
import time
from pathlib import Path

from benchmarks.common import REPO, machine, quiet, say
from benchmarks.measure import (measure_cache, measure_dendrite_epoch, measure_uncached, profile, run_fit,
                                summarize_epochs)
from benchmarks.processes import measure_run_memory, measure_sweep
from benchmarks.report import markdown
from nexus.compose import compose, default_home
from nexus.run_folder import write_json_atomic

SWEEP_FILE = REPO / "sweeps" / "pai.yaml"
TINY_LIMITS = ["data.limit.train=64", "data.limit.val=32", "data.limit.test=32"]


def parse_args(argv):
    parser = argparse.ArgumentParser(prog="python -m benchmarks.bench", description=__doc__.split("\n\n")[0])
    parser.add_argument("--reps", type=int, default=3, help="repetitions per measurement; medians quoted (default 3)")
    parser.add_argument("--out", type=Path, default=None,
                        help="JSON file for all results (default $NEXUS_HOME/bench/bench-<time>.json)")
    parser.add_argument("--skip-sweep", action="store_true", help="skip the offline 36-run sweep")
    parser.add_argument("--only-sweep", action="store_true", help="only the sweep (no in-process measurements)")
    parser.add_argument("--skip-memory", action="store_true", help="skip the peak-memory runs")
    parser.add_argument("--tiny", action="store_true", help="64/32/32 pairs, few batches: the smoke test's mode")
    parser.add_argument("--uncached-batches", type=int, default=None,
                        help="batches timed re-encoding every batch, then extrapolated (default 8; tiny 1)")
    parser.add_argument("--threads", default=None,
                        help="torch thread counts to time epochs with, comma-separated (default: torch's default and 1)")
    parser.add_argument("--sweep-workers", default="1,2", help="worker counts for the sweep (default 1,2)")
    parser.add_argument("--sweep-file", type=Path, default=SWEEP_FILE)
    parser.add_argument("--sweep-timeout", type=float, default=None, help="seconds per sweep before giving up")
    parser.add_argument("--profile", action="store_true",
                        help="also pyinstrument a baseline and a dendritic fit (1 thread)")
    parser.add_argument("--work-dir", type=Path, default=None, help="scratch folder (default: a temp dir, removed)")
    return parser.parse_args(argv)


def epoch_configs(reps: int, limits: list[str]) -> dict:
    """Baseline and dendritic (PAI's graphs every epoch, or nexus's default) for reps + 1 epochs,
    and pai=every_epoch for the epoch with a dendrite."""
    epochs = [f"train.max_epochs={reps + 1}", *limits]
    dendritic = ["+experiment=dendritic", "logger=none", *epochs]
    return {"baseline": compose(["+experiment=baseline", "logger=none", *epochs]),
            "pai_every_epoch": compose([*dendritic, "pai.graphs_every_epoch=true"]),
            "pai_graphs": compose([*dendritic, "pai.graphs_every_epoch=false"]),
            "one_dendrite": compose(["+experiment=dendritic", "logger=none", "pai=every_epoch", *limits])}


def epoch_block(cfgs: dict, inputs, backbone, splits, work: Path, threads: int, reps: int, batches: int) -> dict:
    """Every epoch measurement with `threads` torch threads."""
    from nexus.inputs import torch_threads

    block: dict = {}
    with torch_threads(threads):
        block["baseline"] = summarize_epochs(run_fit(cfgs["baseline"], inputs, work / f"base-{threads}")["records"])
        say(f"threads {threads}: baseline epoch {block['baseline'].get('epoch_s', float('nan')):.3f}s")
        block["uncached"] = measure_uncached(backbone, splits, cfgs["baseline"], inputs["train"].emb1.shape[1],
                                             batches)
        say(f"threads {threads}: epoch re-encoding every batch {block['uncached']['epoch_s']:.1f}s (extrapolated)")
        for key in ("pai_every_epoch", "pai_graphs"):
            out = run_fit(cfgs[key], inputs, work / f"{key}-{threads}")
            block[key] = {**summarize_epochs(out["records"]), "graph_counts": out["graph_counts"]}
            say(f"threads {threads}: dendritic epoch ({key}) {block[key].get('epoch_s', float('nan')):.3f}s")
        with quiet():
            block["one_dendrite"] = measure_dendrite_epoch(cfgs["one_dendrite"], inputs, work / f"dendrite-{threads}",
                                                           reps)
        say(f"threads {threads}: train + dev with a dendrite {block['one_dendrite']['train_and_dev_s']:.3f}s")
    return block


def in_process(args, res: dict, work: Path, home: Path, save) -> None:
    """Cache, epochs, (profile), peak memory of one run."""
    import torch

    from nexus.backbone import load_backbone
    from nexus.data import load_splits
    from nexus.train import set_denormal_flushing

    limits = TINY_LIMITS if args.tiny else []
    threads = ([int(t) for t in args.threads.split(",")] if args.threads
               else sorted({torch.get_num_threads(), 1}, reverse=True))
    base_cfg = compose(["+experiment=baseline", "logger=none", *limits])
    set_denormal_flushing(bool(base_cfg.train.flush_denormals))  # before any computation, as a run does
    res["batch_size"] = int(base_cfg.train.batch_size)
    splits = load_splits(base_cfg.data)
    res["pairs"] = {name: len(pairs) for name, pairs in splits.items()}
    started = time.perf_counter()
    with quiet():
        backbone = load_backbone(base_cfg.model, "cpu")
    res["backbone_load_s"] = time.perf_counter() - started

    res["cache"], inputs = measure_cache(splits, backbone, base_cfg.model, home, res["reps"])
    say(f"cache: {res['cache']['sentences_per_s']:.0f} sentences/s cold, hit {res['cache']['hit_median_s']:.3f}s")
    save()

    cfgs = epoch_configs(res["reps"], limits)
    batches = args.uncached_batches or (1 if args.tiny else 8)
    res["epochs"] = {}
    for n in threads:
        res["epochs"][str(n)] = epoch_block(cfgs, inputs, backbone, splits, work, n, res["reps"], batches)
        save()
    if args.profile:
        res["profile"] = profile(cfgs["baseline"], cfgs["pai_every_epoch"], inputs, work, 1)
        say("profiles done")
        save()
    if not args.skip_memory:
        res["memory"] = measure_run_memory(home, work, args.tiny)
        save()


def run_sweeps(args, res: dict, work: Path, save) -> None:
    """The sweep, once per worker count, from an empty cache."""
    res["sweep"] = {}
    if args.skip_sweep:
        res["sweep"]["all"] = {"skipped": "--skip-sweep"}
        return
    if not args.sweep_file.is_file():
        res["sweep"]["all"] = {"skipped": f"{args.sweep_file} is missing"}
        say(res["sweep"]["all"]["skipped"])
        return
    for workers in (int(w) for w in args.sweep_workers.split(",")):
        sweep = measure_sweep(workers, args.sweep_file, work, args.sweep_timeout)
        res["sweep"][f"{workers}_workers"] = sweep
        say(f"sweep {workers} worker(s): {sweep['wall_s']:.0f}s, runs {sweep['runs']}")
        save()
        if args.work_dir is None:  # the sweep's run folders are large; keep its log only
            shutil.rmtree(work / f"sweep-home-{workers}", ignore_errors=True)


def run_all(args, res: dict, work: Path, save) -> int:
    """Every section; Ctrl-C or SIGTERM stops it with the results so far saved (exit 130)."""
    main_thread = threading.current_thread() is threading.main_thread()
    if main_thread:  # SIGTERM: stop like Ctrl-C
        previous = signal.signal(signal.SIGTERM, signal.default_int_handler)
    try:
        if not args.only_sweep:
            in_process(args, res, work, work / "home", save)  # work/home: NEXUS_HOME of the memory runs
        run_sweeps(args, res, work, save)
        return 0
    except KeyboardInterrupt:
        res["interrupted"] = True
        say("interrupted: results so far are saved")
        return 130
    finally:
        if main_thread:
            signal.signal(signal.SIGTERM, previous)


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else list(argv)
    args = parse_args(argv)
    work = args.work_dir or Path(tempfile.mkdtemp(prefix="nexus-bench-"))
    work.mkdir(parents=True, exist_ok=True)
    out = args.out or default_home() / "bench" / f"bench-{time.strftime('%Y%m%d-%H%M%S')}.json"
    out.parent.mkdir(parents=True, exist_ok=True)
    res: dict = {"machine": machine(), "command": "python -m benchmarks.bench " + " ".join(argv),
                 "reps": max(1, args.reps), "tiny": args.tiny}

    def save() -> str:
        """Results so far, to --out (rewritten after every section: a killed bench keeps them)."""
        res["load_average_end"] = [round(x, 2) for x in os.getloadavg()]
        table = markdown(res)
        write_json_atomic(out, {**res, "markdown": table})
        return table

    say(f"machine: {res['machine']['cpu']}, {res['machine']['cores']} cores, torch {res['machine']['torch']}; "
        f"scratch {work}; results {out}")
    try:
        status = run_all(args, res, work, save)
    finally:
        print(save())
        for name, text in res.get("profile", {}).items():
            print(f"\n### profile: {name} (1 thread)\n{text}")
        print(f"\nresults: {out}")
        if args.work_dir is None:
            shutil.rmtree(work, ignore_errors=True)
    return status


if __name__ == "__main__":
    sys.exit(main())
