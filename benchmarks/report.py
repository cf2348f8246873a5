"""The benchmark's results as a Markdown table (the rows BENCHMARKS.md quotes).

    python -m benchmarks.report benchmarks/cpu/bench-f381345.json   # the table of a saved result

Reads results of every version of the benchmark: the epoch without the embedding cache was
saved as `nexus_way` before it was `uncached`.
"""

from __future__ import annotations

import json
import math
import sys
from pathlib import Path

from nexus.tables import markdown_table

# What the harness is held to on a 2-core CPU, so that a sweep of dozens of runs stays a matter of
# minutes on one machine: a cached epoch well under a second, the cache paying for itself many
# times over, PAI at most doubling an epoch, the 36-run sweep (2 workers) in 5 minutes, and every
# process within 2 GiB. name -> (comparison, bound, unit)
TARGETS = {
    "baseline_epoch_s": ("<=", 0.25, "s"),
    "uncached_ratio": (">=", 100.0, "x"),
    "pai_overhead_ratio": ("<=", 2.0, "x"),
    "sweep_2_workers_s": ("<=", 150.0, "s"),  # issue 15: 36 runs, 2 workers, empty cache
    "sweep_worker_peak_mb": ("<=", 2048.0, "MiB"),
}
HEADER = ("measurement", "value", "details", "target")
PAI_CASES = (("pai_every_epoch", "PAI graphs every epoch (pai.graphs_every_epoch=true)"),
             ("pai_graphs", "graphs on restructure and at the end (default)"))

Row = tuple[str, str, str, str]


def verdict(key: str, value: float | None) -> str:
    if key not in TARGETS or value is None or (isinstance(value, float) and math.isnan(value)):
        return ""
    op, bound, unit = TARGETS[key]
    met = value <= bound if op == "<=" else value >= bound
    return f"{op} {bound:g} {unit}: {'met' if met else 'NOT met'}"


def cpu_note(block: dict, key: str) -> str:
    return f"; CPU {block[key]:.3f} s" if key in block else ""


def cache_rows(cache: dict) -> list[Row]:
    return [("Embedding cache build, cold (fresh cache folder)", f"{cache['sentences_per_s']:.0f} sentences/s",
             f"{cache['distinct_sentences']:,} distinct sentences in {cache['cold_median_s']:.1f} s"
             f"{cpu_note(cache, 'cold_cpu_median_s')}; load {cache['load']}", ""),
            ("Embedding cache, second run (hit)", f"{cache['hit_median_s']:.3f} s",
             f"{cache['sentences']:,} sentences looked up", "")]


def baseline_rows(base: dict, batch_size: int, tag: str) -> list[Row]:
    ckpt = f"; checkpoint write {base['checkpoint_s']:.3f} s" if "checkpoint_s" in base else ""
    return [(f"Baseline epoch, cached inputs, batch {batch_size}, {tag}", f"{base['epoch_s']:.3f} s",
             f"train + dev Spearman, median of {base['epochs_timed']}{cpu_note(base, 'epoch_cpu_s')}{ckpt}; "
             f"load {base['load']}", verdict("baseline_epoch_s", base["epoch_s"]))]


def uncached_rows(way: dict, base: dict, tag: str) -> list[Row]:
    ratio = way["epoch_s"] / base["epoch_s"]
    return [(f"Epoch re-encoding every batch (no embedding cache), {tag}", f"{way['epoch_s']:.1f} s",
             f"{'extrapolated from' if way['extrapolated'] else 'all'} {way['batches_timed']} of "
             f"{way['batches_per_epoch']} batches ({way['batch_median_s']:.3f} s/batch)"
             f"{cpu_note(way, 'epoch_cpu_s')}; load {way['load']}", ""),
            (f"Re-encoding / cached epoch, {tag}", f"{ratio:.0f}x", "", verdict("uncached_ratio", ratio))]


def pai_rows(pai: dict, base: dict, label: str, tag: str) -> list[Row]:
    ratio = pai["epoch_s"] / base["epoch_s"]
    ckpt = f"; checkpoint write {pai['checkpoint_s']:.3f} s" if "checkpoint_s" in pai else ""
    return [(f"Dendritic epoch, {label}, {tag}", f"{pai['epoch_s']:.3f} s",
             f"pai=history, 0 dendrites, no restructure; PAI's add_validation_score {pai['decide_s']:.3f} s; "
             f"median of {pai['epochs_timed']}{cpu_note(pai, 'epoch_cpu_s')}{ckpt}; load {pai['load']}", ""),
            (f"Dendritic / baseline epoch, {label}, {tag}", f"{ratio:.2f}x", "", verdict("pai_overhead_ratio", ratio))]


