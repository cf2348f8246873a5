"""Sweeps, for real on smoke data: the shipped sweep files, the command `wandb agent` runs, the
offline runner (parallel, runs forked or fresh processes, killed and restarted, logged to one W&B
group), and Hydra multirun through its launchers. Nothing of wandb, sweeps or Hydra is mocked.

Runners that fork their runs are started as processes of their own, as a user starts one: this
test process has run torch, and a child forked after torch's OpenMP threads started can hang."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from pathlib import Path
from typing import Callable

import pytest
import yaml

from conftest import REPO, Hold, launch, read_json, read_jsonl, wait_for, without_times
from nexus import sweep
from nexus.compose import compose
from nexus.run_folder import read_summary
from nexus.sweep.placement import Placement, visible_gpus
from nexus.sweep.processes import cuda_fails_in_fork
from nexus.sweep.sweep_file import check_sweep, program_args
from nexus.tracking import read_offline_run

SWEEPS = REPO / "sweeps"
# Tests that play a GPU machine on one without NVIDIA's cards (CUDA_VISIBLE_DEVICES naming cards that
# are not there): where nvidia-smi lists real ones, this process may have met CUDA with them hidden
# (conftest), and tests/test_gpu.py runs the real thing.
pretends_no_nvidia_cards = pytest.mark.skipif(bool(visible_gpus({})), reason="plays a GPU machine on one without "
                                              "NVIDIA cards; this machine has them (tests/test_gpu.py runs them)")
SMOKE_SETS = {(seed, pai) for seed in (0, 1) for pai in ("disabled", "history")}  # sweeps/smoke.yaml


def load(name: str) -> dict:
    return yaml.safe_load((SWEEPS / name).read_text())


def completed_runs(folder: Path) -> dict[tuple, list[Path]]:
    """Run folders under `folder` whose summary.json says completed, by (seed, pai)."""
    runs: dict[tuple, list[Path]] = {}
    for path in sorted(folder.rglob("summary.json")):
        summary = read_json(path)
        if summary["status"] == "completed":
            runs.setdefault((summary["seed"], summary["pai"]), []).append(path.parent)
    return runs


@pytest.fixture(scope="module", autouse=True)
def warm_cache(tmp_path_factory):
    """The first smoke run encodes the sentences; later runs, in any process, read the cache."""
    assert launch("+experiment=smoke", "logger=none", "pai=disabled",
                  f"hydra.run.dir={tmp_path_factory.mktemp('warm') / 'run'}") == 0


# ---------------------------------------------------------------------------------------------
# The sweep files and the agent's command
# ---------------------------------------------------------------------------------------------

@pytest.mark.parametrize("name", ["pai.yaml", "pai_bayes.yaml", "smoke.yaml", "param_matched.yaml", "finetune.yaml",
                                  "pai_recommended.yaml"])
def test_shipped_sweep_files_pass_the_sweeps_schema(name):
    sweeps = sweep.import_sweeps()
    config = load(name)
    assert sweeps.schema_violations_from_proposed_config(config) == []
    assert sweeps.SweepConfig(config)["metric"] == {"name": "best/val_spearman", "goal": "maximize"}
    assert sweeps.next_run(config, []) is not None  # the engine can start it offline


def grid_runs(config: dict) -> list:
    """Every run W&B's engine proposes for a grid sweep, in its order."""
    sweeps, runs = sweep.import_sweeps(), []
    while (run := sweeps.next_run(config, runs)) is not None:
        runs.append(run)
    return runs


def test_pai_sweep_is_a_grid_of_36_distinct_parameter_sets():
    config = load("pai.yaml")
    runs = grid_runs(config)
    sets = {(r.config["seed"]["value"], r.config["train.lr"]["value"], r.config["pai"]["value"]) for r in runs}
    assert len(runs) == len(sets) == 36
    assert {s[0] for s in sets} == {0, 1, 2}
    assert {s[1] for s in sets} == {3e-5, 1e-4, 3e-4}
    assert {s[2] for s in sets} == {"disabled", "history", "fixed", "every_epoch"}
    assert sweep.agent_command(config, runs[0].config) == [
        "/usr/bin/env", "python", "launch.py", "+experiment=dendritic", "pai=disabled", "seed=0", "train.lr=3e-05"]


def test_param_matched_sweep_is_a_grid_of_27_plain_adapters_matching_1_2_3_dendrites(tmp_path, monkeypatch):
    """The same seeds and learning rates as pai.yaml, plain MLP adapters sized like the Dense
    adapter with 1, 2 and 3 dendrites; the runner's checks (every value through preflight) pass."""
    config = load("param_matched.yaml")
    runs = grid_runs(config)
    sets = {(r.config["seed"]["value"], r.config["train.lr"]["value"], r.config["model.adapter.match_params"]["value"])
            for r in runs}
    assert len(runs) == len(sets) == 27
    pai = load("pai.yaml")["parameters"]
    assert {s[0] for s in sets} == set(pai["seed"]["values"])
    assert {s[1] for s in sets} == set(pai["train.lr"]["values"])
    assert {s[2] for s in sets} == {296064, 445440, 595584}
    assert sweep.agent_command(config, runs[0].config) == [
        "/usr/bin/env", "python", "launch.py", "+experiment=baseline", "model.adapter=mlp", "train.max_epochs=40",
        "model.adapter.match_params=296064", "seed=0", "train.lr=3e-05"]
    monkeypatch.chdir(REPO)  # where `wandb agent` and nexus-sweep run it
    check_sweep(config, [], tmp_path)


