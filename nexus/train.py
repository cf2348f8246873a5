"""The epoch loop on encoded pairs: train, score on dev, let the growth policy decide, keep the best."""

from __future__ import annotations

import copy
import math
import time
from dataclasses import dataclass
from typing import Callable

import torch
from torch import nn

from nexus.evaluate import EncodedPairs, correlations, cosine_predictions


class TrainingDiverged(RuntimeError):
    """The loss became NaN or infinite: the run is failed, not finished."""


@dataclass
class FitResult:
    best_net: nn.Module
    best_epoch: int
    best_record: dict
    epochs_run: int


def train_one_epoch(net, optimizer, train: EncodedPairs, batch_size: int, generator: torch.Generator) -> float:
    """Cosine-similarity MSE (sentence-transformers' CosineSimilarityLoss) over shuffled batches."""
    net.train()
    order = torch.randperm(len(train), generator=generator).to(train.scores.device)
    total, seen = 0.0, 0
    for start in range(0, len(train), batch_size):
        batch = order[start:start + batch_size]
        similarity = torch.cosine_similarity(net(train.emb1[batch]), net(train.emb2[batch]))
        loss = nn.functional.mse_loss(similarity, train.scores[batch])
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
        total += loss.item() * len(batch)
        seen += len(batch)
    net.eval()
    return total / seen


def fit(net, growth, train: EncodedPairs, val: EncodedPairs, train_cfg, seed: int,
        on_epoch: Callable[[dict, list[str], nn.Module], None]) -> FitResult:
    """Run epochs until max_epochs or until PAI says training is complete.

    `on_epoch(record, events, net)` receives each epoch's metrics (named as in the design),
    the PAI events that followed it, and the network after PAI's decision.
    """
    generator = torch.Generator().manual_seed(seed)
    optimizer = growth.make_optimizer(net)
    best = FitResult(copy.deepcopy(net), -1, {"val/spearman": -math.inf}, 0)
    for epoch in range(int(train_cfg.max_epochs)):
        started = time.perf_counter()
        loss = train_one_epoch(net, optimizer, train, int(train_cfg.batch_size), generator)
        if not math.isfinite(loss):
            raise TrainingDiverged(f"train/loss is {loss} at epoch {epoch}")
        spearman, pearson = correlations(cosine_predictions(net, val), val.scores.cpu().numpy())
        record = {"epoch": epoch, "train/loss": loss, "val/spearman": spearman, "val/pearson": pearson,
                  **growth.state(net)}
        if spearman > best.best_record["val/spearman"]:
            # Copy before PAI's decision: the decision may restructure this very object.
            best = FitResult(copy.deepcopy(net), epoch, record, 0)
        decision = growth.after_epoch(spearman, net, optimizer)
        record["time/epoch_s"] = time.perf_counter() - started
        net, optimizer = decision.net, decision.optimizer
        events = ([decision.event] if decision.event else []) + (["training_complete"] if decision.complete else [])
        on_epoch(record, events, net)
        best.epochs_run = epoch + 1
        if decision.complete:
            break
    return best
