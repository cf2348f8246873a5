"""Where a run's numbers go: local files always (metrics.jsonl, events.jsonl, summary.json), W&B when on.

One vocabulary everywhere (docs/run-folder.md). Local files are written first and W&B errors
are contained, so a W&B failure (disk, bad settings, no server) never loses the local record.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import threading
import time
from pathlib import Path

from omegaconf import OmegaConf

from nexus.agent import sweep_id
from nexus.config import configuration_id, flatten, wandb_mode
from nexus.errors import one_line
from nexus.run_folder import (EVENTS_FILE, METRICS_FILE, PLOT_FILE, PREDICTIONS_DIR, RESULTS_FILE, SUMMARY_FILE,
                              append_jsonl, write_json_atomic, write_jsonl)


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
        write_jsonl(run_dir / METRICS_FILE, (resumed or {}).get("history", []))
        write_jsonl(run_dir / EVENTS_FILE, (resumed or {}).get("events", []))

    def log_start(self, summary: dict) -> None:
        write_json_atomic(self.run_dir / SUMMARY_FILE, summary)

    def log_epoch(self, record: dict, events: list[dict]) -> None:
        append_jsonl(self.run_dir / METRICS_FILE, [record])
        append_jsonl(self.run_dir / EVENTS_FILE, events)

    def log_end(self, summary: dict) -> None:
        write_json_atomic(self.run_dir / SUMMARY_FILE, summary)


def wandb_config(cfg, choices: dict) -> dict:
    """The run's W&B config, the same whatever started it: flat dotted keys of the resolved config
    (`pai.mode`, `train.lr`) and each config group's chosen option under the group's name
    (`pai: history`, `experiment: smoke`). A sweep parameter (`seed`, `train.lr`, `pai`) thus names
    a key that holds the value the run used: W&B's lock on sweep keys changes nothing."""
    return {**flatten(OmegaConf.to_container(cfg, resolve=True)), **choices}


def credentials_source() -> str | None:
    """Where W&B would find credentials for its base URL (what `wandb.init` looks at), or None."""
    from wandb.sdk import wandb_setup
    from wandb.sdk.lib.wbauth import read_netrc_auth

    for name in ("WANDB_API_KEY", "WANDB_IDENTITY_TOKEN_FILE"):
        if os.environ.get(name):
            return f"{name} in the environment"
    settings = wandb_setup.singleton().settings
    try:
        if read_netrc_auth(host=settings.base_url):
            return f"the .netrc entry for {settings.base_url}"
    except Exception:  # noqa: BLE001  a malformed entry is W&B's to report if the user goes online
        pass
    return "W&B's settings (wandb login)" if settings.api_key else None


def choose_mode(requested: str, setting: str | None = None) -> tuple[str, str]:
    """W&B mode for `requested` (as nexus.config.wandb_mode gives it, with the `setting` that decided
    it: `logger.mode=...`, `WANDB_MODE=...`), and why: `auto` is online exactly when W&B has credentials."""
    setting = setting or f"logger.mode={requested}"
    if requested != "auto":
        return requested, setting
    source = credentials_source()
    if source:
        return "online", f"{setting}; credentials from {source}"
    return "offline", f"{setting}; no W&B credentials in WANDB_API_KEY, ~/.netrc or `wandb login`"


def route_wandb_notices(wandb) -> None:
    """W&B's notices and warnings to its own log (the active run's debug.log), not the console; its
    errors stay on the console. They are about calls this harness makes, which a user cannot change
    (`Symlinked 2 files into the W&B run directory; call wandb.save again`, `Artifact ... already
    exists`, `Loaded credentials`), and the console keeps what the user can act on: our own lines.
    W&B sends them all through its terminal functions (wandb.termwarn, also for wandb-core's
    warnings), which hand them to a logger in its silent mode; only the settings of wandb.setup reach
    those functions, not wandb.init's `silent` (wandb 0.31)."""
    import logging

    settings = wandb.setup().settings
    wandb.termsetup(wandb.Settings(silent=settings.silent, show_errors=settings.show_errors, show_info=False,
                                   show_warnings=False), logging.getLogger("wandb"))


