"""Benchmark NEXUS on the full STS-B, in one process run; prints a Markdown table for BENCHMARKS.md.

    python -m nexus.bench                      # everything, 3 repetitions, medians quoted
    python -m nexus.bench --skip-sweep --reps 5 --out bench.json
    python -m nexus.bench --tiny --skip-sweep  # seconds: the smoke test's settings

What it measures (each with the machine, the load average and the torch thread count):

- embedding-cache build: sentences per second into a fresh cache folder (cold), and a second
  `encode_splits` that hits the cache;
- one adapter epoch on cached inputs against the same epoch done the NEXUS way (the frozen backbone
  re-encoding every batch of sentence pairs), timed on a handful of batches and extrapolated;
- one dendritic epoch (PAI, no restructure) against one baseline epoch, with PAI drawing its graphs
  every epoch (its own behaviour) and with `nexus.pai_graphs` (graphs on restructure and at the end);
- the offline sweep (`python -m nexus.sweep sweeps/pai.yaml --workers N`) from an empty cache;
- peak resident memory of one run (`launch.py` in a subprocess) and of the sweep's largest process.

An epoch is what a run logs as `time/epoch_s`: training, dev Spearman and the growth decision
(`nexus.train.fit` measures it). The per-epoch checkpoint write is timed separately.
"""

from __future__ import annotations

import argparse
import contextlib
import datetime as dt
import json
import math
import os
import platform
import shutil
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
CONF_DIR = REPO / "conf"
SWEEP_FILE = REPO / "sweeps" / "pai.yaml"
TINY_LIMITS = ["data.limit.train=64", "data.limit.val=32", "data.limit.test=32"]

# Targets from issue 6 (2-core CPU): name -> (comparison, bound, unit)
TARGETS = {
    "baseline_epoch_s": ("<=", 0.25, "s"),
    "nexus_way_ratio": (">=", 100.0, "x"),
    "pai_overhead_ratio": ("<=", 2.0, "x"),
    "sweep_2_workers_s": ("<=", 300.0, "s"),
    "sweep_worker_peak_mb": ("<=", 2048.0, "MiB"),
}

# Runs a command with its output in a log file; prints the peak RSS of its process tree's largest
# process (RUSAGE_CHILDREN: Linux keeps the maximum over waited-for descendants).
PEAK_WRAPPER = r"""
import json, resource, subprocess, sys
with open(sys.argv[1], "w") as log:
    rc = subprocess.call(sys.argv[2:], stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL)
print(json.dumps({"rc": rc, "maxrss_kb": resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss}))
"""


# ------------------------------------------------------------------------------------------------
# Small helpers
# ------------------------------------------------------------------------------------------------

def say(message: str) -> None:
    print(f"[bench {time.strftime('%H:%M:%S')}] {message}", file=sys.stderr, flush=True)


def load_average() -> float:
    return round(os.getloadavg()[0], 2)


def median(values) -> float:
    return float(statistics.median(values))


@contextlib.contextmanager
def quiet():
    """Library chatter (progress bars, PAI's banner, 'encoding N sentences') off the table output."""
    with open(os.devnull, "w") as sink, contextlib.redirect_stdout(sink), contextlib.redirect_stderr(sink):
        yield


def machine() -> dict:
    import torch

    cpu = platform.processor() or platform.machine()
    with contextlib.suppress(OSError):
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    mem_gib = None
    with contextlib.suppress(OSError, ValueError, IndexError):
        kib = int(Path("/proc/meminfo").read_text().split("MemTotal:")[1].split()[0])
        mem_gib = round(kib / 2**20, 1)
    return {
        "cpu": cpu,
        "cores": os.cpu_count(),
        "memory_gib": mem_gib,
        "torch": torch.__version__,
        "torch_threads_default": torch.get_num_threads(),
        "python": platform.python_version(),
        "platform": platform.platform(),
        "date": dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds"),
        "load_average_start": [round(x, 2) for x in os.getloadavg()],
    }


