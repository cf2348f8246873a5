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
        wandb_mode(cfg.logger)
        _number(cfg, "logger.init_timeout", float, 0, strict=True)
    for split in ("train", "val", "test"):
        limit = cfg.data.limit[split]
        if limit is not None:
            _number(cfg, f"data.limit.{split}", int, 1)


# logger.mode's values, and W&B's own names that mean one of them (wandb.Settings.mode, wandb 0.31:
# "dryrun" is its old name for offline, "run" for online).
WANDB_MODES = {"auto": "auto", "online": "online", "offline": "offline", "disabled": "disabled",
               "dryrun": "offline", "run": "online"}
# The values W&B's boolean variables accept, in any case (wandb.env.strtobool).
TRUE_WORDS, FALSE_WORDS = ("y", "yes", "t", "true", "on", "1"), ("n", "no", "f", "false", "off", "0")


def wandb_mode(logger: DictConfig) -> tuple[str, str]:
    """The W&B mode a run asks for (auto, online, offline or disabled) and the setting that decided it.

    logger.mode set in a config file or on the command line decides. Left at its default
    (`${oc.env:WANDB_MODE,auto}`), the environment decides as it does for W&B: WANDB_DISABLED=true
    means no W&B run (wandb 0.31 itself no longer reads it; older wandb and Hugging Face's trainer
    do), then WANDB_MODE, then `auto`."""
    from_environment = OmegaConf.is_interpolation(logger, "mode")
    if from_environment:
        disabled = os.environ.get("WANDB_DISABLED", "")
        if disabled.lower() in TRUE_WORDS:
            return "disabled", f"WANDB_DISABLED={disabled}"
        if disabled.lower() not in ("", *FALSE_WORDS):
            raise UserError(f"WANDB_DISABLED={disabled!r}: expected true or false, as W&B reads them: "
                            "true/false, yes/no, y/n, t/f, on/off, 1/0")
    setting = "WANDB_MODE" if from_environment and "WANDB_MODE" in os.environ else "logger.mode"
    if logger.mode not in WANDB_MODES:
        raise UserError(f"{setting}={logger.mode!r}: choose one of auto, online, offline, disabled "
                        "(W&B's dryrun means offline)")
    return WANDB_MODES[logger.mode], f"{setting}={logger.mode}"


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
