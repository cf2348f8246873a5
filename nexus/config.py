"""Config checks that run before any work starts: each mistake becomes one `UserError` line."""

from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path

from omegaconf import DictConfig, OmegaConf

from nexus.adapter import ACTIVATIONS, INITS, KINDS
from nexus.errors import UserError
from nexus.growth import MODES, OPTIMIZERS
from nexus.growth.pai import FORWARD_FUNCTIONS

# Config groups nested in another group's folder (conf/model/adapter/). Hydra selects them only as
# model/adapter=mlp; our command lines spell them like every other key, model.adapter=mlp.
NESTED_GROUPS = ("model.adapter",)

# Keys that say where or how a run is recorded, not what it computes.
NOT_CONFIGURATION = ("seed", "paths", "logger", "hydra", "resume")


def configuration(config: dict) -> dict:
    """The configuration a run belongs to: everything but the seed and bookkeeping."""
    return {k: v for k, v in config.items() if k not in NOT_CONFIGURATION}


def configuration_id(config: dict) -> str:
    return hashlib.sha1(json.dumps(configuration(config), sort_keys=True).encode()).hexdigest()[:8]


def flatten(nested: dict, prefix: str = "") -> dict:
    """{"train": {"lr": 1e-4}} -> {"train.lr": 1e-4}. Lists stay values (they are config leaves)."""
    flat: dict = {}
    for key, value in nested.items():
        path = f"{prefix}{key}"
        if isinstance(value, dict) and value:
            flat.update(flatten(value, f"{path}."))
        else:
            flat[path] = value
    return flat


def hydra_spelling(overrides: list[str]) -> list[str]:
    """`model.adapter=mlp` (also with sweeps: `model.adapter=dense,mlp`) as Hydra's `model/adapter=mlp`."""
    def one(arg: str) -> str:
        key, equals, value = arg.partition("=")
        return f"{key.replace('.', '/')}={value}" if equals and key in NESTED_GROUPS else arg

    return [one(arg) for arg in overrides]


def group_choices(choices: dict) -> dict:
    """The option picked in each of our config groups ({"pai": "history", "experiment": "smoke"}),
    from Hydra's runtime choices, without Hydra's own groups (hydra/launcher, ...)."""
    return {group: option for group, option in choices.items()
            if option is not None and "/" not in group and group != "hydra"}


def _number(cfg, key: str, kind, minimum, strict: bool = False):
    value = OmegaConf.select(cfg, key)
    if isinstance(value, bool) or not isinstance(value, (int, float)) or (kind is int and not isinstance(value, int)):
        raise UserError(f"{key}={value!r}: expected {'an integer' if kind is int else 'a number'}")
    if value < minimum or (strict and value == minimum):
        raise UserError(f"{key}={value}: must be {'>' if strict else '>='} {minimum}")


def _choice(cfg, key: str, options) -> None:
    value = OmegaConf.select(cfg, key)
    if value not in options:
        raise UserError(f"{key}={value!r}: choose one of {', '.join(map(str, options))}")


def check(cfg: DictConfig) -> None:
    """Values a composed config must have; raises UserError naming the first bad key."""
    job_keys = OmegaConf.masked_copy(cfg, [k for k in cfg if k != "hydra"])  # hydra's own ??? are Hydra's
    missing = sorted(OmegaConf.missing_keys(job_keys))
    if missing:
        raise UserError(f"{missing[0]} is required (no value given)")
    _number(cfg, "train.lr", float, 0, strict=True)
    _number(cfg, "train.batch_size", int, 1)
    _number(cfg, "train.max_epochs", int, 1)
    _number(cfg, "train.weight_decay", float, 0)
    if cfg.train.patience is not None:
        _number(cfg, "train.patience", int, 1)
    _number(cfg, "seed", int, 0)
    _choice(cfg, "resume", ("auto", True, False))
    _choice(cfg, "train.optimizer", OPTIMIZERS)
    _choice(cfg, "train.device", ("auto", "cpu", "cuda"))
    _choice(cfg, "model.encode_device", ("auto", "cpu", "cuda"))
    _choice(cfg, "train.precision", ("auto", "bf16", "fp32"))
    _number(cfg, "train.backbone_lr", float, 0, strict=True)
    _choice(cfg, "pai.mode", MODES)
    _choice(cfg, "pai.forward_function", FORWARD_FUNCTIONS)
    for key in ("n_epochs_to_switch", "fixed_switch_num", "first_fixed_switch_num", "max_dendrites",
                "max_dendrite_tries", "history_lookback"):
        _number(cfg, f"pai.{key}", int, 0)
    check_adapter(cfg)
    _number(cfg, "model.max_seq_length", int, 1)
    _choice(cfg, "logger.backend", ("wandb", "none"))
    if cfg.logger.backend == "wandb":
        _choice(cfg, "logger.mode", ("auto", "offline", "online", "disabled"))
        _number(cfg, "logger.init_timeout", float, 0, strict=True)
    for split in ("train", "val", "test"):
        limit = cfg.data.limit[split]
        if limit is not None:
            _number(cfg, f"data.limit.{split}", int, 1)


def check_adapter(cfg: DictConfig) -> None:
    _choice(cfg, "model.adapter.kind", KINDS)
    _choice(cfg, "model.adapter.activation", ACTIVATIONS)
    if cfg.model.adapter.kind == "dense":
        _choice(cfg, "model.adapter.init", INITS)
        _number(cfg, "model.adapter.out_features", int, 1)
        return
    _number(cfg, "model.adapter.hidden", int, 1)
    _number(cfg, "model.adapter.depth", int, 2)
    if cfg.model.adapter.match_params is not None:
        _number(cfg, "model.adapter.match_params", int, 1)
    if cfg.pai.mode != "disabled":
        # PAI grows dendrites on the Dense adapter; the MLP is the plain comparison for them.
        raise UserError(f"model.adapter=mlp is a plain adapter: use it with pai=disabled, not pai={cfg.pai.mode}")


def check_writable(folder: str, key: str) -> None:
    """The nearest existing parent of `folder` must be a writable directory."""
    path = Path(folder).expanduser().absolute()
    while not path.exists():
        path = path.parent
    if not path.is_dir() or not os.access(path, os.W_OK):
        raise UserError(f"{key}: cannot write to {path}")
