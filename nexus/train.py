"""The epoch loop on encoded pairs: train, score on dev, let the growth policy decide, keep the best.

After every epoch the loop hands its whole state to `save_state` (the caller writes the
checkpoint), and it can start from such a state, so a killed run continues where it stopped.
"""

from __future__ import annotations

import copy
import math
import os
import random
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import numpy as np
import torch
from torch import nn

from nexus.evaluate import correlations, cosine_predictions
from nexus.growth import Growth
from nexus.inputs import TrainingPairs


class TrainingDiverged(RuntimeError):
    """The loss became NaN or infinite: the run is failed, not finished."""


class StopRequested(Exception):
    """A scheduler asked the run to stop (SIGTERM): leave it resumable from its last checkpoint."""


@dataclass
class Best:
    net: nn.Module
    epoch: int
    record: dict
    backbone_state: dict | None = None  # full fine-tuning: the backbone's weights at that epoch


@dataclass
class FitResult:
    best: Best
    epochs_run: int
    # The best-dev model of each architecture (key: dendrite count), as PAI's tracker reports them.
    architectures: dict[int, Best]


def train_one_epoch(net, optimizer, train: TrainingPairs, batch_size: int, generator: torch.Generator,
                    stop_requested: Callable[[], bool] = lambda: False) -> tuple[float, float]:
    """Cosine-similarity MSE (sentence-transformers' CosineSimilarityLoss) over shuffled batches.
    Returns the mean loss and the Spearman of the batches' own predictions as they trained (a
    running training score, as PAI's guide logs one, for free: no extra pass over the data).

    `train` is cached embeddings (frozen backbone) or `BackbonePairs` (the backbone trains too)."""
    net.train()
    order = torch.randperm(len(train), generator=generator).to(train.scores.device)
    total = torch.zeros((), device=train.scores.device)
    similarities = []
    for start in range(0, len(train), batch_size):
        if stop_requested():
            raise StopRequested
        batch = order[start:start + batch_size]
        # Both sides through the adapter in one call: for a small adapter the per-call overhead,
        # not the arithmetic, is most of the time.
        out1, out2 = net(torch.cat(train.embed_batch(batch))).chunk(2)
        similarity = torch.cosine_similarity(out1, out2)
        loss = nn.functional.mse_loss(similarity, train.scores[batch])
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
        total += loss.detach() * len(batch)
        similarities.append(similarity.detach().float())
    net.eval()
    spearman = correlations(torch.cat(similarities).cpu().numpy(), train.scores[order].cpu().numpy())[0]
    return total.item() / len(train), spearman


def global_rng() -> dict:
    """Process-wide random states: PAI draws new dendrites' initial weights from them."""
    return {"torch": torch.get_rng_state(), "numpy": np.random.get_state(), "python": random.getstate()}


def restore_global_rng(state: dict) -> None:
    torch.set_rng_state(state["torch"])
    np.random.set_state(state["numpy"])
    random.setstate(state["python"])


def set_denormal_flushing(enabled: bool) -> None:
    """Float32 values below ~1e-38 computed as zero (where the CPU supports it), or not. A new
    dendrite's small weights and gradients produce such denormals, which x86 CPUs compute on many
    times slower, so epochs with dendrites slow down (BENCHMARKS.md measures it).

    Call it before the process's first parallel torch operation: OpenMP's worker threads copy the
    floating-point mode of the thread that starts them and keep it, so a later call changes this
    thread only (and results may then depend on the thread count)."""
    torch.set_flush_denormal(enabled)


def hold_for_tests(epoch: int) -> None:
    """Tests that kill or signal a run need it at a known point, not wherever it got to: with
    NEXUS_TEST_HOLD=K:FOLDER, once epoch K is checkpointed the run creates FOLDER/<its pid> and
    waits until that file is gone. Unset (any real run): nothing, so results are the same."""
    hold = os.environ.get("NEXUS_TEST_HOLD")
    if hold is None or int(hold.split(":", 1)[0]) != epoch:
        return
    mark = Path(hold.split(":", 1)[1]) / str(os.getpid())
    mark.touch()
    while mark.exists():
        time.sleep(0.01)


