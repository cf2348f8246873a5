"""nexus-publish, for real: a smoke sweep run offline, then published with --dry-run (no server
needed), the workspace spec read back with wandb-workspaces' own models, the sync command checked
by `wandb sync --dry-run` itself, and a real publish against a closed port. Nothing is mocked."""

from __future__ import annotations

import json
import os
import shlex
import shutil
import socket
import subprocess
import sys
from pathlib import Path

import pytest

from conftest import REPO
from nexus import publish

PROJECT = ["--project", "team/nexus"]


def run_cli(*args: str, env: dict | None = None, timeout: float = 300) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "nexus.publish", *args], cwd=REPO, capture_output=True,
                          text=True, env={**os.environ, **(env or {})}, timeout=timeout)


def no_server_env(tmp_path: Path) -> dict:
    """W&B pointed at a closed port on this machine, and no credentials of the user's."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    return {"WANDB_BASE_URL": f"http://127.0.0.1:{port}", "HOME": str(tmp_path), "WANDB_API_KEY": "",
            "WANDB_CONFIG_DIR": str(tmp_path / "wandb-config")}


@pytest.fixture(scope="module")
def smoke_sweep(tmp_path_factory) -> Path:
    """sweeps/smoke.yaml offline: 4 runs (2 seeds x pai disabled/history), each with an offline W&B run."""
    folder = tmp_path_factory.mktemp("publish") / "smoke"
    done = subprocess.run([sys.executable, "-m", "nexus.sweep", "sweeps/smoke.yaml", "--workers", "2", "--dir",
                           str(folder), "--override", "logger.log_model=false"], cwd=REPO, capture_output=True,
                          text=True, timeout=600)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    return folder


@pytest.fixture(scope="module")
def dry_run(smoke_sweep, tmp_path_factory):
    """`nexus-publish DIR --dry-run --out spec.json`, with no server and no credentials at hand."""
    tmp = tmp_path_factory.mktemp("dry")
    done = run_cli(str(smoke_sweep), *PROJECT, "--dry-run", "--out", str(tmp / "spec.json"), env=no_server_env(tmp))
    assert done.returncode == 0, done.stderr
    return {"output": done.stdout, "spec": json.loads((tmp / "spec.json").read_text())}


def offline_runs(folder: Path) -> list[Path]:
    return sorted(folder.glob("runs/*/wandb/offline-run-*"))


def printed_sync_command(output: str) -> list[str]:
    """The shell command under step 1, continued over lines as a shell reads it (backslash-newline)."""
    lines = output.split("1. sync ", 1)[1].split("\n2. ", 1)[0].splitlines()[1:]
    return shlex.split("\n".join(lines).replace("\\\n", ""))


def test_the_sync_command_names_every_offline_run_exactly_once(smoke_sweep, dry_run, tmp_path):
    command = printed_sync_command(dry_run["output"])
    assert command[:8] == [sys.executable, "-m", "wandb", "sync", "--project", "nexus", "--entity", "team"]
    paths = command[8:]
    assert len(paths) == len(set(paths)) == 4
    assert set(paths) == {str(run) for run in offline_runs(smoke_sweep)}
    # wandb's own reading of the same command: these 4 runs, none skipped
    own = subprocess.run([*command, "--dry-run"], capture_output=True, text=True, timeout=120,
                         env={**os.environ, **no_server_env(tmp_path)})
    assert own.returncode == 0 and "Would sync 4 run(s)" in own.stderr + own.stdout, own.stderr


def test_the_sweep_is_registered_with_every_run_id(smoke_sweep, dry_run):
    line = next(line for line in dry_run["output"].splitlines() if line.startswith("2. "))
    assert line.startswith("2. register sweep 'smoke' (grid) with its 4 runs: prior_runs=")
    ids = json.loads(line.split("prior_runs=", 1)[1].replace("'", '"'))
    assert sorted(ids) == sorted(run.name.rsplit("-", 1)[1] for run in offline_runs(smoke_sweep))
    state = json.loads((smoke_sweep / "sweep.json").read_text())
    assert len(ids) == len(state["runs"]) == 4


def test_the_workspace_spec_loads_back_with_wandb_workspaces_models(smoke_sweep, dry_run):
    import wandb_workspaces.reports.v2 as wr
    import wandb_workspaces.workspaces as ws
    from wandb_workspaces.workspaces import internal

    space = ws.Workspace._from_model(internal.View.model_validate(dry_run["spec"]))
    assert (space.entity, space.project, space.name) == ("team", "nexus", "NEXUS smoke")
    panels = [panel for section in space.sections for panel in section.panels]
    curves = {panel.y[0].name: panel for panel in panels if isinstance(panel, wr.LinePlot)}
    assert set(curves) == {"val/spearman", "train/loss", "pai/dendrites"}
    for curve in curves.values():  # seeds of a run group: mean with a min..max band, over epochs
        assert (curve.x, curve.groupby, curve.groupby_aggfunc, curve.groupby_rangefunc) == \
            (wr.Metric("epoch"), "Group", "mean", "minmax")
    (scatter,) = [panel for panel in panels if isinstance(panel, wr.ScatterPlot)]
    assert (scatter.x, scatter.y) == (wr.SummaryMetric("train/lr"), wr.SummaryMetric("best/val_spearman"))
    assert space.runset_settings.groupby == [ws.Metric("JobType"), ws.Config("pai.mode.value")]
    assert "sweep:smoke" in space.runset_settings.filters
    assert "config:pai.mode.value" in space.runset_settings.pinned_columns
    (markdown,) = [panel for panel in panels if isinstance(panel, wr.MarkdownPanel)]
    assert "| pai=history | pai=disabled | 2 |" in markdown.markdown
    assert "too few seeds to tell" in markdown.markdown


def test_the_workspace_spec_survives_a_load_and_save_through_wandb_workspaces(dry_run):
    """A team that edits the workspace in code loads it and saves it again: nothing may change."""
    import wandb_workspaces.workspaces as ws
    from wandb_workspaces.workspaces import internal

    space = ws.Workspace._from_model(internal.View.model_validate(dry_run["spec"]))
    again = space._to_model().model_dump(by_alias=True, exclude_none=True, mode="json")
    assert again["spec"]["section"] == dry_run["spec"]["spec"]["section"]


def test_the_markdown_panel_holds_the_verdict_table_of_nexus_compare(smoke_sweep, dry_run, tmp_path):
    from nexus import compare

    assert compare.main([str(smoke_sweep), "--out", str(tmp_path)]) == 0
    report = (tmp_path / "report.md").read_text()
    (markdown,) = [p["config"]["value"] for s in dry_run["spec"]["spec"]["section"]["panelBankConfig"]["sections"]
                   for p in s["panels"] if p["viewType"] == "Markdown Panel"]
    table = markdown.split("\n\n", 1)[1].strip()
    assert table.startswith("| configuration | baseline |") and table in report


def test_synced_and_online_runs_are_left_alone(smoke_sweep, tmp_path, capsys):
    """Three copies of one offline run: as it is, marked synced by `wandb sync`, and as an online run."""
    (source,) = offline_runs(smoke_sweep)[:1]
    wandb_dir = tmp_path / "run" / "wandb"
    for name in ("offline-run-20260101_000000-aaaaaaaa", "offline-run-20260101_000001-bbbbbbbb",
                 "run-20260101_000002-cccccccc"):
        shutil.copytree(source, wandb_dir / name)
    synced = wandb_dir / "offline-run-20260101_000001-bbbbbbbb"
    (synced / next(synced.glob("*.wandb")).name).with_suffix(".wandb.synced").touch()
    assert publish.main([str(tmp_path), *PROJECT, "--dry-run"]) == 0
    out = capsys.readouterr().out
    assert "1. sync 1 offline runs (skipped: 1 already synced, 1 online, 0 incomplete):" in out
    assert printed_sync_command(out)[8:] == [str(wandb_dir / "offline-run-20260101_000000-aaaaaaaa")]
    assert "2. no sweep.json: no sweep to register" in out
    assert "(every run of the project)" in out
    # wandb's own rules give the same answer
    own = subprocess.run([sys.executable, "-m", "wandb", "sync", "--dry-run", str(wandb_dir)],
                         capture_output=True, text=True, timeout=120)
    said = own.stdout + own.stderr
    assert "Would sync 1 run(s)" in said and "Skipped 1 synced run(s)" in said and "Skipped 1 online run(s)" in said


def bad_inputs(tmp: Path) -> list[tuple[list[str], str]]:
    empty = tmp / "empty"
    empty.mkdir()
    broken = tmp / "broken"
    (broken / "runs" / "r" / "wandb" / "offline-run-1-abcd").mkdir(parents=True)
    (broken / "runs" / "r" / "wandb" / "offline-run-1-abcd" / "run-abcd.wandb").touch()
    (broken / "sweep.json").write_text("{")
    return [
        ([str(tmp / "missing"), *PROJECT], f"error: no such folder: {tmp / 'missing'}"),
        ([str(empty), *PROJECT], f"error: {empty}: no W&B runs below it"),
        ([str(empty), "--project", "nexus"], "error: --project wants ENTITY/PROJECT, got 'nexus'"),
        ([str(empty), "--project", "team/nexus/x"], "error: --project wants ENTITY/PROJECT, got 'team/nexus/x'"),
        ([str(empty), "--project", "/nexus"], "error: --project wants ENTITY/PROJECT, got '/nexus'"),
        ([str(broken), *PROJECT], f"error: {broken / 'sweep.json'}: unreadable"),
    ]


@pytest.mark.parametrize("dry", [True, False], ids=["dry-run", "real"])
def test_bad_input_is_one_line_and_exit_code_2_before_any_work(tmp_path, capsys, dry):
    for args, expected in bad_inputs(tmp_path):
        assert publish.main(args + (["--dry-run"] if dry else [])) == 2, args
        captured = capsys.readouterr()
        assert captured.out == "" and captured.err.startswith(expected), (args, captured.err)
        assert len(captured.err.splitlines()) == 1


def test_publishing_without_credentials_is_the_users_mistake_exit_code_2_before_any_work(tmp_path):
    """No key is no reachability problem: it says what to do, before any run is read."""
    (tmp_path / "run" / "wandb" / "offline-run-20260101_000000-abcd1234").mkdir(parents=True)
    # WANDB_MODE=offline (set for every test) makes transformers print a line on import
    done = run_cli(str(tmp_path / "run"), *PROJECT, env={**no_server_env(tmp_path), "WANDB_MODE": "online"})
    assert (done.returncode, done.stdout) == (2, "")
    assert done.stderr == "error: no W&B API key: run `wandb login` (or set WANDB_API_KEY)\n"


@pytest.mark.parametrize("server", ["closed port", "never answers"])
def test_publishing_without_a_server_fails_in_one_line_within_a_bounded_time(smoke_sweep, tmp_path, server):
    """No W&B server: a closed port, or one that accepts connections and never answers. After the
    check times out W&B's service can stay busy with the request, and W&B's own teardown waited
    for it without a limit: the error was printed, then the command hung at exit (1 run in 3 by
    hand, once in a whole-suite run); it now exits within nexus.tracking.WANDB_TEARDOWN_S."""
    env = {**no_server_env(tmp_path), "WANDB_API_KEY": "0123456789abcdef" * 2 + "01234567"}  # 40 characters
    with socket.socket() as silent:
        if server == "never answers":
            silent.bind(("127.0.0.1", 0))
            silent.listen(16)  # the kernel completes the handshakes; nothing reads or replies
            env["WANDB_BASE_URL"] = f"http://127.0.0.1:{silent.getsockname()[1]}"
        # bounded: a hang would run into the subprocess timeout (a deadline for hangs, not a speed test)
        done = run_cli(str(smoke_sweep), *PROJECT, env=env, timeout=300)
    assert done.returncode == 1
    assert done.stderr.startswith(f"error: cannot reach W&B at {env['WANDB_BASE_URL']}: ") and \
        len(done.stderr.splitlines()) == 1, done.stderr
    assert "Traceback" not in done.stdout + done.stderr
    # checked before the first step: nothing synced, nothing half-sent
    assert not [f for run in offline_runs(smoke_sweep) for f in run.glob("*.wandb.sync*")]
