"""W&B offline runs, read back with wandb's own reader, equal the run's local files."""

import json

import pytest

from conftest import launch, offline_run_dirs, read_json, read_jsonl, records
from nexus.config import flatten
from nexus.tracking import read_offline_run


@pytest.fixture(scope="module")
def dendritic_run(tmp_path_factory):
    root = tmp_path_factory.mktemp("tracked")
    run_dir = root / "run"
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("WANDB_DATA_DIR", str(root / "wandb-data"))  # W&B's own staging area, for the test below
        assert launch("+experiment=smoke", "pai=every_epoch", "logger.log_model=true", "logger.tags=[team-a]",
                      f"hydra.run.dir={run_dir}") == 0
    return run_dir


def test_history_equals_metrics_jsonl(dendritic_run):
    history = [h["item"] for h in records(dendritic_run, "history")]
    epochs = [{k: v for k, v in h.items() if not k.startswith("_") and k != "pai/restructure"}
              for h in history if "train/loss" in h]
    assert epochs == read_jsonl(dendritic_run / "metrics.jsonl")
    summary = read_json(dendritic_run / "summary.json")
    (zero_shot,) = [h for h in history if h.get("epoch") == -1]
    assert zero_shot["zero_shot/val_spearman"] == summary["zero_shot/val_spearman"]


def test_restructure_events_are_marked_and_tabled(dendritic_run):
    events = read_jsonl(dendritic_run / "events.jsonl")
    assert "dendrites_added" in [e["kind"] for e in events]
    marks = {h["item"]["epoch"]: h["item"]["pai/restructure"] for h in records(dendritic_run, "history")
             if "pai/restructure" in h["item"]}
    expected = {}
    for e in events:
        expected[e["epoch"]] = "+".join(filter(None, [expected.get(e["epoch"]), e["kind"]]))
    assert marks == expected
    (wandb_run,) = offline_run_dirs(dendritic_run)
    (table_file,) = (wandb_run / "files" / "media" / "table" / "pai").glob("events_*.table.json")
    table = json.loads(table_file.read_text())
    assert table["columns"] == ["epoch", "kind", "dendrites", "params"]
    assert table["data"] == [[e["epoch"], e["kind"], e["dendrites"], e["params"]] for e in events]


def test_summary_config_and_names(dendritic_run):
    summary = read_json(dendritic_run / "summary.json")
    final = {}
    for update in records(dendritic_run, "summary"):
        final.update(update.get("update", {}))
    for key, value in summary.items():
        if key not in ("config", "pai/architectures"):  # W&B holds the architectures as a table
            assert final[key] == value, key
    (run,) = records(dendritic_run, "run")
    assert run["job_type"] == "dendritic"
    assert run["run_group"].startswith("smoke-every_epoch-lr0.0001-")
    assert {"experiment:smoke", "pai:every_epoch", "team-a"} <= set(run["tags"])
    config = {k: v for k, v in run["config"]["update"].items() if k != "_wandb"}
    choices = {"experiment": "smoke", "model": "minilm", "data": "stsb", "pai": "every_epoch", "train": "default",
               "logger": "wandb"}
    assert config == {**flatten(summary["config"]), **choices}  # flat keys, and each group's option


def test_images_and_model_artifact(dendritic_run):
    (wandb_run,) = offline_run_dirs(dendritic_run)
    images = {p.name.split("_")[0] for p in (wandb_run / "files" / "media" / "images").rglob("*.png")}
    assert {"training", "graph"} <= images
    artifacts = [a for a in records(dendritic_run, "artifact") if a["type"] == "model"]
    assert len(artifacts) == 1
    paths = {c["path"] for c in artifacts[0]["manifest"]["contents"]}
    assert {"modules.json", "README.md"} <= paths
    assert (wandb_run / "files" / "predictions" / "test.csv").exists()


def test_groups_differ_only_when_more_than_the_seed_differs(tmp_path):
    groups = {}
    for name, overrides in {"s0": ["seed=0"], "s1": ["seed=1"], "lr": ["seed=0", "train.lr=0.001"]}.items():
        run_dir = tmp_path / name
        assert launch("+experiment=smoke", "logger.log_model=false", f"hydra.run.dir={run_dir}", *overrides) == 0
        (run,) = records(run_dir, "run")
        groups[name] = (run["run_group"], run["job_type"])
    assert groups["s0"] == groups["s1"]
    assert groups["s0"][0] != groups["lr"][0]
    assert groups["s0"][1] == "baseline"


def test_two_jobs_in_one_process_make_two_runs(tmp_path):
    assert launch("-m", "+experiment=smoke", "seed=0,1", "logger.log_model=false",
                  f"hydra.sweep.dir={tmp_path}") == 0
    ids = {records(tmp_path / str(job), "run")[0]["run_id"] for job in (0, 1)}
    assert len(ids) == 2


def test_a_failing_run_is_failed_in_wandb_and_summary(tmp_path):
    run_dir = tmp_path / "run"
    # lr 1e30 makes the adapter's weights overflow: the loss is NaN in the first epoch
    assert launch("+experiment=smoke", "train.lr=1e30", f"hydra.run.dir={run_dir}") == 1
    summary = read_json(run_dir / "summary.json")
    assert summary["status"] == "failed"
    assert summary["reason"] == "TrainingDiverged: train/loss is nan at epoch 0"
    (wandb_run,) = offline_run_dirs(run_dir)
    state = [r for r in read_offline_run(wandb_run) if r["type"] == "exit"]
    assert state and state[-1]["exit"]["exit_code"] == 1
    final = {}
    for update in records(run_dir, "summary"):
        final.update(update.get("update", {}))
    assert final["status"] == "failed"


def test_a_wandb_failure_keeps_the_local_files(tmp_path, capsys):
    run_dir = tmp_path / "run"
    assert launch("+experiment=smoke", "logger.project=bad/name", f"hydra.run.dir={run_dir}") == 0
    assert "warning: W&B init failed" in capsys.readouterr().err
    assert read_json(run_dir / "summary.json")["status"] == "completed"
    assert len(read_jsonl(run_dir / "metrics.jsonl")) == 4


def test_logger_none_creates_no_wandb_files(tmp_path):
    run_dir = tmp_path / "run"
    assert launch("+experiment=smoke", "logger=none", f"hydra.run.dir={run_dir}") == 0
    assert not list(run_dir.rglob("wandb*"))


def test_the_model_artifact_is_not_copied_into_wandbs_staging_area(dendritic_run):
    """Offline W&B keeps a staged copy of every artifact file until it is synced: 90 MB a run for
    the model folder. Its files are added as immutable, so W&B reads them from the run folder."""
    staging = dendritic_run.parent / "wandb-data" / "artifacts" / "staging"
    staged = [p for p in staging.rglob("*") if p.is_file()] if staging.exists() else []
    assert sum(p.stat().st_size for p in staged) < 1 << 20
    assert (dendritic_run / "model" / "model.safetensors").stat().st_size > 50 << 20  # what would have been copied
