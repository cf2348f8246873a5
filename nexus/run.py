"""One run, start to finish: the stages in the order they happen. launch.py calls `run`."""

from __future__ import annotations

import random
import signal
import sys
import threading
import time
import traceback
from pathlib import Path

import numpy as np
import torch
from omegaconf import OmegaConf

from nexus.adapter import build_layers
from nexus.backbone import load_backbone, pick_device
from nexus.checkpoint import completed_run, load_checkpoint, networks_to, remove_checkpoint, save_checkpoint
from nexus.config import configuration_id
from nexus.data import Pairs, load_splits
from nexus.evaluate import correlations, cosine_predictions
from nexus.growth import Growth, make_growth
from nexus.inputs import TrainingPairs, make_inputs
from nexus.model import card_metadata, save_model
from nexus.outputs import plot_training, write_predictions
from nexus.results import write_results
from nexus.tracking import RunLog
from nexus.train import FitResult, StopRequested, fit, set_denormal_flushing


def seed_everything(seed: int) -> None:
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)


def train_and_evaluate(cfg, run_dir: Path, log: RunLog, summary: dict, resumed: dict | None,
                       stop: threading.Event) -> None:
    """Fills `summary` as it goes, so a failure still reports what was reached."""
    device = pick_device(cfg.train.device)
    set_denormal_flushing(bool(cfg.train.flush_denormals))  # first: before any torch computation
    seed_everything(cfg.seed)

    # 1. Data: STS-B (or the user's pairs), scores scaled to 0..1
    splits = load_splits(cfg.data)

    # 2. Backbone. Frozen (default): each sentence encoded once (on model.encode_device), cached on
    #    disk; loaded on the CPU, so a run whose sentences are all cached never starts a GPU for it.
    #    Full fine-tuning: sentences go through it at every batch and it trains at train.backbone_lr.
    backbone = load_backbone(cfg.model, "cpu" if cfg.model.freeze_backbone else device)
    inputs = make_inputs(splits, backbone, cfg, device)
    trainable_backbone = None if cfg.model.freeze_backbone else backbone
    extra_groups = [] if trainable_backbone is None else [
        {"params": list(backbone.parameters()), "lr": float(cfg.train.backbone_lr)}]

    # 3. Zero-shot reference: the backbone's own cosine similarities
    for split in ("val", "test"):
        summary[f"zero_shot/{split}_spearman"] = correlations(cosine_predictions(None, inputs[split]),
                                                              splits[split].scores)[0]
    log.log_start(summary)
    print(f"zero-shot: dev Spearman {summary['zero_shot/val_spearman']:.4f}, "
          f"test {summary['zero_shot/test_spearman']:.4f}")

    # 4. Adapter, grown by PAI unless pai=disabled (or the network and PAI state of a resumed run)
    growth = make_growth(cfg.pai, cfg.train, run_dir, device, extra_groups)
    if resumed:
        growth.restore(resumed["growth"])
        networks_to(resumed, device)
        net = resumed["net"]
        print(f"resuming after epoch {resumed['epoch']}")
    else:
        dim = backbone.get_embedding_dimension()
        net = growth.prepare(build_layers(dim, cfg.model.adapter).to(device))

    # 5. Epochs: train, dev Spearman, PAI decision; a checkpoint after each
    history = list(resumed["history"]) if resumed else []
    events = list(resumed["events"]) if resumed else []
    config = OmegaConf.to_container(cfg, resolve=True)

    def save_state(state: dict) -> None:
        save_checkpoint(run_dir, {**state, "history": history, "events": events, "config": config,
                                  "wandb_id": log.wandb_id})

    result = fit(net, growth, inputs["train"], inputs["val"], cfg.train, int(cfg.seed),
                 epoch_reporter(growth, log, history, events), save_state, resumed, stop.is_set, trainable_backbone)

    # 6. The best-dev model: test once, save predictions, plot, results.md, and the model with its card
    best_net = growth.finish(result.best.net)
    if trainable_backbone is not None:
        backbone.load_state_dict(result.best.backbone_state)
    test_best(best_net, splits, inputs, run_dir, summary)
    plot_training(run_dir / "training_results.png", history, events, summary["zero_shot/val_spearman"])
    summary.update(result_summary(result, events))
    summary["pai/architectures"] = architecture_summary(result, history, splits, inputs, summary, trainable_backbone)
    write_results(run_dir, history, events, summary)
    card = card_metadata({**summary, "config": config}, run_dir, log.wandb_id)
    save_model(run_dir / "model", backbone, best_net, cfg, card, Path(cfg.paths.cache_dir) / "blobs")


def epoch_reporter(growth: Growth, log: RunLog, history: list[dict], events: list[dict]):
    """`fit`'s `on_epoch`: each epoch's record and PAI events to `history`/`events`, the logs, the console."""

    def on_epoch(record: dict, kinds: list[str], net_after) -> None:
        metrics = growth.metrics(net_after)
        new = [{"epoch": record["epoch"], "kind": kind, "dendrites": metrics["pai/dendrites"],
                "params": metrics["pai/params"]} for kind in kinds]
        history.append(record)
        events.extend(new)
        log.log_epoch(record, new)
        marks = "".join(f"  [{e['kind']}: {e['dendrites']} dendrites, {e['params']:,} params]" for e in new)
        print(f"epoch {record['epoch']:3d}  loss {record['train/loss']:.5f}  dev Spearman "
              f"{record['val/spearman']:.4f}  {record['pai/mode']}  {record['time/epoch_s']:.2f}s{marks}")

    return on_epoch