def compose(overrides: list[str]):
    """The project's Hydra config, as launch.py composes it."""
    from hydra import compose as hydra_compose
    from hydra import initialize_config_dir
    from hydra.core.global_hydra import GlobalHydra

    GlobalHydra.instance().clear()
    with initialize_config_dir(config_dir=str(CONF_DIR), version_base="1.3"):
        return hydra_compose(config_name="config", overrides=overrides)


# ------------------------------------------------------------------------------------------------
# Measurements
# ------------------------------------------------------------------------------------------------

def measure_cache(splits, backbone, model_cfg, work: Path, reps: int) -> tuple[dict, dict]:
    """Cold builds into fresh cache folders, then cache hits; returns (results, encoded inputs)."""
    from nexus.run import encode_splits

    sentences = [s for pairs in splits.values() for s in (*pairs.sentences1, *pairs.sentences2)]
    distinct = len(set(sentences))
    cold, cold_cpu, hit, loads = [], [], [], []
    for rep in range(reps):
        folder = work / "cache" if rep == reps - 1 else work / f"cache-cold-{rep}"
        started, cpu_started = time.perf_counter(), time.process_time()
        with quiet():
            encode_splits(splits, backbone, model_cfg, str(folder), "cpu")
        cold.append(time.perf_counter() - started)
        cold_cpu.append(time.process_time() - cpu_started)
        loads.append(load_average())
        if folder != work / "cache":
            shutil.rmtree(folder, ignore_errors=True)
        say(f"cache build {rep + 1}/{reps}: {distinct} sentences in {cold[-1]:.1f}s (load {loads[-1]})")
    for _ in range(reps):
        started = time.perf_counter()
        with quiet():
            inputs = encode_splits(splits, backbone, model_cfg, str(work / "cache"), "cpu")
        hit.append(time.perf_counter() - started)
    result = {
        "sentences": len(sentences), "distinct_sentences": distinct,
        "cold_s": cold, "cold_median_s": median(cold), "sentences_per_s": distinct / median(cold),
        "cold_cpu_median_s": median(cold_cpu),
        "hit_s": hit, "hit_median_s": median(hit), "load": loads,
    }
    return result, inputs


def run_fit(cfg, inputs, run_dir: Path, every_epoch_graphs: bool | None = None) -> dict:
    """`nexus.train.fit` on encoded inputs for cfg.train.max_epochs epochs; per-epoch records with the
    decision time and the checkpoint write time."""
    from nexus.adapter import build_layers
    from nexus.checkpoint import save_checkpoint
    from nexus.pai import make_growth
    from nexus.run import seed_everything
    from nexus.train import fit

    run_dir.mkdir(parents=True, exist_ok=True)
    seed_everything(int(cfg.seed))
    growth = make_growth(cfg.pai, cfg.train, run_dir, "cpu")
    with quiet():
        net = growth.prepare(build_layers(inputs["train"].emb1.shape[1], cfg.model.adapter))
    if every_epoch_graphs is not None:
        growth.graphs.every_epoch = every_epoch_graphs  # PAI's own behaviour, or nexus.pai_graphs
    decide_s: list[float] = []
    inner_after = growth.after_epoch

    def timed_after(score, net, optimizer, last=False):
        started = time.perf_counter()
        try:
            return inner_after(score, net, optimizer, last)
        finally:
            decide_s.append(time.perf_counter() - started)

    growth.after_epoch = timed_after
    records: list[dict] = []

    def on_epoch(record, events, net_after):
        records.append({"epoch": record["epoch"], "epoch_s": record["time/epoch_s"], "events": list(events),
                        "cpu_mark": time.process_time(),
                        "loss": record["train/loss"], "val_spearman": record["val/spearman"],
                        "params": record["pai/params"], "load": load_average()})

    checkpoint_s: list[float] = []
    checkpoint_cpu: list[float] = []

    def save_state(state):
        started, cpu = time.perf_counter(), time.process_time()
        save_checkpoint(run_dir, state)
        checkpoint_s.append(time.perf_counter() - started)
        checkpoint_cpu.append(time.process_time() - cpu)

    cpu_start = time.process_time()
    with quiet():
        fit(net, growth, inputs["train"], inputs["val"], cfg.train, int(cfg.seed), on_epoch, save_state)
    # CPU seconds of the process per epoch (all its threads): the epoch's cost on an idle machine,
    # for one thread; between two on_epoch calls, less the checkpoint write in between.
    previous = cpu_start
    for i, record in enumerate(records):
        record["epoch_cpu_s"] = record.pop("cpu_mark") - previous
        previous += record["epoch_cpu_s"] + (checkpoint_cpu[i] if i < len(checkpoint_cpu) else 0.0)
    for record, seconds in zip(records, decide_s):
        record["decide_s"] = seconds
    for record, seconds in zip(records, checkpoint_s):
        record["checkpoint_s"] = seconds
    graphs = getattr(growth, "graphs", None)
    return {"records": records, "graph_counts": dict(graphs.counts) if graphs is not None else None}


