"""Faults injected for real: SIGKILL and SIGTERM mid-run, then resume; determinism."""

import json
import signal
import subprocess
import sys

import pytest

from conftest import REPO, Hold, launch, read_json, read_jsonl, without_times
from nexus.tracking import read_offline_run

BASELINE = ["+experiment=smoke", "train.max_epochs=12"]
DENDRITIC = ["+experiment=smoke", "pai=fixed", "train.max_epochs=6", "pai.max_dendrites=2"]
HELD_EPOCH = 1  # the signal reaches the run after epoch 1's checkpoint, with epochs still ahead


def start(run_dir, args, hold):
    return subprocess.Popen([sys.executable, str(REPO / "launch.py"), *args, f"hydra.run.dir={run_dir}"],
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True, env=hold.env)


@pytest.fixture
def hold(tmp_path):
    hold = Hold(tmp_path / "hold", HELD_EPOCH)
    yield hold
    hold.release_all()


def comparable(summary):
    return {k: v for k, v in summary.items() if k not in ("time/total_s", "config")}


@pytest.fixture(scope="module")
def uninterrupted(tmp_path_factory):
    root = tmp_path_factory.mktemp("uninterrupted")
    assert launch(*BASELINE, "logger=none", f"hydra.run.dir={root / 'baseline'}") == 0
    assert launch(*DENDRITIC, "logger=none", f"hydra.run.dir={root / 'dendritic'}") == 0
    return root


@pytest.mark.parametrize("kind", ["baseline", "dendritic"])
def test_sigkill_then_resume_equals_an_uninterrupted_run(tmp_path, uninterrupted, hold, kind):
    args = [*(BASELINE if kind == "baseline" else DENDRITIC), "logger=none"]
    run_dir = tmp_path / "run"
    proc = start(run_dir, args, hold)
    hold.wait(proc.pid, proc)
    proc.kill()
    proc.wait()
    assert len(read_jsonl(run_dir / "metrics.jsonl")) == HELD_EPOCH + 1
    assert read_json(run_dir / "summary.json")["status"] == "running"  # not mistaken for a finished run
    assert launch(*args, f"hydra.run.dir={run_dir}") == 0  # resume=auto finds the checkpoint
    reference = uninterrupted / kind
    assert without_times(read_jsonl(run_dir / "metrics.jsonl")) == without_times(read_jsonl(reference / "metrics.jsonl"))
    assert read_jsonl(run_dir / "events.jsonl") == read_jsonl(reference / "events.jsonl")
    assert comparable(read_json(run_dir / "summary.json")) == comparable(read_json(reference / "summary.json"))
    assert not (run_dir / "checkpoint.pt").exists()


def test_sigterm_checkpoints_and_exits_resumable(tmp_path, uninterrupted, hold):
    run_dir = tmp_path / "run"
    proc = start(run_dir, [*BASELINE, "logger.log_model=false"], hold)
    hold.wait(proc.pid, proc)
    proc.send_signal(signal.SIGTERM)
    hold.release(proc.pid)  # the signal is delivered before the run can see this: it stops in epoch 2
    _, err = proc.communicate(timeout=120)
    assert proc.returncode == 1
    assert "stopped by SIGTERM" in err
    assert len(read_jsonl(run_dir / "metrics.jsonl")) == HELD_EPOCH + 1  # within the next epoch, not after it
    summary = read_json(run_dir / "summary.json")
    assert summary["status"] == "interrupted"
    assert (run_dir / "checkpoint.pt").exists()
    assert launch(*BASELINE, "logger.log_model=false", "resume=true", f"hydra.run.dir={run_dir}") == 0
    reference = uninterrupted / "baseline"
    assert without_times(read_jsonl(run_dir / "metrics.jsonl")) == without_times(read_jsonl(reference / "metrics.jsonl"))
    assert comparable(read_json(run_dir / "summary.json")) == comparable(read_json(reference / "summary.json"))
    # the W&B run continues under the same id
    ids = {r["run"]["run_id"] for d in (run_dir / "wandb").glob("offline-run-*")
           for r in read_offline_run(d) if r["type"] == "run"}
    assert len(list((run_dir / "wandb").glob("offline-run-*"))) == 2 and len(ids) == 1


