"""W&B faults that lost a run from the team's view without an error (issue 22): a server that does not
answer, a broken or disagreeing `wandb agent` parameter file, W&B's own switches (WANDB_MODE,
WANDB_DISABLED) and W&B's warnings on the console. Real wandb, offline; the only servers are on the
loopback address (a socket that accepts and never answers); the agent's protocol is emulated as in
test_wandb_paths (wandb's own command builder and parameter-file writer)."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest
from test_wandb_paths import ARGS, PARAMS, run_as_agent, wandb_run_dir

from conftest import REPO, launch, read_json, read_jsonl
from nexus.compose import compose
from nexus.tracking import read_offline_run_state


@pytest.fixture
def silent_server():
    """The URL of a server that accepts connections and never answers."""
    listener = socket.create_server(("127.0.0.1", 0))
    held = []

    def accept_forever():
        while True:
            try:
                held.append(listener.accept()[0])
            except OSError:  # the listener closed: the test is over
                return

    threading.Thread(target=accept_forever, daemon=True).start()
    yield f"http://127.0.0.1:{listener.getsockname()[1]}"
    listener.close()
    for connection in held:
        connection.close()


def without_wandb_settings(**env: str) -> dict:
    """This process's environment without W&B's variables (the tests' WANDB_MODE and WANDB_SILENT
    included), plus `env`."""
    return {**{k: v for k, v in os.environ.items() if not k.startswith("WANDB_") and k != "NETRC"}, **env}


def test_a_server_that_never_answers_leaves_one_complete_offline_run(tmp_path, silent_server):
    """Credentials, and a server that accepts and never answers: one warning naming
    logger.init_timeout, and the run folder's wandb/ holds one W&B run, the offline one, complete
    (no stub of the online attempt for readers to take for an uploaded run). The process ends soon
    after its summary: W&B's exit hook no longer waits on the server that did not answer."""
    run_dir = tmp_path / "run"
    env = without_wandb_settings(WANDB_API_KEY="a" * 40, WANDB_BASE_URL=silent_server, HOME=str(tmp_path))
    done = subprocess.run([sys.executable, "launch.py", *ARGS, "logger.init_timeout=3", f"hydra.run.dir={run_dir}"],
                          cwd=REPO, env=env, capture_output=True, text=True, timeout=600)
    ended = time.time()
    assert done.returncode == 0, done.stderr[-2000:]
    assert [line for line in done.stderr.splitlines() if line.startswith(("warning:", "wandb:"))] == [
        f"warning: W&B server {silent_server} did not answer within logger.init_timeout=3 s; logging offline "
        "instead: upload later with `nexus-publish` or `wandb sync`"]
    wandb_dir = run_dir / "wandb"
    offline = wandb_run_dir(run_dir)
    assert [p.name for p in wandb_dir.iterdir() if p.is_dir() and not p.is_symlink()] == [offline.name]
    for link in (p for p in wandb_dir.iterdir() if p.is_symlink()):  # latest-run, debug.log, ...
        assert link.resolve().is_relative_to(offline.resolve()), link
    state = read_offline_run_state(offline)
    assert (state["state"], state["summary"]["status"], state["config"]["train.lr"]) == ("finished", "completed",
                                                                                          0.0003)
    assert ended - (run_dir / "summary.json").stat().st_mtime < 12  # was over 20 s


def agent_file(tmp_path: Path, params) -> Path:
    """A parameter file as `wandb agent` writes it (wandb's own writer: `wandb_version: 1`, then the
    parameters), or, for `params` given as text, that text."""
    from wandb.sdk.lib import config_util

    path = tmp_path / "wandb" / "sweep-sweep1" / "config-run1.yaml"
    path.parent.mkdir(parents=True, exist_ok=True)
    if isinstance(params, str):
        path.write_text(params)
    else:
        config_util.save_config_file_from_dict(str(path), params)
    return path


def holding(params):
    """WANDB_SWEEP_PARAM_PATH for a test's folder: a file holding `params`."""
    return lambda tmp_path: agent_file(tmp_path, params)


def as_agent(monkeypatch, path: Path | None) -> None:
    """This process as `wandb agent` starts a run (test_wandb_paths.agent_env), the parameter file at `path`."""
    monkeypatch.setenv("WANDB_SWEEP_ID", "sweep1")
    monkeypatch.setenv("WANDB_RUN_ID", "run1")
    if path is None:
        monkeypatch.delenv("WANDB_SWEEP_PARAM_PATH", raising=False)
    else:
        monkeypatch.setenv("WANDB_SWEEP_PARAM_PATH", str(path))