def ordinary(records: list[dict]) -> list[dict]:
    """Epochs after the first (warm-up) with no PAI event."""
    return [r for r in records[1:] if not r["events"]]


def summarize_epochs(records: list[dict]) -> dict:
    kept = ordinary(records)
    out = {"epochs_timed": len(kept), "records": records}
    if kept:
        out["epoch_s"] = median([r["epoch_s"] for r in kept])
        out["epoch_cpu_s"] = median([r["epoch_cpu_s"] for r in kept])
        out["decide_s"] = median([r["decide_s"] for r in kept])
        out["train_and_dev_s"] = out["epoch_s"] - out["decide_s"]
        out["checkpoint_s"] = median([r["checkpoint_s"] for r in kept])
        out["load"] = median([r["load"] for r in kept])
    return out


def measure_nexus_way(backbone, splits, cfg, dim: int, batches: int) -> dict:
    """The adapter epoch as NEXUS ran it: every batch's sentences re-encoded by the frozen backbone
    (no_grad), then the same training step. `batches` batches are timed (after one warm-up) and
    the per-batch median is extrapolated to the epoch."""
    import torch

    from nexus.adapter import build_layers
    from nexus.evaluate import EncodedPairs
    from nexus.pai import make_growth
    from nexus.run import seed_everything
    from nexus.train import train_one_epoch

    seed_everything(int(cfg.seed))
    growth = make_growth(cfg.pai, cfg.train, Path(tempfile.gettempdir()), "cpu")
    net = growth.prepare(build_layers(dim, cfg.model.adapter))
    optimizer = growth.make_optimizer(net)
    generator = torch.Generator().manual_seed(int(cfg.seed))
    train, batch_size = splits["train"], int(cfg.train.batch_size)
    order = torch.randperm(len(train), generator=generator).tolist()
    n_batches = math.ceil(len(train) / batch_size)
    times, cpu = [], []
    for k in range(min(batches + 1, n_batches)):
        rows = order[k * batch_size:(k + 1) * batch_size]
        started, cpu_started = time.perf_counter(), time.process_time()
        with torch.no_grad():
            emb1 = backbone.encode([train.sentences1[i] for i in rows], batch_size=batch_size,
                                   convert_to_tensor=True, show_progress_bar=False)
            emb2 = backbone.encode([train.sentences2[i] for i in rows], batch_size=batch_size,
                                   convert_to_tensor=True, show_progress_bar=False)
        pairs = EncodedPairs(emb1, emb2, torch.from_numpy(train.scores[rows]))
        train_one_epoch(net, optimizer, pairs, batch_size, generator)
        times.append(time.perf_counter() - started)
        cpu.append(time.process_time() - cpu_started)
    timed = times[1:] or times
    per_batch = median(timed)
    return {"batches_timed": len(timed), "batches_per_epoch": n_batches, "batch_s": timed,
            "batch_median_s": per_batch, "epoch_s": per_batch * n_batches,
            "epoch_cpu_s": median(cpu[1:] or cpu) * n_batches,
            "extrapolated": len(timed) < n_batches, "load": load_average()}


