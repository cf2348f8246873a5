"""Publish what ran offline to W&B, and build the team's dashboard by command.

    nexus-publish DIR --project ENTITY/PROJECT [--dry-run] [--out FILE]

First the checks, before any work: the input (DIR holds W&B runs, ENTITY/PROJECT is one) and,
unless --dry-run, W&B credentials (exit code 2 if not). Then which offline runs W&B has not synced,
by wandb's own rules (a run folder named `offline-run-*`, as `run-*` ran online, without the
`.wandb.synced` marker `wandb sync` leaves), each read with wandb's reader: a folder that holds
no complete run (an online attempt that fell back to offline, a killed run) is skipped, a line
each saying why. Unless --dry-run, W&B must answer within seconds (`wandb sync` to a server that
is down retries for good); it failing, or any later step, is exit code 1. Then, numbered as it
prints them:
1. Sync those runs with one `wandb sync` command naming each once (it orders a resumed run's files).
2. A `nexus-sweep` folder (sweep.json): register its runs as one W&B sweep (`prior_runs`), so the
   sweep page, parallel coordinates and parameter importance cover them.
3. Save a workspace (wandb-workspaces): curves per run group with seed bands, dendrites, best dev
   Spearman against the learning rate by PAI mode, the runs grouped by job type, and the verdict
   table of nexus-compare; filtered to the sweep's tag when DIR is a sweep.

--dry-run does no network I/O: it prints each step (the exact sync command, the sweep with its
run ids) and, with --out, writes the workspace spec as JSON.
"""

from __future__ import annotations

import argparse
import json
import shlex
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

from nexus.errors import UserError, one_line, report
from nexus.progress import progress
from nexus.sweep import STATE_FILE, SweepRun
from nexus.tracking import leave_wandb
from nexus.wandb_runs import inspect_run, is_online, require_api_key, run_folders, run_id

CHECK_TIMEOUT_S = 10  # per request of the reachability check
# The runs table: columns beside the run name. Config keys are flat dotted names (`pai.mode`), whose
# W&B path puts `.value` at the end (wandb_workspaces.expr.groupby_str_to_key explains both forms).
COLUMNS = ["run:jobType", "config:pai.mode.value", "config:train.lr.value", "config:seed.value",
           "summary:best/val_spearman", "summary:test/spearman", "summary:pai/dendrites"]


@dataclass
class Plan:
    folder: Path
    entity: str
    project: str
    offline: list[Path]  # run folders to sync
    skipped: dict[str, int]  # why other complete W&B runs are left alone: how many
    incomplete: dict[Path, str]  # W&B run folders that hold no complete run: why
    sweep: dict | None  # sweep.json of a nexus-sweep folder
    sweep_run_ids: list[str]


# ---------------------------------------------------------------------------------------------
# The checks: the input, what to sync, W&B answers
# ---------------------------------------------------------------------------------------------

def sweep_run_ids(folder: Path, state: dict, published: list[Path]) -> list[str]:
    """The W&B ids of the runs the sweep's state file records (each parameter set's last attempt),
    among the W&B runs that are or will be on the server."""
    runs = [SweepRun(**record) for record in state["runs"]]
    ids = [run_id(f) for run in runs for f in published if f.parent == folder / "runs" / run.folder_name / "wandb"]
    return list(dict.fromkeys(ids))


def read_sweep_state(folder: Path) -> dict | None:
    if not (folder / STATE_FILE).is_file():
        return None
    try:
        state = json.loads((folder / STATE_FILE).read_text())
    except (OSError, ValueError) as err:
        raise UserError(f"{folder / STATE_FILE}: unreadable ({one_line(err)})") from None
    if not isinstance(state, dict) or not {"name", "config", "runs"} <= state.keys():
        raise UserError(f"{folder / STATE_FILE}: not a nexus-sweep state file (no name, config and runs)")
    return state


