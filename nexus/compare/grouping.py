"""Runs grouped into configurations (everything but the seed), the groups named, and each dendritic
configuration matched with its baseline."""

from __future__ import annotations

import json
from collections import Counter
from dataclasses import dataclass
from typing import Any, Iterable, Sequence

import numpy as np

from nexus.compare.runs import COMPLETED, RunResult
from nexus.config import NOT_CONFIGURATION
from nexus.errors import UserError

BASELINE_MODE = "disabled"

# When looking for a dendritic group's baseline, these may differ: the PAI knobs (irrelevant with
# pai.mode=disabled), the experiment bundle's name, and the epoch cap (dendritic runs get more epochs
# to grow dendrites; the comparison is between the best-dev checkpoints either way).
BASELINE_IGNORED_KEYS = {"experiment", "train.max_epochs"}
BASELINE_IGNORED_PREFIXES = ("pai.",)

# A parameter-matched baseline (--param-matched) is a plain adapter of another size: its adapter keys
# differ too, and its trainable parameters are within this fraction of the dendritic runs'.
MATCH_IGNORED_PREFIXES = ("pai.", "model.adapter.")
MATCH_TOLERANCE = 0.01

# Keys set by experiment bundles; left out of group names when the other keys already tell groups apart.
NAME_DROPPABLE_KEYS = ("experiment", "train.max_epochs")
# Of an adapter's keys, kept in names longest: what tells one plain adapter from another.
NAME_KEPT_KEYS = ("model.adapter.match_params", "model.adapter.kind")


@dataclass
class Group:
    """Runs that share a configuration except for the seed."""

    config: dict[str, Any]  # the grouping config (flattened, seed/paths/logger/hydra removed)
    runs: list[RunResult]  # completed runs, sorted by seed
    name: str = ""

    @property
    def pai_mode(self) -> str:
        return str(self.config.get("pai.mode"))

    def runs_by_seed(self) -> dict[int, RunResult]:
        return {run.seed: run for run in self.runs}


def canonical_json(value: Any) -> str:
    """One text per value (keys sorted), so equal configs and values compare and hash equal."""
    return json.dumps(value, sort_keys=True, default=str)


def grouping_config(config: dict[str, Any]) -> dict[str, Any]:
    """The flattened config without what nexus.config.configuration leaves out (seed, paths, ...)."""
    return {key: value for key, value in config.items() if key.split(".")[0] not in NOT_CONFIGURATION}


def group_runs(runs: Iterable[RunResult]) -> list[Group]:
    """Completed runs grouped by grouping_config; groups are named and sorted baseline first."""
    by_key: dict[str, Group] = {}
    for run in runs:
        if run.status != COMPLETED:
            continue
        config = grouping_config(run.config)
        by_key.setdefault(canonical_json(config), Group(config=config, runs=[])).runs.append(run)
    groups = list(by_key.values())
    for group in groups:
        group.runs.sort(key=lambda run: (run.seed is None, run.seed or 0, run.source))
        seeds = Counter(run.seed for run in group.runs)
        duplicated = [seed for seed, count in seeds.items() if count > 1]
        if duplicated:
            sources = [run.source for run in group.runs if run.seed == duplicated[0]]
            raise UserError(
                f"two finished runs of one configuration share seed {duplicated[0]}: "
                f"{sources[0]} and {sources[1]}; pass only one of them"
            )
    name_groups(groups)
    groups.sort(key=lambda g: (g.pai_mode != BASELINE_MODE, g.name))
    return groups


def config_value_text(value: Any) -> str:
    """A config value exactly, as JSON writes it (1e-4 -> 0.0001, True -> true); strings bare."""
    if isinstance(value, str):
        return value
    return json.dumps(value)


def differing_keys(groups: Sequence[Group]) -> list[str]:
    """Config keys whose value is not the same in every group (a key missing somewhere differs)."""
    keys = sorted({key for group in groups for key in group.config})
    return [
        key
        for key in keys
        if len({canonical_json(group.config.get(key, "<missing>")) for group in groups}) > 1
    ]


def _label(key: str) -> str:
    return "pai" if key == "pai.mode" else key


def _names(groups: Sequence[Group], keys: Sequence[str]) -> list[str]:
    """Each group's `key=value` for `keys`; a key the group lacks (another adapter's) is left out."""
    return [
        " ".join(f"{_label(key)}={config_value_text(group.config[key])}" for key in keys if key in group.config)
        for group in groups
    ]