def test_best(net, splits: dict[str, Pairs], inputs: dict[str, TrainingPairs], run_dir: Path, summary: dict) -> None:
    """The best-dev network's predictions on dev and test (predictions/*.csv); its test Spearman and
    Pearson into `summary`, the one time the test split is scored."""
    for split in ("val", "test"):
        predictions = cosine_predictions(net, inputs[split])
        write_predictions(run_dir / "predictions" / f"{split}.csv", splits[split], predictions)
        if split == "test":
            summary["test/spearman"], summary["test/pearson"] = correlations(predictions, splits[split].scores)


def architecture_summary(result: FitResult, history: list[dict], splits: dict[str, Pairs],
                         inputs: dict[str, TrainingPairs], summary: dict, trainable_backbone) -> list[dict]:
    """What PAI's tracker reports per architecture (dendrite count): epochs trained, its best dev
    Spearman and epoch, and the test Spearman of that best model (the summary's for the overall best).
    The test needs the backbone of that epoch: a frozen one is the same for all; one that trains is
    kept only for the overall best, so the others' test is None (null)."""
    rows = []
    for dendrites, best in sorted(result.architectures.items()):
        if best.epoch == result.best.epoch:
            test = summary["test/spearman"]
        elif trainable_backbone is None:
            test = correlations(cosine_predictions(best.net, inputs["test"]), splits["test"].scores)[0]
        else:
            test = None
        rows.append({"dendrites": dendrites, "params": best.record["pai/params"],
                     "epochs": sum(r["pai/dendrites"] == dendrites for r in history),
                     "best_val_spearman": best.record["val/spearman"], "best_epoch": best.epoch,
                     "test_spearman": test})
    return rows


def result_summary(result: FitResult, events: list[dict]) -> dict:
    """summary.json's figures of the training: the best-dev epoch, its size, the restructures."""
    return {
        "best/val_spearman": result.best.record["val/spearman"],
        "best/epoch": result.best.epoch,
        "pai/dendrites": result.best.record["pai/dendrites"],
        "pai/params": result.best.record["pai/params"],
        "pai/restructures": sum(e["kind"] != "training_complete" for e in events),
        "epochs": result.epochs_run,
    }


def run(cfg, run_dir: str | Path, choices: dict | None = None) -> dict:
    """Train and evaluate one configuration in `run_dir`; returns summary.json's content.
    `choices`: the option picked in each config group (W&B keeps them beside the config)."""
    run_dir = Path(run_dir)
    run_dir.mkdir(parents=True, exist_ok=True)
    started = time.perf_counter()
    config = OmegaConf.to_container(cfg, resolve=True)
    done = completed_run(run_dir, cfg.resume, config)
    if done is not None:
        print(f"already completed, skipped: {run_dir} (resume=false runs it again)")
        return done
    resumed = load_checkpoint(run_dir, cfg.resume, config)
    summary = {"status": "running", "reason": None, "experiment": cfg.experiment, "seed": int(cfg.seed),
               "pai": cfg.pai.mode, "configuration_id": configuration_id(config)}
    log = RunLog(cfg, run_dir, resumed, choices)
    stop = threading.Event()
    previous_handler = None
    if threading.current_thread() is threading.main_thread():
        # Schedulers preempt with SIGTERM: finish the current batch, keep the last checkpoint, exit.
        previous_handler = signal.signal(signal.SIGTERM, lambda *_: stop.set())
    if torch.cuda.is_initialized():  # this run's own peak, not an earlier job's of this process (multirun)
        torch.cuda.reset_peak_memory_stats()
    try:
        train_and_evaluate(cfg, run_dir, log, summary, resumed, stop)
        summary["status"] = "completed"
        remove_checkpoint(run_dir)
    except StopRequested:
        summary.update(status="interrupted", reason="stopped by SIGTERM; run the same command again to resume")
        print(f"run stopped: {summary['reason']} ({run_dir})", file=sys.stderr)
    except KeyboardInterrupt:
        summary.update(status="interrupted", reason="interrupted by the user")
        raise
    except Exception as err:  # noqa: BLE001  any failure of the run is recorded as its reason
        summary.update(status="failed", reason=f"{type(err).__name__}: {err}")
        (run_dir / "error.log").write_text(traceback.format_exc())
        print(f"run failed: {summary['reason']} (traceback in {run_dir / 'error.log'})", file=sys.stderr)
    finally:
        if previous_handler is not None:
            signal.signal(signal.SIGTERM, previous_handler)
        summary["time/total_s"] = time.perf_counter() - started
        if torch.cuda.is_initialized():  # what this run held on its card at most (several runs may share it)
            summary["gpu/peak_memory_mb"] = torch.cuda.max_memory_allocated() / 2**20
        summary["config"] = config
        log.log_end(summary)
    if summary["status"] == "completed":
        print(f"done in {summary['time/total_s']:.1f}s: best dev Spearman {summary['best/val_spearman']:.4f} "
              f"(epoch {summary['best/epoch']}), test {summary['test/spearman']:.4f}, "
              f"{summary['pai/dendrites']} dendrites -> {run_dir}")
    return summary