def measure_dendrite_epoch(cfg, inputs, run_dir: Path, reps: int) -> dict:
    """Training + dev scoring of an adapter that carries one dendrite (pai=every_epoch adds it
    after epoch 0); PAI's decision is not called in the timed epochs."""
    import torch

    from nexus.adapter import build_layers
    from nexus.evaluate import correlations, cosine_predictions
    from nexus.pai import make_growth
    from nexus.run import seed_everything
    from nexus.train import set_denormal_flushing, train_one_epoch

    seed_everything(int(cfg.seed))
    run_dir.mkdir(parents=True, exist_ok=True)
    growth = make_growth(cfg.pai, cfg.train, run_dir, "cpu")
    with quiet():
        net = growth.prepare(build_layers(inputs["train"].emb1.shape[1], cfg.model.adapter))
    optimizer = growth.make_optimizer(net)
    generator = torch.Generator().manual_seed(int(cfg.seed))
    batch_size = int(cfg.train.batch_size)
    val_gold = inputs["val"].scores.cpu().numpy()
    train_one_epoch(net, optimizer, inputs["train"], batch_size, generator)
    score = correlations(cosine_predictions(net, inputs["val"]), val_gold)[0]
    params_before = growth.state(net)["pai/params"]
    decision = growth.after_epoch(score, net, optimizer)
    net, optimizer = decision.net, decision.optimizer
    state = growth.state(net)
    out = {"dendrites": state["pai/dendrites"], "params": state["pai/params"], "params_before": params_before}
    # As configured (train.flush_denormals, set for the whole process at its start), then, with one
    # thread only, the other way (a later switch reaches this thread, not OpenMP's workers).
    flush = bool(cfg.train.flush_denormals)
    settings = [("", flush), ("other_", not flush)] if torch.get_num_threads() == 1 else [("", flush)]
    for prefix, setting in settings:
        set_denormal_flushing(setting)
        times, cpu = [], []
        for _ in range(reps + 1):
            started, cpu_started = time.perf_counter(), time.process_time()
            train_one_epoch(net, optimizer, inputs["train"], batch_size, generator)
            correlations(cosine_predictions(net, inputs["val"]), val_gold)
            times.append(time.perf_counter() - started)
            cpu.append(time.process_time() - cpu_started)
        out.update({f"{prefix}flush_denormals": setting,
                    f"{prefix}train_and_dev_s": median(times[1:]), f"{prefix}train_and_dev_cpu_s": median(cpu[1:]),
                    f"{prefix}times": times})
    set_denormal_flushing(flush)
    out["load"] = load_average()
    return out


def profile(base_cfg, pai_cfg, inputs, work: Path, threads: int) -> dict:
    """pyinstrument of a few baseline epochs and of PAI's add_validation_score (drawing every epoch)."""
    try:
        from pyinstrument import Profiler
    except ImportError:
        return {"skipped": "pyinstrument is not installed (pip install pyinstrument)"}
    from nexus.run import torch_threads

    out = {}
    with torch_threads(threads):
        for name, cfg, graphs in (("baseline", base_cfg, None), ("dendritic", pai_cfg, True)):
            profiler = Profiler(interval=0.001)
            profiler.start()
            run_fit(cfg, inputs, work / f"profile-{name}", every_epoch_graphs=graphs)
            profiler.stop()
            out[name] = profiler.output_text(unicode=False, color=False)
    return out