def keep_bests(net, epoch: int, record: dict, best: Best, architectures: dict[int, Best],
               backbone: nn.Module | None) -> Best:
    """Record the epoch's network if it is its architecture's best so far (in `architectures`, by
    dendrite count); returns the overall best, which is always its architecture's best too, so one
    copy serves both. Copied before PAI's decision: the decision may restructure this very object."""
    arch = architectures.get(record["pai/dendrites"])
    if arch is not None and record["val/spearman"] <= arch.record["val/spearman"]:
        return best
    snapshot = copy.deepcopy(net)
    architectures[record["pai/dendrites"]] = Best(snapshot, epoch, record)
    if record["val/spearman"] <= best.record["val/spearman"]:
        return best
    return Best(snapshot, epoch, record, None if backbone is None else copy.deepcopy(backbone.state_dict()))


def fit(net, growth: Growth, train: TrainingPairs, val: TrainingPairs, train_cfg, seed: int,
        on_epoch: Callable[[dict, list[str], nn.Module], None],
        save_state: Callable[[dict], None] = lambda state: None,
        resume_state: dict | None = None,
        stop_requested: Callable[[], bool] = lambda: False,
        backbone: nn.Module | None = None) -> FitResult:
    """Run epochs until max_epochs or until PAI says training is complete.

    `backbone` is given when it trains too (full fine-tuning): its weights join the best
    model and the checkpoint; `growth` already has its parameters in the optimizer.
    `on_epoch(record, events, net)` receives each epoch's metrics (named as metrics.jsonl and W&B
    name them, so the record is logged as it is), the PAI events that followed it, and the network
    after PAI's decision.
    """
    generator = torch.Generator().manual_seed(seed)
    best = Best(copy.deepcopy(net), -1, {"val/spearman": -math.inf})
    architectures: dict[int, Best] = {}
    first_epoch = 0
    if resume_state is not None:
        net, best, first_epoch = resume_state["net"], resume_state["best"], resume_state["epoch"] + 1
        architectures = resume_state.get("architectures", {})
        generator.set_state(resume_state["generator"])
        if backbone is not None:
            backbone.load_state_dict(resume_state["backbone"])
        restore_global_rng(resume_state["global_rng"])
    optimizer = growth.make_optimizer(net)
    if resume_state is not None:
        optimizer.load_state_dict(resume_state["optimizer"])
        if resume_state["complete"]:
            return FitResult(best, first_epoch, architectures)

    epoch = first_epoch - 1
    for epoch in range(first_epoch, int(train_cfg.max_epochs)):
        started = time.perf_counter()
        lr = optimizer.param_groups[0]["lr"]  # the adapter's, as PAI's optimizer setup left it
        loss, train_spearman = train_one_epoch(net, optimizer, train, int(train_cfg.batch_size), generator,
                                               stop_requested)
        if not math.isfinite(loss):
            raise TrainingDiverged(f"train/loss is {loss} at epoch {epoch}")
        spearman, pearson = correlations(cosine_predictions(net, val), val.scores.cpu().numpy())
        record = {"epoch": epoch, "train/loss": loss, "train/spearman": train_spearman, "train/lr": lr,
                  "val/spearman": spearman, "val/pearson": pearson, **growth.metrics(net)}
        best = keep_bests(net, epoch, record, best, architectures, backbone)
        decision = growth.after_epoch(spearman, net, optimizer, last=epoch == int(train_cfg.max_epochs) - 1)
        record["time/epoch_s"] = time.perf_counter() - started
        net, optimizer = decision.net, decision.optimizer
        events = ([decision.event] if decision.event else []) + (["training_complete"] if decision.complete else [])
        on_epoch(record, events, net)
        # One object for everything PAI links together (its tracker points into the network).
        save_state({"epoch": epoch, "net": net, "optimizer": optimizer.state_dict(), "best": best,
                    "generator": generator.get_state(), "global_rng": global_rng(), "complete": decision.complete,
                    "growth": growth.checkpoint_state(), "architectures": architectures,
                    "backbone": None if backbone is None else backbone.state_dict()})
        hold_for_tests(epoch)
        if decision.complete:
            break
    return FitResult(best, epoch + 1, architectures)