class WandbRun:
    """One W&B run per job, files inside the run folder, in `mode` (online or offline). A server that
    does not answer within logger.init_timeout costs that wait, then the run is logged offline."""

    def __init__(self, cfg, run_dir: Path, resumed: dict | None, choices: dict, mode: str):
        import wandb

        self.wandb = wandb
        self.run_dir = run_dir
        self.log_model = bool(cfg.logger.log_model)
        self.events: list[dict] = list((resumed or {}).get("events", []))
        names = describe(cfg)
        previous_id = (resumed or {}).get("wandb_id")
        # W&B does not resume a run inside a sweep: a resumed sweep run is a new W&B run that names
        # the one it continues and carries the epochs before the checkpoint again (log_start).
        self.replay = list((resumed or {}).get("history", [])) if sweep_id() and previous_id else []
        init = dict(
            id=None if self.replay else previous_id,
            resume="allow" if previous_id and not self.replay else None,
            project=cfg.logger.project,
            entity=cfg.logger.entity,
            name=cfg.logger.run_name or names["run_name"],
            group=cfg.logger.group or names["group"],
            job_type=cfg.logger.job_type or names["job_type"],
            tags=[*names["tags"], *([f"sweep:{cfg.logger.sweep}"] if cfg.logger.sweep else []),
                  *(["resumed"] if self.replay else []), *cfg.logger.tags],
            notes=f"continues W&B run {previous_id} from its checkpoint" if self.replay else None,
            config=wandb_config(cfg, choices),
            dir=str(run_dir),
            reinit="finish_previous",
            settings=wandb.Settings(console="off", silent=True, init_timeout=float(cfg.logger.init_timeout)),
        )
        route_wandb_notices(wandb)
        online_runs_before = set((run_dir / "wandb").glob("run-*"))  # a resumed run's own, for one
        started = time.monotonic()
        try:
            self.run = wandb.init(mode=mode, **init)
        except Exception as err:
            if mode != "online":
                raise
            # W&B leaves the failed attempt's folder, wandb/run-<time>-<id> (state finished, nothing
            # logged), beside the offline run; readers would take it for this run's copy on the server.
            # wandb-core still holds its files open, and never writes to them again.
            for attempt in set((run_dir / "wandb").glob("run-*")) - online_runs_before:
                shutil.rmtree(attempt)
            timeout = float(cfg.logger.init_timeout)
            server = wandb.setup().settings.base_url
            wandb_says = (str(err).strip().splitlines() or [type(err).__name__])[0]  # not its advice below
            failure = (f"did not answer within logger.init_timeout={timeout:g} s"
                       if time.monotonic() - started >= timeout else f"refused the run ({wandb_says})")
            print(f"warning: W&B server {server} {failure}; logging offline instead: upload later with "
                  "`nexus-publish` or `wandb sync`", file=sys.stderr)
            warn_if_the_sweep_will_not_see_it("offline")
            OFFLINE_FALLBACKS.append(run_dir)
            self.run = wandb.init(mode="offline", **init)
        if self.replay:
            self.run.summary["resumed_from"] = previous_id
        self.run.define_metric("epoch")
        for prefix in ("train/*", "val/*", "pai/*", "time/*", "zero_shot/*"):
            self.run.define_metric(prefix, step_metric="epoch")
        self.run.define_metric("val/spearman", step_metric="epoch", summary="max")

    def log_start(self, summary: dict) -> None:
        zero_shot = {k: v for k, v in summary.items() if k.startswith("zero_shot/")}
        self.run.log({"epoch": -1, **zero_shot})
        for record in self.replay:
            self.run.log(self.row(record, [e for e in self.events if e["epoch"] == record["epoch"]]))

    def log_epoch(self, record: dict, events: list[dict]) -> None:
        self.events.extend(events)
        self.run.log(self.row(record, events))

    @staticmethod
    def row(record: dict, events: list[dict]) -> dict:
        """An epoch's W&B row: its metrics, and the kinds of its PAI events, if any."""
        return {**record, **({"pai/restructure": "+".join(e["kind"] for e in events)} if events else {})}

    def log_end(self, summary: dict) -> None:
        wandb = self.wandb
        table = wandb.Table(columns=["epoch", "kind", "dendrites", "params"],
                            data=[[e["epoch"], e["kind"], e["dendrites"], e["params"]] for e in self.events])
        images = {name: wandb.Image(str(self.run_dir / file))
                  for name, file in (("training_results", PLOT_FILE), ("pai/graph", "pai/pai.png"))
                  if (self.run_dir / file).is_file()}
        self.run.log({"pai/events": table, **images, **self.end_panels(summary)})
        if (self.run_dir / PREDICTIONS_DIR).is_dir():  # what nexus-compare --wandb reads back
            self.run.save(str(self.run_dir / PREDICTIONS_DIR / "*.csv"), base_path=str(self.run_dir), policy="now")
        if (self.run_dir / RESULTS_FILE).is_file():
            self.run.save(str(self.run_dir / RESULTS_FILE), base_path=str(self.run_dir), policy="now")
        self.run.summary.update({k: v for k, v in summary.items() if k not in ("config", "pai/architectures")})
        if self.log_model and (self.run_dir / "model").is_dir():
            from nexus.model import card_metadata

            # The model card's facts; logged from this run, which W&B records as the artifact's lineage.
            artifact = wandb.Artifact(f"model-{self.run.id}", type="model",
                                      metadata={**card_metadata(summary, self.run_dir, self.run.id),
                                                "status": summary["status"]})
            # "immutable": no copy in W&B's staging folder (offline, one per run, kept until synced: a
            # whole model folder, backbone included) nor in its cache after an upload; the run folder
            # keeps the files, unchanged.
            artifact.add_dir(str(self.run_dir / "model"), policy="immutable", skip_cache=True)
            self.run.log_artifact(artifact)
        self.run.finish(exit_code=0 if summary["status"] == "completed" else 1)


    def end_panels(self, summary: dict) -> dict:
        """results.md as an HTML panel (a run can log HTML media, which W&B renders in the run's
        workspace; Markdown panels belong to reports) and the per-architecture table."""
        panels = {}
        if (self.run_dir / RESULTS_FILE).is_file():
            from nexus.results import results_html

            panels["results"] = self.wandb.Html(results_html((self.run_dir / RESULTS_FILE).read_text()))
        architectures = summary.get("pai/architectures") or []
        if architectures:
            columns = list(architectures[0])
            panels["pai/architectures"] = self.wandb.Table(columns=columns,
                                                           data=[[a[c] for c in columns] for a in architectures])
        return panels