def peak_memory(command: list[str], env: dict, log: Path, timeout: float | None = None) -> dict:
    """Runs `command` (output to `log`); its wall time and the peak RSS of its largest process.
    On timeout the whole process group gets SIGTERM (a sweep stops its runs), then SIGKILL."""
    import signal

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
    statuses: dict[str, int] = {}
    with contextlib.suppress(OSError, ValueError):
        state = json.loads((folder / "sweep.json").read_text())
        for run in state.get("runs", []):
            key = str(run.get("state") or run.get("status"))
            statuses[key] = statuses.get(key, 0) + 1
    return {**info, "workers": workers, "runs": statuses, "sweep_file": str(sweep_file), "command": " ".join(command[1:]),
            "load": load_average()}


# ------------------------------------------------------------------------------------------------
# Report
# ------------------------------------------------------------------------------------------------

def verdict(key: str, value: float | None) -> str:
    if key not in TARGETS or value is None or (isinstance(value, float) and math.isnan(value)):
        return ""
    op, bound, unit = TARGETS[key]
    met = value <= bound if op == "<=" else value >= bound
    return f"{op} {bound:g} {unit}: {'met' if met else 'NOT met'}"


def cpu_note(block: dict, key: str) -> str:
    return f"; CPU {block[key]:.3f} s" if key in block else ""


