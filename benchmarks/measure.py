"""In-process measurements: the embedding cache, epochs of `nexus.train.fit`, an epoch without the
cache, an epoch with a dendrite, and profiles. Each returns a JSON-ready dict."""

from __future__ import annotations

import math
import shutil
import tempfile
import time
from pathlib import Path

from benchmarks.common import load_average, median, quiet, say
from benchmarks.timed_growth import TimedGrowth, growth_metrics, make_growth


def measure_cache(splits, backbone, model_cfg, work: Path, reps: int) -> tuple[dict, dict]:
    """Cold builds into fresh cache folders, then cache hits; returns (results, encoded inputs)."""
    from nexus.inputs import encode_splits

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


class EpochLog:
    """`fit`'s callbacks: one record per epoch, and each checkpoint write timed."""

    def __init__(self, run_dir: Path):
        self.run_dir = run_dir
        self.records: list[dict] = []
        self.checkpoint_s: list[float] = []
        self.checkpoint_cpu: list[float] = []

    def on_epoch(self, record, events, net_after) -> None:
        self.records.append({"epoch": record["epoch"], "epoch_s": record["time/epoch_s"], "events": list(events),
                             "cpu_mark": time.process_time(),
                             "loss": record["train/loss"], "val_spearman": record["val/spearman"],
                             "params": record["pai/params"], "load": load_average()})

    def save_state(self, state) -> None:
        from nexus.checkpoint import save_checkpoint

        started, cpu = time.perf_counter(), time.process_time()
        save_checkpoint(self.run_dir, state)
        self.checkpoint_s.append(time.perf_counter() - started)
        self.checkpoint_cpu.append(time.process_time() - cpu)

    def finish(self, cpu_start: float, decide_s: list[float]) -> list[dict]:
        """CPU seconds of the process per epoch (all its threads): the epoch's cost on an idle
        machine, for one thread; between two on_epoch calls, less the checkpoint write in between."""
        previous = cpu_start
        for i, record in enumerate(self.records):
            record["epoch_cpu_s"] = record.pop("cpu_mark") - previous
            previous += record["epoch_cpu_s"] + (self.checkpoint_cpu[i] if i < len(self.checkpoint_cpu) else 0.0)
        for record, seconds in zip(self.records, decide_s):
            record["decide_s"] = seconds
        for record, seconds in zip(self.records, self.checkpoint_s):
            record["checkpoint_s"] = seconds
        return self.records


def run_fit(cfg, inputs, run_dir: Path) -> dict:
    """`nexus.train.fit` on encoded inputs for cfg.train.max_epochs epochs; per-epoch records with the
    decision time and the checkpoint write time."""
    from nexus.adapter import build_layers
    from nexus.run import seed_everything
    from nexus.train import fit

    run_dir.mkdir(parents=True, exist_ok=True)
    seed_everything(int(cfg.seed))
    growth = TimedGrowth(make_growth(cfg.pai, cfg.train, run_dir, "cpu"))
    with quiet():
        net = growth.prepare(build_layers(inputs["train"].emb1.shape[1], cfg.model.adapter))
    log = EpochLog(run_dir)
    cpu_start = time.process_time()
    with quiet():
        fit(net, growth, inputs["train"], inputs["val"], cfg.train, int(cfg.seed), log.on_epoch, log.save_state)
    graphs = getattr(growth, "graphs", None)
    return {"records": log.finish(cpu_start, growth.decide_s),
            "graph_counts": dict(graphs.counts) if graphs is not None else None}


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


def measure_uncached(backbone, splits, cfg, dim: int, batches: int) -> dict:
    """The adapter epoch without the embedding cache: every batch's sentences re-encoded by the
    frozen backbone (no_grad), then the same training step. `batches` batches are timed (after one
    warm-up) and the per-batch median is extrapolated to the epoch."""
    import torch

    from nexus.adapter import build_layers
    from nexus.inputs import EncodedPairs
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
            emb1, emb2 = (backbone.encode([side[i] for i in rows], batch_size=batch_size,
                                          convert_to_tensor=True, show_progress_bar=False)
                          for side in (train.sentences1, train.sentences2))
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


def grow_one_dendrite(cfg, inputs, run_dir: Path):
    """An adapter trained one epoch under pai=every_epoch, which adds a dendrite after it;
    returns (net, optimizer, generator, {dendrites, params, params_before})."""
    import torch

    from nexus.adapter import build_layers
    from nexus.evaluate import correlations, cosine_predictions
    from nexus.run import seed_everything
    from nexus.train import train_one_epoch

    seed_everything(int(cfg.seed))
    run_dir.mkdir(parents=True, exist_ok=True)
    growth = make_growth(cfg.pai, cfg.train, run_dir, "cpu")
    with quiet():
        net = growth.prepare(build_layers(inputs["train"].emb1.shape[1], cfg.model.adapter))
    optimizer = growth.make_optimizer(net)
    generator = torch.Generator().manual_seed(int(cfg.seed))
    train_one_epoch(net, optimizer, inputs["train"], int(cfg.train.batch_size), generator)
    score = correlations(cosine_predictions(net, inputs["val"]), inputs["val"].scores.cpu().numpy())[0]
    params_before = growth_metrics(growth, net)["pai/params"]
    decision = growth.after_epoch(score, net, optimizer)
    metrics = growth_metrics(growth, decision.net)
    info = {"dendrites": metrics["pai/dendrites"], "params": metrics["pai/params"], "params_before": params_before}
    return decision.net, decision.optimizer, generator, info


def measure_dendrite_epoch(cfg, inputs, run_dir: Path, reps: int) -> dict:
    """Training + dev scoring of an adapter that carries one dendrite; PAI's decision is not
    called in the timed epochs."""
    import torch

    from nexus.evaluate import correlations, cosine_predictions
    from nexus.train import set_denormal_flushing, train_one_epoch

    net, optimizer, generator, out = grow_one_dendrite(cfg, inputs, run_dir)
    batch_size, val_gold = int(cfg.train.batch_size), inputs["val"].scores.cpu().numpy()
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


def profile(base_cfg, every_epoch_cfg, inputs, work: Path, threads: int) -> dict:
    """pyinstrument of a few baseline epochs and of PAI's add_validation_score (drawing every epoch)."""
    try:
        from pyinstrument import Profiler
    except ImportError:
        return {"skipped": "pyinstrument is not installed (pip install pyinstrument)"}
    from nexus.inputs import torch_threads

    out = {}
    with torch_threads(threads):
        for name, cfg in (("baseline", base_cfg), ("dendritic", every_epoch_cfg)):
            profiler = Profiler(interval=0.001)
            profiler.start()
            run_fit(cfg, inputs, work / f"profile-{name}")
            profiler.stop()
            out[name] = profiler.output_text(unicode=False, color=False)
    return out
