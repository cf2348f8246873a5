"""Growth policies: what, if anything, restructures the adapter between epochs.

The epoch loop (`nexus.train.fit`) and the run (`nexus.run`) see one interface, `Growth`, with two
implementations:

- `NoGrowth` (`pai=disabled`, the baseline): a plain optimizer; the network never changes.
- `PAIGrowth` (`nexus.growth.pai`, every other `pai=` mode): Perforated AI's tracker decides after
  each epoch whether to add dendrites, reload its best model, or stop.

`make_growth` picks one from the config. perforatedai is imported only when a PAI mode is chosen,
so a baseline run never touches it.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

import torch
from torch import nn

MODES = ("disabled", "history", "fixed", "every_epoch", "no_switch")  # `pai.mode`: disabled, or PAI's switch mode
OPTIMIZERS = {"adamw": torch.optim.AdamW, "adam": torch.optim.Adam, "sgd": torch.optim.SGD}


@dataclass
class Decision:
    """What the growth policy did after an epoch: the network and optimizer to continue with."""

    net: nn.Module
    optimizer: torch.optim.Optimizer
    event: str | None  # "dendrites_added" | "reloaded_best" | None
    complete: bool  # training is done (PAI says so); the epoch cap ends a run regardless


class Growth(Protocol):
    """The calls a run makes, in order: `prepare` (a fresh run) or `restore` (a resumed one);
    `make_optimizer`; per epoch `metrics`, `after_epoch`, `checkpoint_state`; at the end `finish`."""

    def prepare(self, net: nn.Module) -> nn.Module:
        """A fresh run's network, made ready to grow (perforated by PAI, or as it is)."""

    def restore(self, state) -> None:
        """Continue from `checkpoint_state()` of a killed run (its network is restored by the caller)."""

    def make_optimizer(self, net: nn.Module) -> torch.optim.Optimizer:
        """The optimizer for `net`'s parameters (and the trainable backbone's, if any)."""

    def metrics(self, net: nn.Module) -> dict:
        """The epoch's growth metrics for metrics.jsonl: `pai/mode`, `pai/dendrites`, `pai/params`."""

    def after_epoch(self, score: float, net: nn.Module, optimizer, last: bool = False) -> Decision:
        """Given the epoch's dev Spearman: grow, reload, stop, or carry on. `last`: the epoch cap's epoch."""

    def checkpoint_state(self):
        """What `restore` needs to continue this policy, pickled into the run's checkpoint."""

    def finish(self, net: nn.Module) -> nn.Module:
        """The network to test and save, given the best-dev one."""


def count_params(net: nn.Module) -> int:
    return sum(p.numel() for p in net.parameters())


def optimizer_args(net: nn.Module, train_cfg, extra_groups: list[dict]) -> dict:
    """The adapter's parameters at train.lr, plus any others (a training backbone) at their own lr.

    fused: one kernel per optimizer step instead of several per parameter: a small adapter's step
    is mostly per-kernel overhead, not arithmetic."""
    return {"params": [{"params": list(net.parameters())}, *extra_groups], "lr": train_cfg.lr,
            "weight_decay": train_cfg.weight_decay, "fused": True}


class NoGrowth:
    """Baseline: a plain optimizer, never restructures. Its decision is early stopping: training is
    complete after `train.patience` epochs without a better dev Spearman (null: the epoch cap ends
    the run). PAI runs keep PAI's own decision."""

    mode = "disabled"

    def __init__(self, train_cfg, extra_groups: list[dict]):
        self.train_cfg = train_cfg
        self.extra_groups = extra_groups
        self.patience = train_cfg.patience
        self.best, self.epochs_since_best = -math.inf, 0

    def prepare(self, net: nn.Module) -> nn.Module:
        return net

    def restore(self, state) -> None:
        if state is not None:  # None: a checkpoint from before early stopping
            self.best, self.epochs_since_best = state["best"], state["epochs_since_best"]

    def make_optimizer(self, net: nn.Module) -> torch.optim.Optimizer:
        return OPTIMIZERS[self.train_cfg.optimizer](**optimizer_args(net, self.train_cfg, self.extra_groups))

    def metrics(self, net: nn.Module) -> dict:
        return {"pai/mode": self.mode, "pai/dendrites": 0, "pai/params": count_params(net)}

    def after_epoch(self, score: float, net: nn.Module, optimizer, last: bool = False) -> Decision:
        if score > self.best:
            self.best, self.epochs_since_best = score, 0
        else:
            self.epochs_since_best += 1
        return Decision(net, optimizer, None, self.patience is not None and self.epochs_since_best >= self.patience)

    def checkpoint_state(self) -> dict:
        return {"best": self.best, "epochs_since_best": self.epochs_since_best}

    def finish(self, net: nn.Module) -> nn.Module:
        return net


def make_growth(pai_cfg, train_cfg, run_dir: Path, device: str, extra_groups: list[dict] = ()) -> Growth:
    """The policy for `pai_cfg.mode`. `extra_groups`: optimizer parameter groups beyond the adapter
    (a backbone that trains)."""
    if pai_cfg.mode == "disabled":
        return NoGrowth(train_cfg, list(extra_groups))
    from nexus.growth.pai import PAIGrowth  # imports nexus.growth: loaded after this module, not with it

    return PAIGrowth(pai_cfg, train_cfg, run_dir, device, list(extra_groups))