def build_rows(res: dict) -> list[tuple[str, str, str, str]]:
    """(measurement, value, details, target) rows of the Markdown table."""
    rows = []
    cache = res.get("cache")
    if cache:
        rows.append(("Embedding cache build, cold (fresh cache folder)", f"{cache['sentences_per_s']:.0f} sentences/s",
                     f"{cache['distinct_sentences']:,} distinct sentences in {cache['cold_median_s']:.1f} s"
                     f"{cpu_note(cache, 'cold_cpu_median_s')}; "
                     f"load {cache['load']}", ""))
        rows.append(("Embedding cache, second run (hit)", f"{cache['hit_median_s']:.3f} s",
                     f"{cache['sentences']:,} sentences looked up", ""))
    for threads, block in sorted(res.get("epochs", {}).items(), key=lambda kv: -int(kv[0])):
        tag = f"{threads} thread{'s' if int(threads) > 1 else ''}"
        base = block.get("baseline", {})
        if "epoch_s" in base:
            ckpt = f"; checkpoint write {base['checkpoint_s']:.3f} s" if "checkpoint_s" in base else ""
            rows.append((f"Baseline epoch, cached inputs, batch {res['batch_size']}, {tag}", f"{base['epoch_s']:.3f} s",
                         f"train + dev Spearman, median of {base['epochs_timed']}{cpu_note(base, 'epoch_cpu_s')}{ckpt}; "
                         f"load {base['load']}",
                         verdict("baseline_epoch_s", base["epoch_s"])))
        way = block.get("nexus_way")
        if way and "epoch_s" in base:
            ratio = way["epoch_s"] / base["epoch_s"]
            rows.append((f"NEXUS-way epoch (backbone re-encodes every batch), {tag}", f"{way['epoch_s']:.1f} s",
                         f"{'extrapolated from' if way['extrapolated'] else 'all'} {way['batches_timed']} of "
                         f"{way['batches_per_epoch']} batches ({way['batch_median_s']:.3f} s/batch){cpu_note(way, 'epoch_cpu_s')}; "
                         f"load {way['load']}", ""))
            rows.append((f"NEXUS-way / cached epoch, {tag}", f"{ratio:.0f}x", "", verdict("nexus_way_ratio", ratio)))
        for key, label in (("pai_every_epoch", "PAI graphs every epoch (pai.graphs_every_epoch=true)"),
                           ("pai_graphs", "graphs on restructure and at the end (default)")):
            pai = block.get(key, {})
            if "epoch_s" in pai and "epoch_s" in base:
                ratio = pai["epoch_s"] / base["epoch_s"]
                ckpt = f"; checkpoint write {pai['checkpoint_s']:.3f} s" if "checkpoint_s" in pai else ""
                rows.append((f"Dendritic epoch, {label}, {tag}",
                             f"{pai['epoch_s']:.3f} s",
                             f"pai=history, 0 dendrites, no restructure; PAI's add_validation_score {pai['decide_s']:.3f} s; median of "
                             f"{pai['epochs_timed']}{cpu_note(pai, 'epoch_cpu_s')}{ckpt}; load {pai['load']}", ""))
                rows.append((f"Dendritic / baseline epoch, {label}, {tag}", f"{ratio:.2f}x", "",
                             verdict("pai_overhead_ratio", ratio)))
        den = block.get("one_dendrite")
        if den and "epoch_s" in base:
            rows.append((f"Train + dev of an epoch with {den['dendrites']} dendrite ({den['params']:,} params), {tag}",
                         f"{den['train_and_dev_s']:.3f} s",
                         f"{den['train_and_dev_s'] / base['train_and_dev_s']:.2f}x the baseline's train + dev "
                         f"({base['train_and_dev_s']:.3f} s, {den['params_before']:,} params)"
                         f"{cpu_note(den, 'train_and_dev_cpu_s')}; denormals flushed: {den['flush_denormals']}; "
                         f"load {den['load']}", ""))
        if den and "other_train_and_dev_s" in den and "epoch_s" in base:
            rows.append((f"The same with denormals {'flushed' if den['other_flush_denormals'] else 'kept'} "
                         f"(train.flush_denormals={str(den['other_flush_denormals']).lower()}), {tag}",
                         f"{den['other_train_and_dev_s']:.3f} s",
                         f"{den['other_train_and_dev_s'] / base['train_and_dev_s']:.2f}x the baseline's train + dev"
                         f"{cpu_note(den, 'other_train_and_dev_cpu_s')}", ""))
    for name, sweep in sorted(res.get("sweep", {}).items()):
        if "skipped" in sweep:
            rows.append((f"Sweep {name}", "skipped", sweep["skipped"], ""))
            continue
        workers = sweep["workers"]
        ok = f"runs {sweep['runs']}" + (f"; {sweep['error']}" if sweep.get("error") else "")
        value = f"{'> ' if sweep.get('timed_out') else ''}{sweep['wall_s']:.0f} s"
        rows.append((f"Sweep `{Path(sweep['sweep_file']).name}`, {workers} worker{'s' if workers > 1 else ''}, "
                     "empty cache", value, f"{ok}; load at end {sweep['load']}",
                     verdict("sweep_2_workers_s", sweep["wall_s"]) if workers == 2 else ""))
        if "peak_mb" in sweep:
            rows.append((f"Peak RSS, largest process of the {workers}-worker sweep", f"{sweep['peak_mb']:.0f} MiB", "",
                         verdict("sweep_worker_peak_mb", sweep["peak_mb"])))
    for name, mem in sorted(res.get("memory", {}).items()):
        if "peak_mb" in mem:
            rows.append((f"Peak RSS, one run ({name.replace('_', ' ')})", f"{mem['peak_mb']:.0f} MiB",
                         f"`{mem['command']}`, rc {mem['rc']}, {mem['wall_s']:.0f} s",
                         verdict("sweep_worker_peak_mb", mem["peak_mb"])))
        else:
            rows.append((f"Peak RSS, one run ({name})", "failed", mem.get("error", ""), ""))
    return rows


def markdown(res: dict) -> str:
    m = res["machine"]
    lines = [
        f"Machine: {m['cpu']}, {m['cores']} cores, {m['memory_gib']} GiB, torch {m['torch']} "
        f"(default {m['torch_threads_default']} threads), Python {m['python']}; {m['date']}; "
        f"load average at start {m['load_average_start']}, at end {res.get('load_average_end')}.",
        f"Command: `{res['command']}`; medians of {res['reps']} repetitions"
        f"{' (INTERRUPTED: partial results)' if res.get('interrupted') else ''}.",
        "",
        "| measurement | value | details | target |",
        "|---|---|---|---|",
    ]
    for row in build_rows(res):
        lines.append("| " + " | ".join(cell.replace("|", "\\|") for cell in row) + " |")
    return "\n".join(lines)


# ------------------------------------------------------------------------------------------------
# Entry point
# ------------------------------------------------------------------------------------------------

