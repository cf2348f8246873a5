"""Compose and check every job of a command line before Hydra starts any of them."""

from __future__ import annotations

from pathlib import Path

from hydra import compose
from hydra.errors import ConfigCompositionException, MissingConfigException, OverrideParseException

from nexus.adapter import mlp_hidden
from nexus.agent import check_agent_parameters
from nexus.backbone import embedding_dimension, resolve_backbone
from nexus.compose import MULTIRUN_FLAGS, hydra_context
from nexus.config import NESTED_GROUPS, check, check_writable, hydra_spelling
from nexus.data import load_splits
from nexus.errors import UserError, one_line
from nexus.run_folder import CHECKPOINT_FILE


def job_overrides(overrides: list[str], multirun: bool) -> list[list[str]]:
    """The override list of each job Hydra would launch (sweeps like seed=0,1,2 expanded)."""
    if not multirun:
        return [overrides]
    # Hydra's own expansion, so we check exactly the jobs its basic sweeper would run.
    from hydra._internal.core_plugins.basic_sweeper import BasicSweeper
    from hydra.core.override_parser.overrides_parser import OverridesParser

    parsed = OverridesParser.create().parse_overrides(overrides)
    return [job for batch in BasicSweeper.split_arguments(parsed, None) for job in batch]


def describe_composition_error(err: Exception) -> str:
    if isinstance(err, MissingConfigException) and err.options:
        group, _, option = (err.missing_cfg_file or "").rpartition("/")  # model/adapter/conv: nested group
        if group.replace("/", ".") in NESTED_GROUPS:
            group = group.replace("/", ".")  # as our command lines spell it
        # options starting with "_" are shared bases (pai/_knobs, data/_layout), not choices
        choices = ", ".join(sorted(o for o in err.options if not o.startswith("_")))
        return f"unknown option '{option}' for '{group}'; choose one of {choices}"
    cause = err.__cause__
    key = getattr(cause, "full_key", None)
    if key:
        return f"unknown config key '{key}'"
    return one_line(err)


def preflight(argv: list[str]) -> str | None:
    """Raise UserError for the first job whose config, data, model or output folder is bad.

    Returns the output folder (run dir, or sweep dir with -m) the jobs will write to, or None
    when the command line is Hydra's own business (--help, --cfg, -cn ...)."""
    if any(a.startswith("-") and a not in MULTIRUN_FLAGS for a in argv):
        return None
    multirun = any(a in MULTIRUN_FLAGS for a in argv)
    overrides = hydra_spelling([a for a in argv if a not in MULTIRUN_FLAGS])
    try:
        with hydra_context():
            jobs = job_overrides(overrides, multirun)
            checked_data, models = set(), {}
            for job in jobs:
                cfg = compose(config_name="config", overrides=job, return_hydra_config=True)
                check(cfg)
                check_agent_parameters(cfg, cfg.hydra.runtime.choices)
                run_dir = cfg.hydra.sweep.dir if multirun else cfg.hydra.run.dir
                check_writable(run_dir, "hydra.sweep.dir" if multirun else "hydra.run.dir")
                check_writable(cfg.paths.cache_dir, "paths.cache_dir")
                if cfg.resume is True and not multirun and not (Path(run_dir) / CHECKPOINT_FILE).is_file():
                    raise UserError(f"resume=true: no checkpoint in {run_dir}")
                model_key = (cfg.model.name_or_path, cfg.model.allow_download)
                if model_key not in models:
                    models[model_key] = resolve_backbone(*model_key)
                if cfg.model.adapter.kind == "mlp" and cfg.model.adapter.match_params is not None:
                    mlp_hidden(embedding_dimension(models[model_key]), cfg.model.adapter)  # a width within 1%?
                data_key = repr(cfg.data)
                if data_key not in checked_data:
                    load_splits(cfg.data)
                    checked_data.add(data_key)
            return str(run_dir)
    except (ConfigCompositionException, MissingConfigException, OverrideParseException) as err:
        raise UserError(describe_composition_error(err)) from None
