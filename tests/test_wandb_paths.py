"""Every way of starting a run reaches W&B the same way, up to the network: by hand, Hydra multirun,
nexus-sweep and `wandb agent` (its protocol emulated exactly: the environment variables and the
parameter file wandb/wandb_agent.py writes). Runs are real and offline; W&B's own reader
(`wandb leet inspect`) reads them back. No server is reachable here: where a run would go online, it
meets a port where nothing listens."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from conftest import REPO, Hold, launch, read_json, read_jsonl
from nexus import compare, sweep
from nexus.compose import compose
from nexus.config import flatten
from nexus.tracking import read_offline_run, read_offline_run_state

# One configuration, as a sweep would hand it out.
PARAMS = {"seed": {"value": 1}, "train.lr": {"value": 0.0003}, "pai": {"value": "history"}}
SWEEP = {"name": "one", "program": "launch.py", "method": "grid",
         "metric": {"name": "best/val_spearman", "goal": "maximize"}, "parameters": PARAMS,
         "command": ["${env}", "${interpreter}", "${program}", "+experiment=smoke", "logger.log_model=false",
                     "${args_no_hyphens}"]}
ARGS = ["+experiment=smoke", "logger.log_model=false", "seed=1", "train.lr=0.0003", "pai=history"]
CLOSED_PORT = "http://127.0.0.1:9"  # discard: nothing listens there


def wandb_run_dir(run_dir: Path) -> Path:
    (found,) = (run_dir / "wandb").glob("offline-run-*")
    return found


def what_wandb_keeps(run_dir: Path) -> dict:
    """The W&B config (final, after any sweep lock), group and job type of the run in `run_dir`."""
    state = read_offline_run_state(wandb_run_dir(run_dir))
    (header,) = [r["run"] for r in read_offline_run(wandb_run_dir(run_dir)) if r["type"] == "run"]
    config = {k: v for k, v in state["config"].items() if k != "_wandb"}
    return {"config": config, "group": header["run_group"], "job_type": header["job_type"], "tags": state["tags"]}


def agent_env(tmp_path: Path, run_id: str, **extra: str) -> dict:
    """What `wandb agent` sets for one run of sweep `sweep1`: ids, project, dir and the parameter file."""
    param_file = tmp_path / "wandb" / "sweep-sweep1" / f"config-{run_id}.yaml"
    param_file.parent.mkdir(parents=True, exist_ok=True)
    param_file.write_text(yaml.safe_dump(PARAMS))
    env = {k: v for k, v in os.environ.items() if not k.startswith("WANDB_") and k != "NETRC"}
    return {**env, "HOME": str(tmp_path), "WANDB_SWEEP_ID": "sweep1", "WANDB_RUN_ID": run_id, "WANDB_PROJECT": "nexus",
            "WANDB_ENTITY": "team", "WANDB_DIR": str(tmp_path), "WANDB_SWEEP_PARAM_PATH": str(param_file),
            **extra}


def run_as_agent(tmp_path: Path, run_id: str, *extra_args: str, **env: str) -> tuple[Path, subprocess.CompletedProcess]:
    """The command the agent runs for PARAMS (wandb's own builder), from the repository root; the
    agent gives no run folder, so the run lands in launch.py's default one, found afterwards."""
    runs_dir = Path(os.environ["NEXUS_HOME"]) / "runs" / "smoke"
    before = set(runs_dir.glob("*"))
    command = [*sweep.agent_command(SWEEP, PARAMS, interpreter=sys.executable), *extra_args]
    done = subprocess.run(command, cwd=REPO, env=agent_env(tmp_path, run_id, **env), capture_output=True,
                          text=True, timeout=600)
    (run_dir,) = set(runs_dir.glob("*")) - before
    return run_dir, done


@pytest.fixture(scope="module")
def one_configuration_four_ways(tmp_path_factory):
    """The default logger.mode (auto) on a machine without W&B credentials, as the agent's runs see it."""
    root = tmp_path_factory.mktemp("four_ways")
    runs = {}
    with pytest.MonkeyPatch.context() as mp:
        for name in ("WANDB_MODE", "WANDB_API_KEY", "NETRC"):
            mp.delenv(name, raising=False)
        mp.setenv("HOME", str(root))
        assert launch(*ARGS, f"hydra.run.dir={root / 'hand'}") == 0
        runs["hand"] = root / "hand"
        assert launch("-m", *ARGS, f"hydra.sweep.dir={root / 'multirun'}") == 0
        runs["multirun"] = root / "multirun" / "0"
        (root / "one.yaml").write_text(yaml.safe_dump(SWEEP))
        done = subprocess.run([sys.executable, "-m", "nexus.sweep", str(root / "one.yaml"), "--dir",
                               str(root / "sweep")], cwd=REPO, capture_output=True, text=True, timeout=600)
        assert done.returncode == 0, done.stdout[-2000:] + done.stderr[-2000:]
        runs["nexus-sweep"] = root / "sweep" / "runs" / "run-000"
        runs["agent"], done = run_as_agent(root, "agentrun1")
        assert done.returncode == 0, done.stderr[-2000:]
    return {"runs": runs, "agent_output": done}


def test_every_launch_path_gives_one_wandb_config_group_and_job_type(one_configuration_four_ways):
    kept = {path: what_wandb_keeps(run_dir) for path, run_dir in one_configuration_four_ways["runs"].items()}
    assert kept["nexus-sweep"]["config"].pop("logger.sweep") == "one"  # the sweep's mark, beside its tag
    assert "sweep:one" in kept["nexus-sweep"]["tags"]
    for path in ("hand", "multirun", "agent"):
        assert kept[path]["config"].pop("logger.sweep") is None
    for path, what in kept.items():
        assert what["config"] == kept["hand"]["config"], path
        assert (what["group"], what["job_type"]) == (kept["hand"]["group"], "dendritic"), path
    # flat dotted keys of the resolved config, and each group's option under the group's own name
    config = kept["agent"]["config"]
    summary = read_json(one_configuration_four_ways["runs"]["agent"] / "summary.json")
    resolved = flatten(summary["config"])
    del resolved["logger.sweep"]  # popped from `config` above
    assert {k: v for k, v in config.items() if k in resolved} == resolved
    assert {k: config[k] for k in set(config) - set(resolved)} == \
        {"model": "minilm", "data": "stsb", "pai": "history", "train": "default", "logger": "wandb"}
    assert (config["pai"], config["pai.mode"], config["pai.n_epochs_to_switch"]) == ("history", "history", 1)
    assert (config["train.lr"], config["seed"], config["experiment"], config["model"]) == (0.0003, 1, "smoke", "minilm")
    # the group is the configuration without the seed: the one nexus-compare groups by
    assert kept["hand"]["group"].endswith(summary["configuration_id"])


def test_an_agent_run_without_credentials_says_the_server_will_not_see_it(one_configuration_four_ways):
    done = one_configuration_four_ways["agent_output"]
    assert "W&B: offline (logger.mode=auto; no W&B credentials" in done.stdout
    warnings = [line for line in done.stderr.splitlines() if line.startswith("warning:")]
    assert warnings == ["warning: W&B sweep sweep1 will not see this run: it is logged offline; upload it "
                        "later with `nexus-publish` or `wandb sync`"]


def test_logger_mode_defaults_to_auto(monkeypatch):
    monkeypatch.delenv("WANDB_MODE", raising=False)
    assert compose().logger.mode == "auto"
    assert compose(["logger.mode=offline"]).logger.mode == "offline"


def mode_chosen(tmp_path: Path, **env: str) -> str:
    """choose_mode('auto') in a fresh process whose only W&B credentials are those in `env`."""
    home = tmp_path / "home"
    home.mkdir(exist_ok=True)
    clean = {k: v for k, v in os.environ.items() if not k.startswith("WANDB_") and k != "NETRC"}
    done = subprocess.run([sys.executable, "-c", "from nexus.tracking import choose_mode; print(*choose_mode('auto'), sep='|')"],
                          cwd=REPO, env={**clean, "HOME": str(home), "WANDB_BASE_URL": CLOSED_PORT, **env},
                          capture_output=True, text=True, check=True)
    return done.stdout.strip().splitlines()[-1]


def test_auto_is_online_exactly_when_wandb_has_credentials(tmp_path):
    assert mode_chosen(tmp_path).startswith("offline|")
    assert mode_chosen(tmp_path, WANDB_API_KEY="a" * 40) == \
        "online|logger.mode=auto; credentials from WANDB_API_KEY in the environment"
    (tmp_path / "home" / ".netrc").write_text(f"machine 127.0.0.1:9\n  login user\n  password {'b' * 40}\n")
    assert mode_chosen(tmp_path) == f"online|logger.mode=auto; credentials from the .netrc entry for {CLOSED_PORT}"
    (tmp_path / "home" / ".netrc").write_text(f"machine api.example.com\n  login user\n  password {'b' * 40}\n")
    assert mode_chosen(tmp_path).startswith("offline|")  # a key for another server is no key for this one


def test_an_unreachable_server_costs_a_bounded_wait_then_the_run_logs_offline(tmp_path):
    """Credentials, but nothing listens at the base URL: the run waits logger.init_timeout, says so in
    one warning, and completes with its local files and an offline W&B run to upload later (a hang
    would run into the subprocess timeout)."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("WANDB_")}
    env.update(WANDB_API_KEY="a" * 40, WANDB_BASE_URL=CLOSED_PORT, HOME=str(tmp_path))
    done = subprocess.run([sys.executable, "launch.py", *ARGS, "logger.init_timeout=3",
                           f"hydra.run.dir={tmp_path / 'run'}"], cwd=REPO, env=env, capture_output=True,
                          text=True, timeout=600)
    assert done.returncode == 0, done.stderr[-2000:]
    assert "W&B: online (logger.mode=auto; credentials from WANDB_API_KEY in the environment)" in done.stdout
    (warning,) = [line for line in done.stderr.splitlines() if line.startswith("warning:")]
    assert warning.startswith(f"warning: W&B server {CLOSED_PORT} did not answer within logger.init_timeout=3 s; "
                              "logging offline instead")
    assert read_json(tmp_path / "run" / "summary.json")["status"] == "completed"
    state = read_offline_run_state(wandb_run_dir(tmp_path / "run"))
    assert state["summary"]["status"] == "completed" and state["config"]["train.lr"] == 0.0003


def test_compare_reads_wandb_runs_as_it_reads_run_folders(tmp_path):
    """The same runs, compared from their folders and from what W&B recorded (offline runs read back
    with wandb's reader): the same groups, baselines, seeds and paired differences."""
    assert launch("-m", "+experiment=smoke", "logger.log_model=false", "seed=0,1,2", "pai=disabled,every_epoch",
                  f"hydra.sweep.dir={tmp_path / 'runs'}") == 0
    from_folders = compare.build_report(compare.load_folders([str(tmp_path / "runs")]), tmp_path / "a", None)
    from_wandb = compare.build_report(compare.load_wandb_runs(str(tmp_path / "runs")), tmp_path / "b", None)
    assert len(from_folders) == len(from_wandb) == 1
    for local, recorded in zip(from_folders, from_wandb):
        assert (recorded.group.name, recorded.baseline.name) == (local.group.name, local.baseline.name)
        assert (recorded.seeds, recorded.delta, recorded.delta_ci) == (local.seeds, local.delta, local.delta_ci)
    assert (tmp_path / "a" / "table.csv").read_text() == (tmp_path / "b" / "table.csv").read_text()


def test_a_run_resumed_inside_a_sweep_is_a_new_wandb_run_that_names_the_one_it_continues(
        tmp_path, one_configuration_four_ways):
    """W&B does not resume runs inside a sweep. An agent's run killed after epoch 1 and started
    again in its folder: the local record is exact, and W&B gets a second run, tagged `resumed`,
    naming the first and carrying every epoch, so its curves are whole."""
    run_dir, hold = tmp_path / "run", Hold(tmp_path / "hold", 1)
    command = [*sweep.agent_command(SWEEP, PARAMS, interpreter=sys.executable), f"hydra.run.dir={run_dir}"]
    first = subprocess.Popen(command, cwd=REPO, env={**agent_env(tmp_path, "killedrun"), **{
        "NEXUS_TEST_HOLD": hold.env["NEXUS_TEST_HOLD"]}}, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        hold.wait(first.pid, first)
    finally:
        first.kill()
        first.wait()
    done = subprocess.run(command, cwd=REPO, env=agent_env(tmp_path, "resumedrun"), capture_output=True,
                          text=True, timeout=600)
    assert done.returncode == 0, done.stderr[-2000:]
    reference = one_configuration_four_ways["runs"]["agent"]
    metrics = read_jsonl(run_dir / "metrics.jsonl")
    assert [{k: v for k, v in r.items() if k != "time/epoch_s"} for r in metrics] == \
        [{k: v for k, v in r.items() if k != "time/epoch_s"} for r in read_jsonl(reference / "metrics.jsonl")]
    resumed = next(d for d in (run_dir / "wandb").glob("offline-run-*") if d.name.endswith("-resumedrun"))
    state = read_offline_run_state(resumed)
    assert "resumed" in state["tags"] and state["summary"]["resumed_from"] == "killedrun"
    assert state["notes"] == "continues W&B run killedrun from its checkpoint"
    epochs = [r["history"]["item"] for r in read_offline_run(resumed)
              if r["type"] == "history" and "train/loss" in r["history"]["item"]]
    assert [(h["epoch"], h["val/spearman"]) for h in epochs] == [(r["epoch"], r["val/spearman"]) for r in metrics]