def parse_args(argv):
    parser = argparse.ArgumentParser(prog="python -m nexus.bench", description=__doc__.split("\n\n")[0])
    parser.add_argument("--reps", type=int, default=3, help="repetitions per measurement; medians quoted (default 3)")
    parser.add_argument("--out", type=Path, default=None,
                        help="JSON file for all results (default $NEXUS_HOME/bench/bench-<time>.json)")
    parser.add_argument("--skip-sweep", action="store_true", help="skip the offline 36-run sweep")
    parser.add_argument("--only-sweep", action="store_true", help="only the sweep (no in-process measurements)")
    parser.add_argument("--skip-memory", action="store_true", help="skip the peak-memory runs")
    parser.add_argument("--tiny", action="store_true", help="64/32/32 pairs, few batches: the smoke test's mode")
    parser.add_argument("--nexus-batches", type=int, default=None,
                        help="NEXUS-way batches timed, then extrapolated (default 8; tiny 1)")
    parser.add_argument("--threads", default=None,
                        help="torch thread counts to time epochs with, comma-separated (default: torch's default and 1)")
    parser.add_argument("--sweep-workers", default="1,2", help="worker counts for the sweep (default 1,2)")
    parser.add_argument("--sweep-file", type=Path, default=SWEEP_FILE)
    parser.add_argument("--sweep-timeout", type=float, default=None, help="seconds per sweep before giving up")
    parser.add_argument("--profile", action="store_true",
                        help="also pyinstrument a baseline and a dendritic fit (1 thread)")
    parser.add_argument("--work-dir", type=Path, default=None, help="scratch folder (default: a temp dir, removed)")
    return parser.parse_args(argv)


def in_process(args, res: dict, work: Path, home: Path, save) -> None:
    """Sections 1-4: cache, epochs, (profile), peak memory of one run."""
    import torch

    from nexus.backbone import load_backbone
    from nexus.data import load_splits
    from nexus.run import torch_threads
    from nexus.train import set_denormal_flushing

    reps = res["reps"]
    limits = TINY_LIMITS if args.tiny else []
    nexus_batches = args.nexus_batches or (1 if args.tiny else 8)
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

    # 1. Embedding cache: cold builds, then hits
    res["cache"], inputs = measure_cache(splits, backbone, base_cfg.model, home, reps)
    say(f"cache: {res['cache']['sentences_per_s']:.0f} sentences/s cold, hit {res['cache']['hit_median_s']:.3f}s")
    save()

    # 2-3. Epochs: baseline, NEXUS way, dendritic with and without the graph fix, one dendrite
    epochs_cfg = [f"train.max_epochs={reps + 1}", *limits]
    base_cfg = compose(["+experiment=baseline", "logger=none", *epochs_cfg])
    pai_cfg = compose(["+experiment=dendritic", "logger=none", *epochs_cfg])
    den_cfg = compose(["+experiment=dendritic", "logger=none", "pai=every_epoch", *limits])
    res["epochs"] = {}
    for n in threads:
        block = res["epochs"][str(n)] = {}
        with torch_threads(n):
            block["baseline"] = summarize_epochs(run_fit(base_cfg, inputs, work / f"base-{n}")["records"])
            say(f"threads {n}: baseline epoch {block['baseline'].get('epoch_s', float('nan')):.3f}s")
            block["nexus_way"] = measure_nexus_way(backbone, splits, base_cfg, inputs["train"].emb1.shape[1],
                                                    nexus_batches)
            say(f"threads {n}: NEXUS-way epoch {block['nexus_way']['epoch_s']:.1f}s (extrapolated)")
            for key, every in (("pai_every_epoch", True), ("pai_graphs", False)):
                out = run_fit(pai_cfg, inputs, work / f"{key}-{n}", every_epoch_graphs=every)
                block[key] = {**summarize_epochs(out["records"]), "graph_counts": out["graph_counts"]}
                say(f"threads {n}: dendritic epoch ({key}) {block[key].get('epoch_s', float('nan')):.3f}s")
            with quiet():
                block["one_dendrite"] = measure_dendrite_epoch(den_cfg, inputs, work / f"dendrite-{n}", reps)
            say(f"threads {n}: train + dev with a dendrite {block['one_dendrite']['train_and_dev_s']:.3f}s")
        save()

    if args.profile:
        res["profile"] = profile(base_cfg, pai_cfg, inputs, work, 1)
        say("profiles done")
        save()

    # 4. Peak memory of one run
    if not args.skip_memory:
        res["memory"] = measure_run_memory(home, work, args.tiny)
        save()