def plan(folder: Path, project: str, dry_run: bool) -> Plan:
    """What to do, after the checks: the input and, for a real publish, W&B's credentials and answer."""
    parts = project.split("/")
    if len(parts) != 2 or not all(parts):
        raise UserError(f"--project wants ENTITY/PROJECT, got {project!r}")
    if not folder.is_dir():
        raise UserError(f"no such folder: {folder}")
    folder = folder.resolve()
    folders = run_folders(folder)
    if not folders:
        raise UserError(f"{folder}: no W&B runs below it (runs with logger=wandb write <run>/wandb/offline-run-*)")
    state = read_sweep_state(folder)
    if not dry_run:
        require_api_key()
        check_reachable()
    # wandb sync's own rules: a run folder named run-* ran online, and `wandb sync` marks what it uploaded
    synced = [f for f in folders if not is_online(f) and any(f.glob("run-*.wandb.synced"))]
    offline, online, incomplete = [], [], {}
    for f in progress([f for f in folders if f not in synced], "reading W&B runs"):
        _, why = inspect_run(f)
        if why:
            incomplete[f] = why
        else:
            (online if is_online(f) else offline).append(f)
    # The part of a resumed run before it was killed has no exit record, and holds its first epochs:
    # it goes with the part that finished (wandb sync joins the two).
    finished_ids = {run_id(f) for f in offline + synced}
    earlier = [f for f in incomplete if not is_online(f) and run_id(f) in finished_ids]
    for f in earlier:
        del incomplete[f]
    offline = sorted(offline + earlier)
    return Plan(folder, parts[0], parts[1], offline, {"already synced": len(synced), "online": len(online)},
                incomplete, state, sweep_run_ids(folder, state, sorted(synced + online + offline)) if state else [])


def check_reachable() -> None:
    import wandb

    url = wandb.setup().settings.base_url
    try:
        wandb.Api(timeout=CHECK_TIMEOUT_S).viewer  # noqa: B018  verifies the key with the server
    except Exception as err:  # noqa: BLE001  wandb raises many types (UsageError, AuthenticationError, ...)
        raise PublishError(f"cannot reach W&B at {url}: {one_line(err)}") from None


# ---------------------------------------------------------------------------------------------
# 1-2. Sync, sweep
# ---------------------------------------------------------------------------------------------


def sync_command(p: Plan) -> list[str]:
    return [sys.executable, "-m", "wandb", "sync", "--project", p.project, "--entity", p.entity,
            *map(str, p.offline)]


def shown(command: list[str], n_paths: int) -> str:
    """The command as one shell command, a run folder a line."""
    return " \\\n       ".join([shlex.join(command[:-n_paths]), *map(shlex.quote, command[-n_paths:])])


def sync(p: Plan) -> None:
    code = subprocess.run(sync_command(p), stdin=subprocess.DEVNULL).returncode  # its progress on the terminal
    # wandb-core writes the marker once a run is uploaded: the proof, whatever the exit code says.
    missed = [d for d in p.offline if not any(d.glob("run-*.wandb.synced"))]
    if code or missed:
        raise PublishError(f"wandb sync (exit code {code}) left {len(missed)} of {len(p.offline)} runs "
                           f"unsynced, e.g. {missed[0] if missed else p.offline[0]}; its output is above")


def register_sweep(p: Plan) -> str:
    import wandb

    try:
        return wandb.sweep(p.sweep["config"], entity=p.entity, project=p.project, prior_runs=p.sweep_run_ids)
    except Exception as err:  # noqa: BLE001  as above
        raise PublishError(f"registering the sweep failed: {one_line(err)}") from None


# ---------------------------------------------------------------------------------------------
# 3. The workspace
# ---------------------------------------------------------------------------------------------

def verdict_markdown(folder: Path) -> str:
    """nexus-compare's table of verdicts (each PAI configuration against its baseline), as Markdown."""
    from nexus import compare

    try:
        runs = compare.load_folders([str(folder)])
        compare.require_predictions(runs)
        pairs = compare.assign_baselines(compare.group_runs(runs))
    except UserError as err:
        return f"No verdict: {one_line(err)}"
    if not pairs:
        return "No verdict: no PAI configuration with a baseline (pai=disabled) to compare with."
    table = compare.verdict_table_markdown([compare.compare_to_baseline(*pair) for pair in pairs])
    return f"## nexus-compare: each PAI configuration against its baseline\n\n{table}\n"