class SweepRunWithoutWandb(RuntimeError):
    """W&B could not start a run that `wandb agent` started: the sweep would never see it."""


def warn_if_the_sweep_will_not_see_it(mode: str) -> None:
    if sweep_id() and mode != "online":
        how = "W&B is disabled" if mode == "disabled" else ("it is logged offline; upload it later with "
                                                             "`nexus-publish` or `wandb sync`")
        print(f"warning: W&B sweep {sweep_id()} will not see this run: {how}", file=sys.stderr)


class RunLog:
    """Fans each record out to every sink; a failing W&B sink is dropped with a warning, except in a
    run of `wandb agent`, which stops before training instead (SweepRunWithoutWandb): the agent
    would count the run a success that the sweep never sees."""

    def __init__(self, cfg, run_dir: Path, resumed: dict | None = None, choices: dict | None = None):
        """`choices`: the option picked in each config group, for W&B's config (wandb_config)."""
        self.sinks: list = [LocalFiles(run_dir, resumed)]
        if cfg.logger.backend != "wandb":
            return
        mode, why = choose_mode(*wandb_mode(cfg.logger))
        print(f"W&B: {mode} ({why})" + (": no W&B run, local files only" if mode == "disabled" else ""))
        warn_if_the_sweep_will_not_see_it(mode)
        if mode == "disabled":
            return
        if not sweep_id():
            self._guard(lambda: self.sinks.append(WandbRun(cfg, run_dir, resumed, choices or {}, mode)), "init")
            return
        try:
            self.sinks.append(WandbRun(cfg, run_dir, resumed, choices or {}, mode))
        except Exception as err:  # noqa: BLE001  any failure of W&B's init: the run stops here
            raise SweepRunWithoutWandb(f"W&B init failed for this run of sweep {sweep_id()} ({one_line(err)[:300]}); "
                                       "stopped before training, so that `wandb agent` marks it failed") from err

    @property
    def wandb_id(self) -> str | None:
        return next((s.run.id for s in self.sinks if isinstance(s, WandbRun)), None)

    def _guard(self, call, what: str) -> None:
        try:
            call()
        except Exception as err:  # noqa: BLE001  W&B must never cost the local record
            print(f"warning: W&B {what} failed, continuing with local files only: {err}", file=sys.stderr)
            self.sinks = [s for s in self.sinks if isinstance(s, LocalFiles)]

    def _each(self, method: str, *args) -> None:
        for sink in list(self.sinks):
            if isinstance(sink, LocalFiles):
                getattr(sink, method)(*args)
            else:
                self._guard(lambda sink=sink: getattr(sink, method)(*args), method)

    def log_start(self, summary: dict) -> None:
        self._each("log_start", summary)

    def log_epoch(self, record: dict, events: list[dict]) -> None:
        self._each("log_epoch", record, events)

    def log_end(self, summary: dict) -> None:
        self._each("log_end", summary)