def main(argv: list[str] | None = None) -> int:
    import signal

    argv = sys.argv[1:] if argv is None else list(argv)
    args = parse_args(argv)
    work = args.work_dir or Path(tempfile.mkdtemp(prefix="nexus-bench-"))
    work.mkdir(parents=True, exist_ok=True)
    home = work / "home"  # NEXUS_HOME of the memory runs: its cache is the one built below
    home_dir = Path(os.environ.get("NEXUS_HOME") or Path.home() / "nexus").expanduser()
    out = args.out or home_dir / "bench" / f"bench-{time.strftime('%Y%m%d-%H%M%S')}.json"
    out.parent.mkdir(parents=True, exist_ok=True)
    res: dict = {"machine": machine(), "command": "python -m nexus.bench " + " ".join(argv), "reps": max(1, args.reps),
                 "tiny": args.tiny, "pai_graphs_in_nexus_pai": "pai_graphs" in (REPO / "nexus" / "pai.py").read_text()}

    def save() -> str:
        """Results so far, to --out (rewritten after every section: a killed bench keeps them)."""
        res["load_average_end"] = [round(x, 2) for x in os.getloadavg()]
        table = markdown(res)
        tmp = out.with_name(out.name + ".tmp")
        tmp.write_text(json.dumps({**res, "markdown": table}, indent=2, default=str))
        os.replace(tmp, out)
        return table

    say(f"machine: {res['machine']['cpu']}, {res['machine']['cores']} cores, torch {res['machine']['torch']}; "
        f"scratch {work}; results {out}")
    main_thread = threading.current_thread() is threading.main_thread()
    if main_thread:  # SIGTERM: stop like Ctrl-C, results so far saved
        previous = signal.signal(signal.SIGTERM, signal.default_int_handler)
    status = 0
    try:
        if not args.only_sweep:
            in_process(args, res, work, home, save)

        # 5. The sweep, once per worker count
        res["sweep"] = {}
        if args.skip_sweep:
            res["sweep"]["all"] = {"skipped": "--skip-sweep"}
        elif not args.sweep_file.is_file():
            res["sweep"]["all"] = {"skipped": f"{args.sweep_file} is missing"}
            say(res["sweep"]["all"]["skipped"])
        else:
            for workers in (int(w) for w in args.sweep_workers.split(",")):
                sweep = measure_sweep(workers, args.sweep_file, work, args.sweep_timeout)
                res["sweep"][f"{workers}_workers"] = sweep
                say(f"sweep {workers} worker(s): {sweep['wall_s']:.0f}s, runs {sweep['runs']}")
                save()
                if args.work_dir is None:  # the sweep's run folders are large; keep its log only
                    shutil.rmtree(work / f"sweep-home-{workers}", ignore_errors=True)
    except KeyboardInterrupt:
        res["interrupted"] = True
        say("interrupted: results so far are saved")
        status = 130
    finally:
        if main_thread:
            signal.signal(signal.SIGTERM, previous)
        table = save()
        print(table)
        for name, text in res.get("profile", {}).items():
            print(f"\n### profile: {name} (1 thread)\n{text}")
        print(f"\nresults: {out}")
        if args.work_dir is None:
            shutil.rmtree(work, ignore_errors=True)
    return status


if __name__ == "__main__":
    sys.exit(main())
