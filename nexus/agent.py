"""Runs started by `wandb agent`: the agent's parameter file must agree with the config Hydra composed.

For each run the agent writes the sweep's parameters to a YAML file (`{key: {value: v}}`, named by
WANDB_SWEEP_PARAM_PATH) and runs the sweep file's command. `wandb.init` reads that file and writes
its values over the run's own in W&B's config ("locked by 'sweep'"), so a run whose command line
says something else would train one configuration and be recorded as another; a file W&B cannot
read makes `wandb.init` fail, and the sweep would never see the run. Both are refused before any
work, whatever logger.backend says: the file is the sweep's record of what this run is.
"""

from __future__ import annotations

import os
from pathlib import Path

import yaml
from omegaconf import OmegaConf

from nexus.config import NESTED_GROUPS
from nexus.errors import UserError, one_line

_ABSENT = object()


def sweep_id() -> str | None:
    """The sweep this process is a run of, when `wandb agent` started it."""
    return os.environ.get("WANDB_SWEEP_ID") or None


def swept_parameters() -> tuple[Path, dict]:
    """The agent's parameter file and its {key: value}, read as `wandb.init` reads it (YAML 1.1,
    `wandb_version` skipped, each value under `value:`)."""
    name = os.environ.get("WANDB_SWEEP_PARAM_PATH")
    if not name:
        raise UserError(f"WANDB_SWEEP_ID={sweep_id()} (a run of `wandb agent`) but WANDB_SWEEP_PARAM_PATH is "
                        "not set: W&B cannot tell which sweep parameters this run has")
    path = Path(name)
    try:
        loaded = yaml.safe_load(path.read_text())
    except OSError as err:
        raise UserError(f"wandb agent's parameter file {path}: cannot read it ({err.strerror})") from None
    except yaml.YAMLError as err:
        raise UserError(f"wandb agent's parameter file {path} is not YAML: {one_line(err)}") from None
    if not isinstance(loaded, dict):
        raise UserError(f"wandb agent's parameter file {path}: expected a mapping of parameters, got {loaded!r}")
    loaded.pop("wandb_version", None)
    for key, entry in loaded.items():
        if not isinstance(entry, dict) or "value" not in entry:
            raise UserError(f"wandb agent's parameter file {path}: parameter {key}: expected {{value: ...}}, "
                            f"got {entry!r}")
    return path, {key: entry["value"] for key, entry in loaded.items()}


def same_value(swept, resolved) -> bool:
    """Whether W&B, recording `swept`, records what the run used (`resolved`). Numbers compare as
    numbers (1 and 1.0 agree); a bool only equals a bool and a string only a string, so '1e-4'
    (YAML 1.1 reads 1e-4 as a string) differs from 0.0001."""
    if isinstance(swept, bool) or isinstance(resolved, bool):
        return swept is resolved
    if isinstance(swept, (int, float)) and isinstance(resolved, (int, float)):
        return swept == resolved
    if isinstance(swept, list) and isinstance(resolved, list):
        return len(swept) == len(resolved) and all(map(same_value, swept, resolved))
    if isinstance(swept, dict) and isinstance(resolved, dict):
        return swept.keys() == resolved.keys() and all(same_value(v, resolved[k]) for k, v in swept.items())
    return type(swept) is type(resolved) and swept == resolved


def resolved_value(cfg, choices: dict, key: str):
    """What the run uses for a sweep key: a config group's chosen option (`pai: history`,
    `model.adapter: mlp`), else the config's value at the dotted key; _ABSENT when neither."""
    group = key.replace(".", "/") if key in NESTED_GROUPS else key
    if group in choices:
        return choices[group]
    value = OmegaConf.select(cfg, key, default=_ABSENT)
    return OmegaConf.to_container(value, resolve=True) if OmegaConf.is_config(value) else value


def check_agent_parameters(cfg, choices: dict) -> None:
    """Under `wandb agent`: raise UserError unless every swept parameter holds, in the composed
    config, the value the agent's file gives it. Nothing to check for other runs."""
    if not sweep_id():
        return
    path, parameters = swept_parameters()
    for key, swept in parameters.items():
        resolved = resolved_value(cfg, choices, key)
        if resolved is _ABSENT:
            raise UserError(f"sweep parameter {key}={swept!r} is not a key of this run's config "
                            f"(wandb agent's parameter file {path})")
        if not same_value(swept, resolved):
            raise UserError(f"sweep parameter {key}: the agent gives {swept!r}, this run's config has {resolved!r}, "
                            f"and W&B would record the agent's value ({mismatch_hint(swept, resolved)}; "
                            f"wandb agent's parameter file {path})")


def mismatch_hint(swept, resolved) -> str:
    """The likely cause of a swept value the run does not have, and its fix."""
    if isinstance(swept, str) and isinstance(resolved, (int, float)) and not isinstance(resolved, bool):
        return "YAML 1.1 reads a number like 1e-4 as a string: write 1.0e-4 in the sweep file"
    if swept is None and resolved == "None":
        return "the agent writes null as None on the command line, a string to Hydra: sweep another value"
    return "the sweep's command must pass every parameter, as ${args_no_hyphens} does"