def dendrite_rows(den: dict, base: dict, tag: str) -> list[Row]:
    rows = [(f"Train + dev of an epoch with {den['dendrites']} dendrite ({den['params']:,} params), {tag}",
             f"{den['train_and_dev_s']:.3f} s",
             f"{den['train_and_dev_s'] / base['train_and_dev_s']:.2f}x the baseline's train + dev "
             f"({base['train_and_dev_s']:.3f} s, {den['params_before']:,} params)"
             f"{cpu_note(den, 'train_and_dev_cpu_s')}; denormals flushed: {den['flush_denormals']}; "
             f"load {den['load']}", "")]
    if "other_train_and_dev_s" in den:
        other = den["other_flush_denormals"]
        rows.append((f"The same with denormals {'flushed' if other else 'kept'} "
                     f"(train.flush_denormals={str(other).lower()}), {tag}", f"{den['other_train_and_dev_s']:.3f} s",
                     f"{den['other_train_and_dev_s'] / base['train_and_dev_s']:.2f}x the baseline's train + dev"
                     f"{cpu_note(den, 'other_train_and_dev_cpu_s')}", ""))
    return rows


def epoch_rows(threads: str, block: dict, batch_size: int) -> list[Row]:
    """One thread count's rows; the comparisons need the baseline epoch."""
    base = block.get("baseline", {})
    if "epoch_s" not in base:
        return []
    tag = f"{threads} thread{'s' if int(threads) > 1 else ''}"
    rows = baseline_rows(base, batch_size, tag)
    way = block.get("uncached") or block.get("nexus_way")
    if way:
        rows += uncached_rows(way, base, tag)
    for key, label in PAI_CASES:
        if "epoch_s" in block.get(key, {}):
            rows += pai_rows(block[key], base, label, tag)
    if block.get("one_dendrite"):
        rows += dendrite_rows(block["one_dendrite"], base, tag)
    return rows


def sweep_rows(name: str, sweep: dict) -> list[Row]:
    if "skipped" in sweep:
        return [(f"Sweep {name}", "skipped", sweep["skipped"], "")]
    workers = sweep["workers"]
    ok = f"runs {sweep['runs']}" + (f"; {sweep['error']}" if sweep.get("error") else "")
    value = f"{'> ' if sweep.get('timed_out') else ''}{sweep['wall_s']:.0f} s"
    rows = [(f"Sweep `{Path(sweep['sweep_file']).name}`, {workers} worker{'s' if workers > 1 else ''}, "
             "empty cache", value, f"{ok}; load at end {sweep['load']}",
             verdict("sweep_2_workers_s", sweep["wall_s"]) if workers == 2 else "")]
    if "peak_mb" in sweep:
        rows.append((f"Peak RSS, largest process of the {workers}-worker sweep", f"{sweep['peak_mb']:.0f} MiB", "",
                     verdict("sweep_worker_peak_mb", sweep["peak_mb"])))
    return rows


def memory_rows(name: str, mem: dict) -> list[Row]:
    if "peak_mb" not in mem:
        return [(f"Peak RSS, one run ({name})", "failed", mem.get("error", ""), "")]
    return [(f"Peak RSS, one run ({name.replace('_', ' ')})", f"{mem['peak_mb']:.0f} MiB",
             f"`{mem['command']}`, rc {mem['rc']}, {mem['wall_s']:.0f} s",
             verdict("sweep_worker_peak_mb", mem["peak_mb"]))]


def build_rows(res: dict) -> list[Row]:
    """(measurement, value, details, target) rows of the Markdown table."""
    rows = cache_rows(res["cache"]) if res.get("cache") else []
    for threads, block in sorted(res.get("epochs", {}).items(), key=lambda kv: -int(kv[0])):
        rows += epoch_rows(threads, block, res["batch_size"])
    for name, sweep in sorted(res.get("sweep", {}).items()):
        rows += sweep_rows(name, sweep)
    for name, mem in sorted(res.get("memory", {}).items()):
        rows += memory_rows(name, mem)
    return rows


def markdown(res: dict) -> str:
    m = res["machine"]
    return "\n".join([
        f"Machine: {m['cpu']}, {m['cores']} cores, {m['memory_gib']} GiB, torch {m['torch']} "
        f"(default {m['torch_threads_default']} threads), Python {m['python']}; {m['date']}; "
        f"load average at start {m['load_average_start']}, at end {res.get('load_average_end')}.",
        f"Command: `{res['command']}`; medians of {res['reps']} repetitions"
        f"{' (INTERRUPTED: partial results)' if res.get('interrupted') else ''}.",
        "",
        markdown_table(HEADER, build_rows(res)),
    ])


def main(argv: list[str] | None = None) -> int:
    paths = sys.argv[1:] if argv is None else argv
    if not paths:
        print("usage: python -m benchmarks.report RESULT.json [...]", file=sys.stderr)
        return 2
    print("\n\n".join(markdown(json.loads(Path(p).read_text())) for p in paths))
    return 0


if __name__ == "__main__":
    sys.exit(main())