def leet_inspect(path: Path, *flags: str) -> str:
    """`wandb leet inspect --json FLAGS PATH` (wandb's own reader of a run's .wandb log), from this
    Python's wandb, so it works whether or not the environment's bin/ is on PATH."""
    return subprocess.run([sys.executable, "-m", "wandb", "leet", "inspect", "--json", *flags, str(path)],
                          capture_output=True, text=True, check=True).stdout


def read_offline_run(path: Path) -> list[dict]:
    """Records of an offline W&B run (its .wandb file or folder), one per line of its log."""
    return [json.loads(line) for line in leet_inspect(path).splitlines() if line.strip()]


def read_offline_run_state(path: Path) -> dict:
    """A W&B run's final state (config, summary, state, tags, ...) as one object."""
    return json.loads(leet_inspect(path, "--summary"))


WANDB_TEARDOWN_S = 10

# Run folders whose W&B run fell back to offline in this process (WandbRun), for end_process.
OFFLINE_FALLBACKS: list[Path] = []


def leave_wandb(code: int, skip_exit_hooks: bool = False) -> int:
    """`code`, once W&B has shut down, for a command that ends after a W&B request failed. W&B's
    own teardown (what its atexit hook runs) gets WANDB_TEARDOWN_S: after a request that timed out
    its service process can stay busy with it, and the teardown waits for the process without a
    limit (wandb 0.31), so the error was printed and then the command sometimes hung at exit. If
    the teardown has not finished by then, or `skip_exit_hooks`, the process exits now (skipping
    the remaining exit hooks); W&B's service exits by itself when it sees its parent gone."""
    import wandb

    teardown = threading.Thread(target=wandb.teardown, daemon=True)
    teardown.start()
    teardown.join(WANDB_TEARDOWN_S)
    if teardown.is_alive() or skip_exit_hooks:
        sys.stdout.flush()
        sys.stderr.flush()
        os._exit(code)
    return code


def end_process(code: int) -> int:
    """`code`, for a process about to exit with it (launch.py). After a run here fell back to
    offline, W&B's own exit hook sends its report of the failed init to the server that did not
    answer and waits for it (up to 20 s, wandb 0.31: a smoke run took 40 s instead of 20), so the
    process ends once W&B has shut down (leave_wandb), without it; the run's files are complete."""
    return leave_wandb(code, skip_exit_hooks=True) if OFFLINE_FALLBACKS else code