# ARGS pass seed=1 train.lr=0.0003 pai=history: each file says something else, or nothing W&B can read.
BROKEN_AGENT_FILES = {
    "unset": (lambda tmp_path: None,
              "WANDB_SWEEP_ID=sweep1 (a run of `wandb agent`) but WANDB_SWEEP_PARAM_PATH is not set"),
    "missing": (lambda tmp_path: tmp_path / "missing.yaml", "cannot read it (No such file or directory)"),
    "unreadable": (lambda tmp_path: tmp_path, "cannot read it (Is a directory)"),
    "not YAML": (holding("seed: {value: [1\n"), "is not YAML: "),
    "not a mapping": (holding("- seed\n- 1\n"), "expected a mapping of parameters, got ['seed', 1]"),
    "no value wrapper": (holding("seed: 1\n"), "parameter seed: expected {value: ...}, got 1"),
    "another number": (holding({**PARAMS, "train.lr": {"value": 0.001}}),
                       "sweep parameter train.lr: the agent gives 0.001, this run's config has 0.0003"),
    # `values: [3e-4]` in a sweep file: a string to YAML 1.1, and 0.0003 to Hydra on the command line
    "a number as a string": (holding({**PARAMS, "train.lr": {"value": "3e-4"}}),
                             "the agent gives '3e-4', this run's config has 0.0003, and W&B would record the "
                             "agent's value (YAML 1.1 reads a number like 1e-4 as a string: write 1.0e-4"),
    "another group option": (holding({**PARAMS, "pai": {"value": "fixed"}}),
                             "sweep parameter pai: the agent gives 'fixed', this run's config has 'history'"),
    "a bool as a string": (holding({**PARAMS, "logger.log_model": {"value": "false"}}),
                           "sweep parameter logger.log_model: the agent gives 'false', this run's config has False"),
    "not on the command line": (holding({**PARAMS, "train.batch_size": {"value": 64}}),
                                "the agent gives 64, this run's config has 16, and W&B would record the agent's "
                                "value (the sweep's command must pass every parameter"),
    "not a config key": (holding({**PARAMS, "train.lrr": {"value": 0.1}}),
                         "sweep parameter train.lrr=0.1 is not a key of this run's config"),
}


@pytest.mark.parametrize("param_path, message", BROKEN_AGENT_FILES.values(), ids=BROKEN_AGENT_FILES.keys())
def test_a_broken_or_disagreeing_agent_file_is_refused_before_any_work(tmp_path, monkeypatch, capsys, param_path,
                                                                       message):
    """Under `wandb agent`, W&B would fail on such a file (and the run went on without W&B, exit 0), or
    record the agent's value for a run that used another: refused in one line, exit 2, nothing run."""
    as_agent(monkeypatch, param_path(tmp_path))
    run_dir = tmp_path / "run"
    assert launch(*ARGS, "logger=none", f"hydra.run.dir={run_dir}") == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("error: ") and "\n" not in err and message in err
    assert not run_dir.exists()


@pytest.mark.parametrize("params", [
    PARAMS,
    {"seed": {"value": 1.0}, "train.lr": {"value": 3e-4}, "pai": {"value": "history"}},  # numbers as numbers
    {**PARAMS, "train.patience": {"value": None}, "model.adapter": {"value": "dense"},
     "logger.log_model": {"value": False}, "logger.tags": {"value": []}},
], ids=["as swept", "numbers", "null, nested group, bool, list"])
def test_an_agent_file_that_agrees_with_the_config_passes(tmp_path, monkeypatch, params):
    """Numbers compare as numbers, a group key as its chosen option, null, bools and lists as themselves."""
    from nexus.agent import check_agent_parameters

    as_agent(monkeypatch, agent_file(tmp_path, params))
    extra = ["train.patience=null"] if "train.patience" in params else []
    cfg = compose([*ARGS, *extra], with_hydra=True)
    check_agent_parameters(cfg, cfg.hydra.runtime.choices)


