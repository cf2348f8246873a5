"""A sweep's runs as its state file (sweep.json) records them."""

from __future__ import annotations

import json
from dataclasses import dataclass, field

STATE_FILE = "sweep.json"
DONE_STATUSES = ("completed", "failed")  # summary.json statuses that make a run done
# Run states that older state files wrote under another name.
OLD_STATE_NAMES = {"finished": "completed"}


@dataclass
class SweepRun:
    """One parameter set of the sweep and the run of it (the last attempt)."""

    name: str
    params: dict  # {"key": {"value": v}}: the config of the engine's SweepRun
    attempt: int = 1
    state: str = "pending"  # pending | running | completed | failed | interrupted
    pid: int | None = None
    pid_start: int | None = None  # the process's start time: with pid, what identifies it
    exit_code: int | None = None
    reason: str | None = None
    summary: dict = field(default_factory=dict)  # summary.json without the config
    command: list[str] = field(default_factory=list)
    gpu: str | None = None  # the CUDA_VISIBLE_DEVICES it was given (--gpus)

    def __post_init__(self):
        self.state = OLD_STATE_NAMES.get(self.state, self.state)

    @property
    def folder_name(self) -> str:
        return self.name if self.attempt == 1 else f"{self.name}-attempt{self.attempt}"

    def values(self) -> dict:
        return {key: p["value"] for key, p in self.params.items()}

    def describe(self) -> str:
        return " ".join(f"{key}={value}" for key, value in self.values().items())


def as_json(data):
    """What a JSON round trip makes of `data`, so a reloaded state compares equal."""
    return json.loads(json.dumps(data, default=str))
