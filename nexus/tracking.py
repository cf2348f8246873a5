"""Where a run's numbers go: local files always (metrics.jsonl, events.jsonl, summary.json), W&B when on.

One vocabulary everywhere (see README, "Metrics"). Local files are written first and W&B errors
are contained, so a W&B failure (disk, bad settings) never loses the local record.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

from omegaconf import OmegaConf

from nexus.config import configuration_id

SUMMARY_FILE = "summary.json"


def write_json_atomic(path: Path, data: dict) -> None:
    tmp = path.with_suffix(path.suffix + ".tmp")
    tmp.write_text(json.dumps(data, indent=2, default=float) + "\n")
    os.replace(tmp, path)


def describe(cfg) -> dict:
    """Names W&B and the summary use: run name, group (config minus seed), job type, tags."""
    job_type = "baseline" if cfg.pai.mode == "disabled" else "dendritic"
    label = f"{cfg.experiment}-{cfg.pai.mode}-lr{cfg.train.lr:g}"
    # The id covers every other setting too, so runs share a group only when only the seed differs.
    group = f"{label}-{configuration_id(OmegaConf.to_container(cfg, resolve=True))}"
    return {"run_name": f"{label}-s{cfg.seed}", "group": group,
            "job_type": job_type, "tags": [f"experiment:{cfg.experiment}", f"pai:{cfg.pai.mode}"]}


class LocalFiles:
    def __init__(self, run_dir: Path, resumed: dict | None):
        self.run_dir = run_dir
        # A resumed run restarts its logs from the checkpoint: epochs logged after it are redone.
        for name, rows in (("metrics.jsonl", "history"), ("events.jsonl", "events")):
            (run_dir / name).write_text("".join(json.dumps(r) + "\n" for r in (resumed or {}).get(rows, [])))

    def log_start(self, summary: dict) -> None:
        write_json_atomic(self.run_dir / SUMMARY_FILE, summary)

    def log_epoch(self, record: dict, events: list[dict]) -> None:
        self._append("metrics.jsonl", [record])
        self._append("events.jsonl", events)

    def log_end(self, summary: dict) -> None:
        write_json_atomic(self.run_dir / SUMMARY_FILE, summary)

    def _append(self, name: str, rows: list[dict]) -> None:
        with open(self.run_dir / name, "a") as f:
            for row in rows:
                f.write(json.dumps(row) + "\n")


class WandbRun:
    """One W&B run per job (offline unless the user says online), files inside the run folder."""

    def __init__(self, cfg, run_dir: Path, resumed: dict | None):
        import wandb

        self.wandb = wandb
        self.run_dir = run_dir
        self.log_model = bool(cfg.logger.log_model)
        self.events: list[dict] = list((resumed or {}).get("events", []))
        names = describe(cfg)
        resume_id = (resumed or {}).get("wandb_id")
        self.run = wandb.init(
            id=resume_id,
            resume="allow" if resume_id else None,
            project=cfg.logger.project,
            entity=cfg.logger.entity,
            name=cfg.logger.run_name or names["run_name"],
            group=cfg.logger.group or names["group"],
            job_type=cfg.logger.job_type or names["job_type"],
            tags=[*names["tags"], *cfg.logger.tags],
            config=OmegaConf.to_container(cfg, resolve=True),
            dir=str(run_dir),
            mode=cfg.logger.mode,
            reinit="finish_previous",
            settings=wandb.Settings(console="off", silent=True),
        )
        self.run.define_metric("epoch")
        for prefix in ("train/*", "val/*", "pai/*", "time/*", "zero_shot/*"):
            self.run.define_metric(prefix, step_metric="epoch")
        self.run.define_metric("val/spearman", step_metric="epoch", summary="max")

    def log_start(self, summary: dict) -> None:
        zero_shot = {k: v for k, v in summary.items() if k.startswith("zero_shot/")}
        self.run.log({"epoch": -1, **zero_shot})

    def log_epoch(self, record: dict, events: list[dict]) -> None:
        self.events.extend(events)
        marks = {"pai/restructure": "+".join(e["kind"] for e in events)} if events else {}
        self.run.log({**record, **marks})

    def log_end(self, summary: dict) -> None:
        wandb = self.wandb
        table = wandb.Table(columns=["epoch", "kind", "dendrites", "params"],
                            data=[[e["epoch"], e["kind"], e["dendrites"], e["params"]] for e in self.events])
        images = {name: wandb.Image(str(self.run_dir / file))
                  for name, file in (("training_results", "training_results.png"), ("pai/graph", "pai/pai.png"))
                  if (self.run_dir / file).is_file()}
        self.run.log({"pai/events": table, **images})
        if (self.run_dir / "predictions").is_dir():  # what nexus-compare --wandb reads back
            self.run.save(str(self.run_dir / "predictions" / "*.csv"), base_path=str(self.run_dir), policy="now")
        self.run.summary.update({k: v for k, v in summary.items() if k != "config"})
        if self.log_model and (self.run_dir / "model").is_dir():
            from nexus.model import card_metadata

            # The model card's facts; logged from this run, which W&B records as the artifact's lineage.
            artifact = wandb.Artifact(f"model-{self.run.id}", type="model",
                                      metadata={**card_metadata(summary, self.run_dir, self.run.id),
                                                "status": summary["status"]})
            # "immutable": no copy in W&B's staging folder (offline, one per run, kept until synced:
            # 90 MB a run) nor in its cache after an upload; the run folder keeps the files, unchanged.
            artifact.add_dir(str(self.run_dir / "model"), policy="immutable", skip_cache=True)
            self.run.log_artifact(artifact)
        self.run.finish(exit_code=0 if summary["status"] == "completed" else 1)


class RunLog:
    """Fans each record out to every sink; a failing W&B sink is dropped with a warning."""

    def __init__(self, cfg, run_dir: Path, resumed: dict | None = None):
        self.sinks: list = [LocalFiles(run_dir, resumed)]
        if cfg.logger.backend == "wandb":
            self._guard(lambda: self.sinks.append(WandbRun(cfg, run_dir, resumed)), "init")

    @property
    def wandb_id(self) -> str | None:
        return next((s.run.id for s in self.sinks if isinstance(s, WandbRun)), None)

    def _guard(self, call, what: str) -> None:
        try:
            call()
        except Exception as err:  # W&B must never cost the local record
            print(f"warning: W&B {what} failed, continuing with local files only: {err}", file=sys.stderr)
            self.sinks = [s for s in self.sinks if isinstance(s, LocalFiles)]

    def _each(self, method: str, *args) -> None:
        for sink in list(self.sinks):
            if isinstance(sink, LocalFiles):
                getattr(sink, method)(*args)
            else:
                self._guard(lambda: getattr(sink, method)(*args), method)

    def log_start(self, summary: dict) -> None:
        self._each("log_start", summary)

    def log_epoch(self, record: dict, events: list[dict]) -> None:
        self._each("log_epoch", record, events)

    def log_end(self, summary: dict) -> None:
        self._each("log_end", summary)


def read_offline_run(path: Path) -> list[dict]:
    """Records of an offline W&B run (its .wandb file or folder), read by wandb's own reader."""
    out = subprocess.run(["wandb", "leet", "inspect", "--json", str(path)],
                         capture_output=True, text=True, check=True)
    return [json.loads(line) for line in out.stdout.splitlines() if line.strip()]