def name_groups(groups: Sequence[Group]) -> None:
    """Name each group by pai mode plus the keys that differ between groups, e.g. 'pai=history train.lr=0.0001'.

    Keys that experiment bundles set alongside the mode (experiment, train.max_epochs), then the
    adapter's shape keys, are left out while the remaining keys still tell every group apart; the
    report lists all differing keys anyway.
    """
    keys = ["pai.mode"] + [key for key in differing_keys(groups) if key != "pai.mode"]
    # The bundles' keys, then an adapter's shape keys (its size and kind say enough), while the rest
    # still tell groups apart.
    adapter = [k for k in keys if k.startswith("model.adapter.")]
    for droppable in [*NAME_DROPPABLE_KEYS, *(k for k in adapter if k not in NAME_KEPT_KEYS),
                      *(k for k in adapter if k in NAME_KEPT_KEYS)]:
        fewer = [key for key in keys if key != droppable]
        if len(set(_names(groups, fewer))) == len(groups):
            keys = fewer
    for group, name in zip(groups, _names(groups, keys)):
        group.name = name


def _baseline_matching_config(config: dict[str, Any], ignored_prefixes=BASELINE_IGNORED_PREFIXES) -> str:
    kept = {
        key: value
        for key, value in config.items()
        if key not in BASELINE_IGNORED_KEYS and not key.startswith(ignored_prefixes)
    }
    return canonical_json(kept)


def trained_params(group: Group) -> float:
    """The group's trainable parameters at its runs' best epochs (median over seeds: dendrites kept
    may differ by seed)."""
    return float(np.median([run.number("pai/params") for run in group.runs]))


def assign_param_matched(groups: Sequence[Group]) -> list[tuple[Group, Group | None]]:
    """(dendritic group, the plain adapter matching its parameters, or None) for every dendritic group:
    a pai.mode=disabled group of the same recipe apart from pai.* and model.adapter.* (and
    experiment, train.max_epochs), whose trained parameters are within MATCH_TOLERANCE; the nearest."""
    plain = [g for g in groups if g.pai_mode == BASELINE_MODE]
    pairs = []
    for group in groups:
        if group.pai_mode == BASELINE_MODE:
            continue
        recipe, target = _baseline_matching_config(group.config, MATCH_IGNORED_PREFIXES), trained_params(group)
        fits = [g for g in plain if _baseline_matching_config(g.config, MATCH_IGNORED_PREFIXES) == recipe
                and abs(trained_params(g) - target) <= MATCH_TOLERANCE * target]
        pairs.append((group, min(fits, key=lambda g: abs(trained_params(g) - target)) if fits else None))
    return pairs


def select_group_by_name(groups: Sequence[Group], wanted: str) -> Group:
    """An exact group name, else the one group whose name contains `wanted`."""
    exact = [g for g in groups if g.name == wanted]
    matches = exact or [g for g in groups if wanted in g.name]
    names = "; ".join(g.name for g in groups)
    if not matches:
        raise UserError(f"--baseline {wanted!r} matches no configuration (have: {names})")
    if len(matches) > 1:
        found = "; ".join(g.name for g in matches)
        raise UserError(f"--baseline {wanted!r} is ambiguous, it matches: {found}")
    return matches[0]


def assign_baselines(groups: Sequence[Group], baseline_name: str | None = None) -> list[tuple[Group, Group]]:
    """(group, its baseline) for every group that is compared.

    With --baseline every other group is compared with the named one. Otherwise each group whose
    pai.mode is not 'disabled' is compared with the 'disabled' group whose config is equal apart from
    pai.*, experiment and train.max_epochs; none or several such groups is an error.
    """
    if baseline_name is not None:
        baseline = select_group_by_name(groups, baseline_name)
        return [(group, baseline) for group in groups if group is not baseline]
    baselines = [g for g in groups if g.pai_mode == BASELINE_MODE]
    pairs = []
    for group in groups:
        if group.pai_mode == BASELINE_MODE:
            continue
        wanted = _baseline_matching_config(group.config)
        matches = [b for b in baselines if _baseline_matching_config(b.config) == wanted]
        if not matches:
            raise UserError(
                f"no baseline for {group.name!r}: no pai.mode=disabled runs with the same config "
                "(apart from pai.*, experiment, train.max_epochs); add baseline runs or pass --baseline NAME"
            )
        if len(matches) > 1:
            found = "; ".join(b.name for b in matches)
            raise UserError(f"several baselines fit {group.name!r} ({found}); pass --baseline NAME")
        pairs.append((group, matches[0]))
    return pairs