def test_resume_true_without_checkpoint_is_refused(tmp_path, capsys):
    assert launch("+experiment=smoke", "resume=true", f"hydra.run.dir={tmp_path / 'run'}") == 2
    assert "resume=true: no checkpoint in" in capsys.readouterr().err


def test_same_config_and_seed_give_identical_results(tmp_path, uninterrupted):
    assert launch(*DENDRITIC, "logger=none", f"hydra.run.dir={tmp_path}") == 0
    reference = uninterrupted / "dendritic"
    assert without_times(read_jsonl(tmp_path / "metrics.jsonl")) == without_times(read_jsonl(reference / "metrics.jsonl"))
    assert comparable(read_json(tmp_path / "summary.json")) == comparable(read_json(reference / "summary.json"))



def stop_epoch(metrics: list[dict], patience: int) -> int:
    """The epoch after which early stopping with `patience` ends a run with these dev scores."""
    best, since = -1.0, 0
    for record in metrics:
        best, since = (record["val/spearman"], 0) if record["val/spearman"] > best else (best, since + 1)
        if since >= patience:
            return record["epoch"]
    return metrics[-1]["epoch"]


def test_early_stopping_ends_a_baseline_after_patience_epochs_without_a_better_dev_score(tmp_path, uninterrupted):
    full = read_jsonl(uninterrupted / "baseline" / "metrics.jsonl")
    last = stop_epoch(full, patience=2)
    assert last < full[-1]["epoch"], "the reference run should give early stopping something to stop"
    assert launch(*BASELINE, "logger=none", "train.patience=2", f"hydra.run.dir={tmp_path}") == 0
    assert without_times(read_jsonl(tmp_path / "metrics.jsonl")) == without_times(full[:last + 1])
    assert read_jsonl(tmp_path / "events.jsonl")[-1] == {"epoch": last, "kind": "training_complete", "dendrites": 0,
                                                         "params": full[0]["pai/params"]}
    summary, reference = read_json(tmp_path / "summary.json"), read_json(uninterrupted / "baseline" / "summary.json")
    assert summary["best/epoch"] == reference["best/epoch"] and summary["test/spearman"] == reference["test/spearman"]


def test_pai_runs_keep_their_own_decision_whatever_the_patience(tmp_path, uninterrupted):
    assert launch(*DENDRITIC, "logger=none", "train.patience=1", f"hydra.run.dir={tmp_path}") == 0
    reference = uninterrupted / "dendritic"
    assert without_times(read_jsonl(tmp_path / "metrics.jsonl")) == without_times(read_jsonl(reference / "metrics.jsonl"))


def test_a_repeated_multirun_skips_the_jobs_that_completed(tmp_path, capsys):
    args = ["-m", "+experiment=smoke", "logger=none", "seed=0,1", f"hydra.sweep.dir={tmp_path}"]
    assert launch(*args) == 0
    summaries = {job: (tmp_path / str(job) / "summary.json").read_text() for job in (0, 1)}
    capsys.readouterr()
    assert launch(*args) == 0
    out = capsys.readouterr().out
    assert [line for line in out.splitlines() if line.startswith("already completed")] == [
        f"already completed, skipped: {tmp_path / str(job)} (resume=false runs it again)" for job in (0, 1)]
    assert {job: (tmp_path / str(job) / "summary.json").read_text() for job in (0, 1)} == summaries
    assert launch(*args, "resume=false") == 0  # the opt-out: both jobs run again
    assert "already completed" not in capsys.readouterr().out
    assert all(read_json(tmp_path / str(job) / "summary.json")["time/total_s"] != json.loads(summaries[job])["time/total_s"]
               for job in (0, 1))