def test_a_run_of_the_agent_whose_wandb_init_fails_stops_before_training(tmp_path):
    """Outside a sweep a W&B failure costs only W&B (test_tracking); a run of `wandb agent` without its
    W&B run would be a success the sweep never sees, so it stops before any work, exit 1."""
    run_dir, done = run_as_agent(tmp_path, "agentrun1", "logger.project=bad/name")
    assert done.returncode == 1, done.stderr[-2000:]
    (failed,) = [line for line in done.stderr.splitlines() if line.startswith("run failed:")]
    assert failed.startswith("run failed: W&B init failed for this run of sweep sweep1 (") and \
        failed.endswith("stopped before training, so that `wandb agent` marks it failed")
    assert "zero-shot" not in done.stdout and not (run_dir / "summary.json").exists()


@pytest.mark.parametrize("env, line, wandb_runs", [
    ({"WANDB_MODE": "dryrun"}, "W&B: offline (WANDB_MODE=dryrun)", 1),
    ({"WANDB_MODE": "disabled"}, "W&B: disabled (WANDB_MODE=disabled): no W&B run, local files only", 0),
    ({"WANDB_DISABLED": "true"}, "W&B: disabled (WANDB_DISABLED=true): no W&B run, local files only", 0),
    ({"WANDB_DISABLED": "True", "WANDB_MODE": "offline"},
     "W&B: disabled (WANDB_DISABLED=True): no W&B run, local files only", 0),
    ({"WANDB_DISABLED": "false", "WANDB_MODE": "offline"}, "W&B: offline (WANDB_MODE=offline)", 1),
], ids=["dryrun", "mode disabled", "disabled", "disabled beats mode", "not disabled"])
def test_wandb_mode_and_wandb_disabled_mean_what_they_mean_to_wandb(tmp_path, monkeypatch, capsys, env, line,
                                                                    wandb_runs):
    monkeypatch.delenv("WANDB_MODE")
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    run_dir = tmp_path / "run"
    assert launch(*ARGS, f"hydra.run.dir={run_dir}") == 0
    assert line in capsys.readouterr().out.splitlines()
    assert read_json(run_dir / "summary.json")["status"] == "completed"
    assert len(list((run_dir / "wandb").glob("offline-run-*"))) == wandb_runs
    assert (run_dir / "wandb").exists() == bool(wandb_runs)


@pytest.mark.parametrize("env, overrides, expected", [
    ({"WANDB_DISABLED": "true"}, ["logger.mode=offline"], ("offline", "logger.mode=offline")),  # the command line wins
    ({"WANDB_MODE": "run"}, [], ("online", "WANDB_MODE=run")),
    ({"WANDB_DISABLED": "0"}, [], ("auto", "logger.mode=auto")),
])
def test_the_command_line_decides_before_the_environment(monkeypatch, env, overrides, expected):
    from nexus.config import wandb_mode

    monkeypatch.delenv("WANDB_MODE")
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    assert wandb_mode(compose(overrides).logger) == expected


@pytest.mark.parametrize("env, message", [
    ({"WANDB_MODE": "offlne"}, "error: WANDB_MODE='offlne': choose one of auto, online, offline, disabled"),
    ({"WANDB_DISABLED": "maybe"}, "error: WANDB_DISABLED='maybe': expected true or false"),
])
def test_a_wandb_variable_wandb_would_not_understand_is_refused(tmp_path, monkeypatch, capsys, env, message):
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    assert launch(*ARGS, f"hydra.run.dir={tmp_path / 'run'}") == 2
    assert capsys.readouterr().err.startswith(message)


def test_wandbs_own_warnings_go_to_its_debug_log_not_the_console(tmp_path):
    """A user can do nothing about `Symlinked 2 files into the W&B run directory` (our wandb.save
    calls): it goes to the run's W&B debug log; the console keeps our own lines."""
    run_dir = tmp_path / "run"
    done = subprocess.run([sys.executable, "launch.py", *ARGS, f"hydra.run.dir={run_dir}"], cwd=REPO,
                          env=without_wandb_settings(HOME=str(tmp_path)), capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr[-2000:]
    assert not [line for line in done.stderr.splitlines() if line.startswith("wandb:")], done.stderr
    assert "W&B: offline (logger.mode=auto; no W&B credentials" in done.stdout
    assert "Symlinked 2 files into the W&B run directory" in (wandb_run_dir(run_dir) / "logs" / "debug.log").read_text()
    assert len(read_jsonl(run_dir / "metrics.jsonl")) == 4