def test_finetune_sweep_is_a_grid_of_36_fine_tuning_runs_whose_dendrites_can_arrive_in_4_epochs(monkeypatch):
    config = load("finetune.yaml")
    runs = grid_runs(config)
    sets = {(r.config["seed"]["value"], r.config["train.backbone_lr"]["value"], r.config["pai"]["value"])
            for r in runs}
    assert len(runs) == len(sets) == 36
    assert {s[1] for s in sets} == {1e-5, 2e-5, 5e-5}
    assert {s[2] for s in sets} == {"disabled", "history", "fixed", "every_epoch"}
    assert sweep.agent_command(config, runs[0].config) == [
        "/usr/bin/env", "python", "launch.py", "+experiment=finetune", "pai.n_epochs_to_switch=1",
        "pai.fixed_switch_num=1", "pai.first_fixed_switch_num=1", "pai=disabled", "seed=0", "train.backbone_lr=1e-05"]
    monkeypatch.chdir(REPO)  # the runner's checks accept every value (launch.py's preflight of each)
    check_sweep(config, [], REPO / "unused")
    cfg = compose(program_args(sweep.agent_command(config, {"pai": {"value": "fixed"}}), config))
    assert (cfg.model.freeze_backbone, cfg.train.max_epochs, cfg.pai.mode) == (False, 4, "fixed")
    assert cfg.pai.first_fixed_switch_num < cfg.train.max_epochs and cfg.pai.n_epochs_to_switch < cfg.train.max_epochs


def test_the_agents_own_command_runs_a_smoke_run(nexus_home, tmp_path, monkeypatch):
    """wandb's Agent, driven without a server, starts the run; nexus.sweep builds the same argv."""
    from wandb.sdk.launch.sweeps.utils import create_sweep_command_args
    from wandb.wandb_agent import Agent

    config = load("smoke.yaml")
    params = {"pai": {"value": "disabled"}, "seed": {"value": 1}}
    assert create_sweep_command_args({"args": params})["args_no_hyphens"] == ["pai=disabled", "seed=1"]
    monkeypatch.chdir(REPO)  # where `wandb agent` runs: `program` is relative to it
    for name in ("WANDB_DIR", "WANDB_RUN_ID", "WANDB_SWEEP_PARAM_PATH"):  # the agent sets these; undone after
        monkeypatch.setenv(name, str(tmp_path))
    runs_dir = nexus_home / "runs" / "smoke"
    before = set(runs_dir.glob("*"))

    agent = Agent(api=None, queue=None)
    agent._sweep_command = config["command"]  # what Agent.run takes from the sweep's config
    agent._command_run({"run_id": "agent0001", "program": config["program"], "args": params})
    process = agent._run_processes["agent0001"]
    assert process.wait(timeout=300) == 0
    assert process._popen.args == sweep.agent_command(config, params)

    (run_dir,) = set(runs_dir.glob("*")) - before  # the agent adds no hydra.run.dir: launch.py's default
    summary = read_json(run_dir / "summary.json")
    assert summary["status"] == "completed"
    assert (summary["seed"], summary["pai"], summary["experiment"]) == (1, "disabled", "smoke")


# ---------------------------------------------------------------------------------------------
# The offline runner: parallel, killed midway and restarted, logged to one W&B group
# ---------------------------------------------------------------------------------------------

def start_runner(args: list[str], log: Path, env: dict | None = None) -> subprocess.Popen:
    """`python -m nexus.sweep ARGS` from the repository root, its output in `log`."""
    with open(log, "w") as out:
        return subprocess.Popen([sys.executable, "-m", "nexus.sweep", *args], cwd=REPO, stdout=out,
                                stderr=subprocess.STDOUT, env=env)


def sweep_state(folder: Path) -> dict:
    return json.loads((folder / "sweep.json").read_text()) if (folder / "sweep.json").is_file() else {}


def held_run(folder: Path, hold: Hold, runner: subprocess.Popen, which: Callable[[dict], bool]) -> dict:
    """The run that `which` picks in the state of the sweep in `folder`, once the state says it is
    running and the run waits at the hold."""
    def find():
        return next((run for run in sweep_state(folder).get("runs", [])
                     if which(run) and run["state"] == "running" and run["pid"] in hold.held()), None)
    return wait_for(find, "a run to wait at the hold", runner)


def named(name: str) -> Callable[[dict], bool]:
    return lambda run: run["name"] == name