def workspace(p: Plan, verdicts: str):
    # Imported here, as wandb is: bad input is refused without waiting for them.
    import wandb_workspaces.reports.v2 as wr
    import wandb_workspaces.workspaces as ws

    def curve(metric: str, title: str):  # mean over the seeds of each run group, band min..max
        return wr.LinePlot(title=title, x="epoch", y=[metric], groupby="Group", groupby_aggfunc="mean",
                           groupby_rangefunc="minmax")

    name = p.sweep["name"] if p.sweep else p.folder.name
    return ws.Workspace(
        entity=p.entity, project=p.project, name=f"NEXUS {name}",
        settings=ws.WorkspaceSettings(x_axis="epoch"),
        sections=[
            ws.Section(name="Per epoch, by run group (mean over seeds, band min..max)", is_open=True, panels=[
                curve("val/spearman", "dev Spearman"), curve("train/loss", "train loss"),
                curve("pai/dendrites", "dendrites")]),
            ws.Section(name="Best dev Spearman by learning rate (colour: PAI mode)", is_open=True, panels=[
                # x: the adapter's learning rate as the run logged it (train/lr), not the config key
                # train.lr: wandb-workspaces reads a panel's config path as a nested config's, so a
                # workspace loaded and saved in code would point at train.value.lr, which no run has.
                wr.ScatterPlot(title="best dev Spearman against train/lr", x=wr.SummaryMetric("train/lr"),
                               y=wr.SummaryMetric("best/val_spearman"), log_x=True)]),
            ws.Section(name="Verdict", is_open=True, panels=[wr.MarkdownPanel(markdown=verdicts)]),
        ],
        # Runs grouped by job type, then PAI mode: a group's runs share a colour, so the scatter
        # shows the modes apart. The runset's Config path is given whole (flat key `pai.mode`); the
        # runset keeps it through a load and save.
        runset_settings=ws.RunsetSettings(
            groupby=[ws.Metric("JobType"), ws.Config("pai.mode.value")], pinned_columns=COLUMNS,
            filters=[ws.Tags().isin([f"sweep:{name}"])] if p.sweep else ""),
    )


# ---------------------------------------------------------------------------------------------
# The story, and the entry point
# ---------------------------------------------------------------------------------------------

class PublishError(Exception):
    """W&B refused or could not be reached: one line, exit code 1."""


def publish(folder: Path, project: str, dry_run: bool, out: Path | None) -> None:
    p = plan(folder, project, dry_run)
    print(f"nexus-publish {p.folder} -> {p.entity}/{p.project}" + (" (dry run: nothing is sent)" if dry_run else ""))
    for folder, why in p.incomplete.items():
        print(f"skipped {folder}: {why}")
    skipped = ", ".join(f"{n} {why}" for why, n in {**p.skipped, "incomplete": len(p.incomplete)}.items())
    print(f"1. sync {len(p.offline)} offline runs (skipped: {skipped})" + (":" if p.offline else ""))
    if p.offline:
        print("   " + shown(sync_command(p), len(p.offline)))
        if not dry_run:
            sync(p)
    if p.sweep:
        print(f"2. register sweep {p.sweep['name']!r} ({p.sweep['config'].get('method')}) with its "
              f"{len(p.sweep_run_ids)} runs: prior_runs={p.sweep_run_ids}")
        if not dry_run:
            print(f"   sweep id: {register_sweep(p)}")
    else:
        print("2. no sweep.json: no sweep to register")
    space = workspace(p, verdict_markdown(p.folder))
    scope = f"runs tagged sweep:{p.sweep['name']}" if p.sweep else "every run of the project"
    print(f"3. save workspace {space.name!r} ({scope}): " + "; ".join(s.name for s in space.sections))
    if out:
        out.write_text(json.dumps(space._to_model().model_dump(by_alias=True, exclude_none=True, mode="json"),
                                  indent=2) + "\n")
        print(f"   spec: {out}")
    if not dry_run:
        try:
            space.save()
        except Exception as err:  # noqa: BLE001  as above
            raise PublishError(f"saving the workspace failed: {one_line(err)}") from None


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="nexus-publish", description=__doc__.split("\n\n")[0])
    parser.add_argument("dir", type=Path, help="a run, multirun or nexus-sweep folder")
    parser.add_argument("--project", required=True, metavar="ENTITY/PROJECT", help="where the runs go")
    parser.add_argument("--dry-run", action="store_true", help="print each step, send nothing")
    parser.add_argument("--out", type=Path, help="write the workspace spec (JSON) to this file")
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    try:
        publish(args.dir, args.project, args.dry_run, args.out)
    except UserError as err:
        return report(err)
    except PublishError as err:  # the server's side, not the user's input: exit 1
        report(err)
        return leave_wandb(1)
    return 0


if __name__ == "__main__":
    sys.exit(main())