@pytest.fixture(scope="module")
def restarted_sweep(tmp_path_factory):
    """sweeps/smoke.yaml offline with 2 workers (runs forked: the default), SIGKILLed once a run
    has finished and two more are in flight, then the same command again to finish it.

    The first runner's runs wait after epoch 0 until the test lets them go on (NEXUS_TEST_HOLD):
    run-000 is let go and finishes; the kill comes while run-001 and run-002 wait, so both were
    in flight and live on as orphans (as runs longer than a smoke run would) until the second
    runner stops them and lets them go on from their checkpoints. That runner's own runs are not
    held."""
    folder = tmp_path_factory.mktemp("sweep") / "smoke"
    hold = Hold(folder.parent / "hold", epoch=0)
    args = ["sweeps/smoke.yaml", "--workers", "2", "--dir", str(folder), "--override", "logger.log_model=false"]
    try:
        first = start_runner(args, folder.parent / "first.log", hold.env)
        try:
            hold.release(held_run(folder, hold, first, named("run-000"))["pid"])
            held_run(folder, hold, first, named("run-001"))
            held_run(folder, hold, first, named("run-002"))  # started once run-000 had finished
        finally:
            first.kill()
            first.wait()
        killed_state = sweep_state(folder)
        orphans = []
        for run in (sweep.SweepRun(**r) for r in killed_state["runs"] if r["state"] == "running"):
            run_dir = folder / "runs" / run.folder_name
            orphans.append({"run": run, "run_dir": run_dir, "alive": sweep.orphan_alive(run, run_dir),
                            "cmdline": Path(f"/proc/{run.pid}/cmdline").read_bytes()})
        second = start_runner(args, folder.parent / "second.log")
        second.wait(timeout=600)
    finally:
        hold.release_all()  # orphans the second runner did not stop (it failed) end on their own
    return {"folder": folder, "killed_state": killed_state, "orphans": orphans, "code": second.returncode,
            "first_output": (folder.parent / "first.log").read_text(),
            "output": (folder.parent / "second.log").read_text(), "state": sweep_state(folder)}


def test_offline_sweep_tags_every_run_and_groups_it_by_configuration(restarted_sweep):
    assert restarted_sweep["code"] == 0, restarted_sweep["output"][-3000:]
    runs = restarted_sweep["state"]["runs"]
    assert len(runs) == 4 and all(run["state"] == "completed" for run in runs)
    groups = {}
    for run in runs:
        run_dir = restarted_sweep["folder"] / "runs" / sweep.SweepRun(**run).folder_name
        assert run["command"][-2:] == [f"hydra.run.dir='{run_dir}'", "++logger.sweep='smoke'"]
        assert "logger.log_model=false" in run["command"]
        # a run resumed after the kill has its killed attempt's W&B run (cut off mid-write, which
        # W&B's reader may refuse) beside the one that finished: exactly one finished
        finished, seen = [], {}
        for attempt in sorted((run_dir / "wandb").glob("offline-run-*")):
            try:
                records = read_offline_run(attempt)
            except subprocess.CalledProcessError as err:
                seen[attempt.name] = err.stderr[-500:]
                continue
            seen[attempt.name] = sorted({r["type"] for r in records})
            if any(r["type"] == "exit" for r in records):
                finished.append(records)
        assert len(finished) == 1, (run["name"], seen)
        (records,) = finished
        (header,) = [r["run"] for r in records if r["type"] == "run"]
        assert "sweep:smoke" in header["tags"]
        groups.setdefault(run["params"]["pai"]["value"], set()).add(header["run_group"])
        assert [r["exit"]["exit_code"] for r in records if r["type"] == "exit"] == [0]
    # seeds of one configuration share a group; the two configurations do not
    assert {pai: len(found) for pai, found in groups.items()} == {"disabled": 1, "history": 1}
    assert groups["disabled"] != groups["history"]
    assert "run-000" in restarted_sweep["output"] and "best/val_spearman" in restarted_sweep["output"]


def test_killed_sweep_runs_each_parameter_set_exactly_once(restarted_sweep):
    runs = completed_runs(restarted_sweep["folder"] / "runs")
    assert set(runs) == SMOKE_SETS
    assert all(len(folders) == 1 for folders in runs.values()), runs
    assert sorted(path.name for path in (restarted_sweep["folder"] / "runs").iterdir()) == \
        ["run-000", "run-001", "run-002", "run-003"]  # no second folder for any of them


def test_runs_in_flight_at_the_kill_go_on_from_their_checkpoints_in_their_own_folders(restarted_sweep, tmp_path):
    """Each ends as the same run never interrupted would (times aside): run here in one piece,
    with the threads the sweep's runs had (2 workers: cores/2 each)."""
    import torch

    in_flight = [run for run in restarted_sweep["killed_state"]["runs"] if run["state"] == "running"]
    assert {run["name"] for run in in_flight} == {"run-001", "run-002"}
    final = {run["name"]: run for run in restarted_sweep["state"]["runs"]}
    threads = torch.get_num_threads()
    torch.set_num_threads(max(1, (os.cpu_count() or 1) // 2))
    try:
        for run in in_flight:
            run_dir = restarted_sweep["folder"] / "runs" / run["name"]
            assert (final[run["name"]]["state"], final[run["name"]]["attempt"]) == ("completed", 1)
            assert "resuming after epoch 0" in (run_dir / "stdout.log").read_text()
            values = [f"{key}={p['value']}" for key, p in run["params"].items()]
            assert launch("+experiment=smoke", "logger=none", *values, f"hydra.run.dir={tmp_path / run['name']}") == 0
            assert without_times(read_jsonl(run_dir / "metrics.jsonl")) == \
                without_times(read_jsonl(tmp_path / run["name"] / "metrics.jsonl")), run["name"]
            assert read_jsonl(run_dir / "events.jsonl") == read_jsonl(tmp_path / run["name"] / "events.jsonl")
    finally:
        torch.set_num_threads(threads)


def test_runs_of_launch_py_are_forked_by_default(restarted_sweep):
    for output in (restarted_sweep["first_output"], restarted_sweep["output"]):
        assert output.splitlines()[0] == "sweep sweeps/smoke.yaml: each run forked from this runner, 2 at a time"
    assert "Building dendrites" not in restarted_sweep["output"]  # perforatedai's import banner stays out
    for run in restarted_sweep["state"]["runs"]:  # the logs are the run's own
        run_dir = restarted_sweep["folder"] / "runs" / sweep.SweepRun(**run).folder_name
        assert "done in" in (run_dir / "stdout.log").read_text()
        assert (run_dir / "launch.log").is_file()  # Hydra's job log, named after the program as before


def test_orphans_are_known_by_pid_and_start_time_and_stopped(restarted_sweep):
    orphans = restarted_sweep["orphans"]
    assert orphans, "the kill should have left a run in flight"
    for orphan in orphans:
        run, run_dir = orphan["run"], orphan["run_dir"]
        assert orphan["alive"] and run.pid_start is not None
        # A forked run's command line is its runner's: it does not name the run's folder.
        assert b"nexus.sweep" in orphan["cmdline"] and str(run_dir).encode() not in orphan["cmdline"]
        assert f"{run.folder_name}: stopping the run left over by the interrupted runner (pid {run.pid})" \
            in restarted_sweep["output"]
        assert sweep.process_start(run.pid) != run.pid_start  # stopped (the pid may be someone else's now)
        assert not sweep.orphan_alive(run, run_dir)
    # A pid in use by another process (here: this one) is not the run's: its start time differs.
    run = orphans[0]["run"]
    me = sweep.SweepRun(name=run.name, params=run.params, pid=os.getpid(), pid_start=run.pid_start)
    assert not sweep.orphan_alive(me, orphans[0]["run_dir"])
    me.pid_start = sweep.process_start(os.getpid())
    assert sweep.orphan_alive(me, orphans[0]["run_dir"])


def test_an_older_state_file_still_loads(restarted_sweep, tmp_path, monkeypatch, capsys):
    """A state file written before runs recorded their start time (`pid_start`) and when a
    completed run's state was `finished`."""
    state = restarted_sweep["state"]
    (tmp_path / "sweep.json").write_text(json.dumps(
        {**state, "runs": [{**{k: v for k, v in run.items() if k != "pid_start"}, "state": "finished"}
                           for run in state["runs"]]}))
    monkeypatch.chdir(REPO)  # every run is done: nothing starts, so forking from this process is moot
    assert sweep.main(["sweeps/smoke.yaml", "--dir", str(tmp_path), "--override", "logger.log_model=false"]) == 0
    assert [run["state"] for run in sweep_state(tmp_path)["runs"]] == ["completed"] * 4
    assert "run-000" in capsys.readouterr().out


def test_no_fork_gives_the_same_run_as_a_forked_one(restarted_sweep, tmp_path):
    """--no-fork: the run is its command line in a fresh process, and its results are the same."""
    config = {**load("smoke.yaml"), "parameters": {"seed": {"value": 0}, "pai": {"value": "history"}}}
    (tmp_path / "one.yaml").write_text(yaml.safe_dump(config))
    args = [str(tmp_path / "one.yaml"), "--no-fork", "--workers", "2", "--dir", str(tmp_path / "sweep"),
            "--override", "logger.log_model=false"]
    runner = start_runner(args, tmp_path / "runner.log")
    assert runner.wait(timeout=600) == 0, (tmp_path / "runner.log").read_text()[-3000:]
    output = (tmp_path / "runner.log").read_text()
    assert output.splitlines()[0].endswith("each run a fresh process, 2 at a time")  # 2: one thread, as above
    (run,) = sweep_state(tmp_path / "sweep")["runs"]
    assert run["command"][:3] == ["/usr/bin/env", sys.executable, "launch.py"]
    fresh = tmp_path / "sweep" / "runs" / "run-000"
    (forked,) = completed_runs(restarted_sweep["folder"] / "runs")[(0, "history")]
    assert_same_runs({(0, "history"): [fresh]}, {(0, "history"): [forked]})
    assert without_times([read_summary(fresh)]) == without_times([read_summary(forked)])


def test_where_gpus_are_seen_runs_are_forked_when_a_forked_probe_can_use_cuda(tmp_path):
    """Where runs may use a GPU, a forked probe first asks whether CUDA starts in a child of the
    runner (it cannot where the runner's imports started it); the runs are forked only if so, or
    where the probe sees no GPU at all, as on this CPU machine that the runner believes has GPU 0
    (CUDA_VISIBLE_DEVICES=0): the run trains on the CPU."""
    config = {**load("smoke.yaml"), "parameters": {"seed": {"value": 0}, "pai": {"value": "disabled"}}}
    (tmp_path / "one.yaml").write_text(yaml.safe_dump(config))
    args = [str(tmp_path / "one.yaml"), "--dir", str(tmp_path / "sweep"), "--override", "logger=none"]
    runner = start_runner(args, tmp_path / "runner.log", {**os.environ, "CUDA_VISIBLE_DEVICES": "0"})
    assert runner.wait(timeout=600) == 0, (tmp_path / "runner.log").read_text()[-3000:]
    assert (tmp_path / "runner.log").read_text().splitlines()[0].endswith(
        "each run forked from this runner, 1 at a time")
    (run,) = sweep_state(tmp_path / "sweep")["runs"]
    assert run["state"] == "completed"


@pretends_no_nvidia_cards
def test_the_cuda_probe_reports_why_a_forked_child_cannot_start_cuda(monkeypatch):
    """The probe's answer, from a real forked child: None where the child sees no GPU (it trains
    on the CPU); after torch's default availability check ran in this process (what the runner's
    imports did on the H200), CUDA's refusal in one line, which the runner puts in its first line
    before starting every run fresh."""
    import torch

    env = {**os.environ, "CUDA_VISIBLE_DEVICES": "0"}
    assert cuda_fails_in_fork(env) is None
    torch._C._cuda_getDeviceCount()  # torch.cuda.is_available() without PYTORCH_NVML_BASED_CUDA_CHECK
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)  # a GPU, as there (the fork inherits it)
    reason = cuda_fails_in_fork(env)
    assert reason.startswith("Cannot re-initialize CUDA in forked subprocess") and "\n" not in reason


LR_SWEEP = """name: lr
program: launch.py
method: grid
metric: {name: best/val_spearman, goal: maximize}
parameters: {train.lr: {values: [1.0e+30, 1.0e-4, 3.0e-4]}}
command: ['${env}', '${interpreter}', '${program}', +experiment=smoke, logger=none, '${args_no_hyphens}']
"""


def test_a_forked_run_that_fails_or_is_killed_is_recorded_as_failed_and_retried_on_request(tmp_path):
    """lr 1e30 diverges (the run records the failure and exits 1); the lr 1e-4 run is SIGKILLed
    mid-run (by the test, as the OOM killer would); the third completes. Runs wait after epoch 0
    until the test lets them go on, so the kill lands mid-run. Then --retry-failed."""
    (tmp_path / "lr.yaml").write_text(LR_SWEEP)
    folder = tmp_path / "sweep"
    hold = Hold(tmp_path / "hold", epoch=0)
    runner = start_runner([str(tmp_path / "lr.yaml"), "--dir", str(folder)], tmp_path / "runner.log", hold.env)
    try:
        pid = held_run(folder, hold, runner, lambda run: run["params"]["train.lr"]["value"] == 1e-4)["pid"]
        os.killpg(pid, signal.SIGKILL)
        hold.release(pid)  # its mark only: no later run may find it under a reused pid
        hold.release(held_run(folder, hold, runner, lambda run: run["params"]["train.lr"]["value"] == 3e-4)["pid"])
        assert runner.wait(timeout=300) == 1
    finally:
        runner.kill()
        hold.release_all()
    output = (tmp_path / "runner.log").read_text()
    assert "each run forked from this runner" in output.splitlines()[0]
    runs = {run["params"]["train.lr"]["value"]: run for run in sweep_state(folder)["runs"]}
    diverged, killed, ok = runs[1e30], runs[1e-4], runs[3e-4]
    assert (diverged["state"], diverged["exit_code"], diverged["summary"]["status"]) == ("failed", 1, "failed")
    assert diverged["reason"] == sweep.last_line(folder / "runs" / diverged["name"] / "stderr.log")
    assert (killed["state"], killed["exit_code"]) == ("failed", -signal.SIGKILL)
    assert killed["summary"].get("status") != "completed"
    assert (ok["state"], ok["exit_code"], ok["summary"]["status"]) == ("completed", 0, "completed")
    assert all(run["pid"] is None and run["pid_start"] is None for run in runs.values())
    assert f"{killed['name']}: failed" in output and f"{ok['name']}: completed" in output

    # The same command again: nothing to do. With --retry-failed: the two failed parameter sets
    # run again, each from the start in a fresh folder; the completed run is left alone.
    again = start_runner([str(tmp_path / "lr.yaml"), "--dir", str(folder)], tmp_path / "again.log")
    assert again.wait(timeout=300) == 1
    assert "started" not in (tmp_path / "again.log").read_text()
    retry = start_runner([str(tmp_path / "lr.yaml"), "--dir", str(folder), "--retry-failed"], tmp_path / "retry.log")
    assert retry.wait(timeout=300) == 1  # lr 1e30 fails again
    retried = {run["params"]["train.lr"]["value"]: run for run in sweep_state(folder)["runs"]}
    assert (retried[1e30]["state"], retried[1e30]["attempt"]) == ("failed", 2)
    assert (retried[1e-4]["state"], retried[1e-4]["attempt"]) == ("completed", 2)
    assert retried[3e-4] == ok
    started = [line for line in (tmp_path / "retry.log").read_text().splitlines() if ": started" in line]
    assert sorted(line.split(":")[0] for line in started) == sorted(
        f"{runs[lr]['name']}-attempt2" for lr in (1e30, 1e-4))
    for lr in (1e30, 1e-4):  # the failed attempt's folder is kept as it ended
        assert (folder / "runs" / runs[lr]["name"] / "summary.json").is_file()
        assert "resuming" not in (folder / "runs" / f"{runs[lr]['name']}-attempt2" / "stdout.log").read_text()


JOB = """import sys
if "mode=fail" in sys.argv:
    sys.exit("boom: " + " ".join(sys.argv[1:3]))
"""


def test_a_failing_run_is_recorded_with_its_last_stderr_line_and_the_sweep_goes_on(tmp_path, monkeypatch, capsys):
    """Any program, not only launch.py: a tiny script fails for one parameter value."""
    (tmp_path / "job.py").write_text(JOB)
    (tmp_path / "fail.yaml").write_text(
        "name: fail\nprogram: job.py\nmethod: grid\nmetric: {name: best/val_spearman, goal: maximize}\n"
        "parameters: {mode: {values: [fail, ok]}}\n"
        "command: ['${env}', '${interpreter}', '${program}', '${args_no_hyphens}']\n")
    monkeypatch.chdir(tmp_path)
    assert sweep.main(["fail.yaml", "--dir", "sweep"]) == 1
    runs = {run["params"]["mode"]["value"]: run for run in read_json(tmp_path / "sweep/sweep.json")["runs"]}
    assert runs["fail"]["state"] == "failed" and runs["fail"]["exit_code"] == 1
    assert runs["fail"]["reason"] == "boom: mode=fail hydra.run.dir=" + repr(str(tmp_path / "sweep/runs/run-000"))
    assert runs["ok"]["state"] == "completed" and runs["ok"]["exit_code"] == 0
    assert "boom: mode=fail" in capsys.readouterr().out  # in the table


# ---------------------------------------------------------------------------------------------
# GPU placement and seeded proposals
# ---------------------------------------------------------------------------------------------

ENV_JOB = """import json, os, sys
run_dir = next(a.split("=", 1)[1].strip("'") for a in sys.argv if a.startswith("hydra.run.dir="))
keys = ("CUDA_VISIBLE_DEVICES", "OMP_NUM_THREADS")
with open(os.path.join(run_dir, "env.json"), "w") as f:
    json.dump({key: os.environ.get(key) for key in keys}, f)
"""


def env_sweep(folder: Path, n: int) -> None:
    """A sweep of `n` runs of a tiny program that records the environment the runner gave it."""
    (folder / "env_job.py").write_text(ENV_JOB)
    (folder / "env.yaml").write_text(
        "name: env\nprogram: env_job.py\nmethod: grid\nmetric: {name: best/val_spearman, goal: maximize}\n"
        f"parameters: {{n: {{values: {list(range(n))}}}}}\n"
        "command: ['${env}', '${interpreter}', '${program}', '${args_no_hyphens}']\n")


@pytest.mark.parametrize(("gpus", "visible", "cards"), [
    pytest.param("0,1", None, ["0", "1"], marks=pretends_no_nvidia_cards), ("all", "5,7", ["5", "7"])])
def test_each_run_gets_one_gpu_spread_evenly_and_a_share_of_the_cpu_threads(gpus, visible, cards, tmp_path,
                                                                           monkeypatch, capsys):
    """--gpus G --runs-per-gpu 2: 4 runs at once, 2 a card; GPU numbers count the cards the runner
    sees, as CUDA does (CUDA_VISIBLE_DEVICES=5,7: GPU 0 is card 5)."""
    env_sweep(tmp_path, 4)
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("OMP_NUM_THREADS", raising=False)
    if visible is None:
        monkeypatch.delenv("CUDA_VISIBLE_DEVICES", raising=False)
    else:
        monkeypatch.setenv("CUDA_VISIBLE_DEVICES", visible)
    assert sweep.main(["env.yaml", "--dir", "sweep", "--gpus", gpus, "--runs-per-gpu", "2"]) == 0
    assert capsys.readouterr().out.splitlines()[0] == (
        "sweep env.yaml: each run a fresh process, 4 at a time, "
        f"one GPU each: CUDA_VISIBLE_DEVICES={' or '.join(cards)}")
    runs = sweep_state(tmp_path / "sweep")["runs"]
    threads = str(max(1, (os.cpu_count() or 1) // 4))
    for run in runs:
        env = read_json(tmp_path / "sweep" / "runs" / run["name"] / "env.json")
        assert env == {"CUDA_VISIBLE_DEVICES": run["gpu"], "OMP_NUM_THREADS": threads}
    assert sorted(run["gpu"] for run in runs) == sorted(cards * 2)


def test_a_slot_freed_on_a_gpu_is_refilled_on_that_gpu():
    placement = Placement(workers=4, gpus=["0", "1"], threads=None)
    assert [placement.card(busy) for busy in ([], ["0"], ["0", "1"], ["0", "1", "0"])] == ["0", "1", "0", "1"]
    assert placement.card(["0", "1", "1"]) == "0" and placement.card(["1", "0", "0"]) == "1"
    assert placement.env({"A": "b"}, "1") == {"A": "b", "CUDA_VISIBLE_DEVICES": "1"}
    assert Placement(workers=1, gpus=[], threads=None).card(["0"]) is None


def test_without_gpus_the_first_line_says_runs_share_gpu_0(tmp_path, monkeypatch, capsys):
    env_sweep(tmp_path, 1)
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "0,1")  # what the runner sees: 2 GPUs
    assert sweep.main(["env.yaml", "--dir", "sweep"]) == 0
    assert capsys.readouterr().out.splitlines()[0] == (
        "sweep env.yaml: each run a fresh process, 1 at a time; "
        "2 GPUs seen, runs share GPU 0 (use --gpus)")
    (run,) = sweep_state(tmp_path / "sweep")["runs"]
    assert run["gpu"] is None
    assert read_json(tmp_path / "sweep" / "runs" / "run-000" / "env.json")["CUDA_VISIBLE_DEVICES"] == "0,1"


def proposals(sweep_file: Path, seed: int | None, n: int, tmp_path: Path) -> list[dict]:
    """The first `n` parameter sets a runner with --seed `seed` proposes (none of them run)."""
    config = sweep.load_sweep_file(sweep_file)
    runner = sweep.SweepRunner(tmp_path, sweep_file, config, [], Placement(1, [], None), seed=seed)
    sets = []
    for _ in range(n):
        run = runner.next_run()
        run.state = "running"  # as once started: the engine proposes the next one
        sets.append(run.params)
    return sets


@pytest.mark.parametrize("name", ["pai_bayes.yaml", "random"])
def test_the_same_seed_proposes_the_same_parameter_sets(name, tmp_path):
    sweep_file = SWEEPS / name
    if name == "random":
        sweep_file = tmp_path / "random.yaml"
        sweep_file.write_text(yaml.safe_dump({**load("pai_bayes.yaml"), "method": "random"}))
    first = proposals(sweep_file, 7, 3, tmp_path)
    assert proposals(sweep_file, 7, 3, tmp_path) == first
    assert proposals(sweep_file, 8, 3, tmp_path) != first
    assert len({json.dumps(params, sort_keys=True) for params in first}) == 3


# ---------------------------------------------------------------------------------------------
# Hydra multirun: in one process, and through the joblib and submitit launchers
# ---------------------------------------------------------------------------------------------

MULTIRUN = ["+experiment=smoke", "logger=none", "seed=0", "pai=disabled,history"]


@pytest.fixture(scope="module")
def in_process_multirun(tmp_path_factory):
    """With the torch threads of the sweep's runs (2 workers: cores/2 each), as below."""
    import torch

    folder = tmp_path_factory.mktemp("multirun")
    threads = torch.get_num_threads()
    torch.set_num_threads(max(1, (os.cpu_count() or 1) // 2))
    try:
        assert launch("-m", *MULTIRUN, f"hydra.sweep.dir={folder}") == 0
    finally:
        torch.set_num_threads(threads)
    return completed_runs(folder)


def assert_same_runs(runs: dict, reference: dict) -> None:
    for key, (folder,) in runs.items():
        (expected,) = reference[key]
        assert without_times(read_jsonl(folder / "metrics.jsonl")) == \
            without_times(read_jsonl(expected / "metrics.jsonl")), key
        assert read_jsonl(folder / "events.jsonl") == read_jsonl(expected / "events.jsonl"), key


def test_multirun_in_one_process_equals_the_same_runs_in_separate_processes(in_process_multirun, restarted_sweep):
    """PAI's globals do not leak between jobs: the basic launcher's jobs (one process) equal the
    sweep's runs of the same seed and pai (a process each)."""
    assert set(in_process_multirun) == {(0, "disabled"), (0, "history")}
    assert_same_runs(in_process_multirun, completed_runs(restarted_sweep["folder"] / "runs"))


# joblib is marked slow (half a minute more): `-m slow` runs it.
@pytest.mark.parametrize("launcher", ["submitit_local", pytest.param("joblib", marks=pytest.mark.slow)])
def test_parallel_launchers_run_a_two_job_multirun(launcher, restarted_sweep, tmp_path):
    """Each job in a process of its own (the baseline: PAI's globals are covered above), with the
    threads of the sweep's runs (2 workers: cores/2 each), since the last bit of a float32 metric
    can depend on the thread count."""
    threads = str(max(1, (os.cpu_count() or 1) // 2))
    done = subprocess.run([sys.executable, "launch.py", "-m", "+experiment=smoke", "logger=none", "seed=0,1",
                           "pai=disabled", f"hydra/launcher={launcher}", f"hydra.sweep.dir={tmp_path}"],
                          cwd=REPO, capture_output=True, text=True, timeout=600,
                          env={**os.environ, "OMP_NUM_THREADS": threads})
    assert done.returncode == 0, done.stderr[-2000:]
    runs = completed_runs(tmp_path)
    assert set(runs) == {(0, "disabled"), (1, "disabled")}
    assert_same_runs(runs, completed_runs(restarted_sweep["folder"] / "runs"))


def test_slurm_preset_composes_with_its_settings():
    cfg = compose(["+experiment=smoke", "hydra/launcher=slurm", "hydra.launcher.partition=gpu",
                   "hydra.launcher.gpus_per_node=1", "hydra.launcher.array_parallelism=4"], with_hydra=True)
    launcher = cfg.hydra.launcher
    assert launcher._target_.endswith("SlurmLauncher")
    assert (launcher.partition, launcher.gpus_per_node, launcher.array_parallelism, launcher.timeout_min) == \
        ("gpu", 1, 4, 60)


# ---------------------------------------------------------------------------------------------
# Bad sweep files: refused before any run, one line naming the key, exit code 2
# ---------------------------------------------------------------------------------------------

SMOKE_COMMAND = "command: ['${env}', '${interpreter}', '${program}', +experiment=smoke, '${args_no_hyphens}']\n"
BAD_SWEEPS = {
    "schema": ("method: grids\nprogram: launch.py\nparameters: {seed: {values: [0]}}\n", "method"),
    "unknown parameter": ("method: grid\nprogram: launch.py\nparameters: {train.lrr: {values: [0.1]}}\n"
                          + SMOKE_COMMAND, "train.lrr"),
    "yaml boolean": ("method: grid\nprogram: launch.py\nparameters: {pai: {values: [off]}}\n"
                     + SMOKE_COMMAND, "parameters.pai"),
}


@pytest.mark.parametrize("case", BAD_SWEEPS)
def test_bad_sweep_file_is_refused_in_one_line(case, tmp_path, capsys, monkeypatch):
    text, key = BAD_SWEEPS[case]
    (tmp_path / "bad.yaml").write_text(text)
    monkeypatch.chdir(REPO)
    assert sweep.main([str(tmp_path / "bad.yaml"), "--dir", str(tmp_path / "sweep")]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("error: ") and key in err, err
    assert "\n" not in err and "Traceback" not in err
    assert not (tmp_path / "sweep").exists()


BAD_ARGUMENTS = {
    "gpus not numbers": (["--gpus", "x"], "--gpus"),
    "runs per gpu 0": (["--gpus", "0", "--runs-per-gpu", "0"], "--runs-per-gpu"),
    "runs per gpu without gpus": (["--runs-per-gpu", "2"], "--runs-per-gpu"),
    "gpu not seen": (["--gpus", "3"], "no GPU 3"),  # with CUDA_VISIBLE_DEVICES=0,1: 2 GPUs seen
    "gpu twice": (["--gpus", "0,0"], "--gpus"),
    "workers 0": (["--workers", "0"], "--workers"),
}


@pytest.mark.parametrize("case", BAD_ARGUMENTS)
def test_bad_arguments_are_refused_in_one_line(case, tmp_path, capsys, monkeypatch):
    args, key = BAD_ARGUMENTS[case]
    monkeypatch.chdir(REPO)
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "0,1")
    assert sweep.main(["sweeps/smoke.yaml", "--dir", str(tmp_path / "sweep"), *args]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("error: ") and key in err, err
    assert "\n" not in err and "Traceback" not in err
    assert not (tmp_path / "sweep").exists()


def test_bad_sweep_file_from_the_command_line_is_one_line_on_stderr(tmp_path):
    text, key = BAD_SWEEPS["yaml boolean"]
    (tmp_path / "bad.yaml").write_text(text)
    done = subprocess.run([sys.executable, "-m", "nexus.sweep", str(tmp_path / "bad.yaml"), "--dir",
                           str(tmp_path / "sweep")], cwd=REPO, capture_output=True, text=True)
    assert done.returncode == 2
    assert done.stderr.count("\n") == 1 and done.stderr.startswith("error: ") and key in done.stderr
