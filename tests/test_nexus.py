"""+experiment=nexus: the NEXUS report's recipe, composed and run for real on smoke-size data
(every parameter trains, on a CPU), with its baseline twin and nexus-compare over the two."""

import pytest

from conftest import launch, read_json, read_jsonl
from nexus.compose import compose

SMOKE = ["data.limit.train=64", "data.limit.val=32", "data.limit.test=32", "train.max_epochs=3"]


def test_nexus_composes_with_the_reports_values():
    cfg = compose(["+experiment=nexus"])
    assert cfg.experiment == "nexus" and cfg.seed == 42
    assert cfg.model.freeze_backbone is False
    assert (cfg.model.adapter.init, cfg.model.adapter.activation, cfg.model.adapter.out_features) == \
        ("random", "identity", 384)
    assert (cfg.train.max_epochs, cfg.train.batch_size, cfg.train.lr, cfg.train.backbone_lr) == (12, 16, 2e-5, 2e-5)
    assert (cfg.train.weight_decay, cfg.train.optimizer, cfg.train.precision) == (0.01, "adamw", "fp32")
    assert cfg.train.patience is None  # every epoch trains, as in the report's code
    assert cfg.pai.mode == "every_epoch" and cfg.pai.max_dendrites == 100 and cfg.pai.n_epochs_to_switch == 2
    twin = compose(["+experiment=nexus", "pai=disabled"])
    assert twin.pai.mode == "disabled" and twin.train == cfg.train and twin.model == cfg.model


@pytest.fixture(scope="module")
def nexus_pair(tmp_path_factory):
    """The dendritic run (W&B offline) and its baseline twin, then nexus-compare over both."""
    root = tmp_path_factory.mktemp("nexus")
    assert launch("+experiment=nexus", *SMOKE, f"hydra.run.dir={root / 'dendritic'}") == 0
    assert launch("+experiment=nexus", "pai=disabled", "logger=none", *SMOKE,
                  f"hydra.run.dir={root / 'baseline'}") == 0
    from nexus.compare import main

    assert main([str(root / "dendritic"), str(root / "baseline"), "--out", str(root / "report")]) == 0
    return root


def table_rows(text: str) -> list[list[str]]:
    """The rows of results.md's epoch table (the first table), as cells."""
    lines = text.split("## Per epoch", 1)[1].split("## Training", 1)[0].strip().splitlines()
    return [[cell.strip() for cell in line.strip("|").split("|")] for line in lines[2:]]


@pytest.mark.parametrize("run", ["dendritic", "baseline"])
def test_results_md_has_the_reports_table_with_statuses_from_the_events(nexus_pair, run):
    folder = nexus_pair / run
    summary, history = read_json(folder / "summary.json"), read_jsonl(folder / "metrics.jsonl")
    events = read_jsonl(folder / "events.jsonl")
    assert summary["status"] == "completed" and summary["config"]["model"]["freeze_backbone"] is False
    text = (folder / "results.md").read_text()
    assert "| Epoch | Train Loss | Val Spearman | Status |" in text
    rows = table_rows(text)
    assert [int(r[0]) for r in rows] == [r["epoch"] for r in history]
    added = [e["epoch"] for e in events if e["kind"] == "dendrites_added"]
    reloaded = {e["epoch"] for e in events if e["kind"] == "reloaded_best"}
    for (_, loss, val, status), record in zip(rows, history):
        assert (loss, val) == (f"{record['train/loss']:.4f}", f"{record['val/spearman']:.4f}")
        epoch, expected = record["epoch"], []
        if epoch == 0:
            expected.append("Baseline")
        if epoch in added:
            expected.append(f"Dendritic Activation #{added.index(epoch) + 1}")
        if epoch in reloaded:
            expected.append("Dendrites reloaded")
        if epoch == summary["best/epoch"]:
            expected.append("Final Best")
        assert status == (", ".join(expected) or "Training")
    assert f"| test Spearman of the best-dev model | {summary['test/spearman']:.4f} |" in text
    assert f"| zero-shot test Spearman | {summary['zero_shot/test_spearman']:.4f} |" in text
    assert f"| adapter parameters (pai/params) | {summary['pai/params']:,} |" in text
    assert (run == "dendritic") == bool(added)  # every_epoch adds a dendrite after epoch 0


def test_per_architecture_bests_and_per_epoch_training_scores(nexus_pair):
    summary = read_json(nexus_pair / "dendritic" / "summary.json")
    history = read_jsonl(nexus_pair / "dendritic" / "metrics.jsonl")
    architectures = summary["pai/architectures"]
    assert [a["dendrites"] for a in architectures] == sorted({r["pai/dendrites"] for r in history})
    for arch in architectures:
        trained = [r for r in history if r["pai/dendrites"] == arch["dendrites"]]
        assert arch["epochs"] == len(trained)
        assert arch["best_val_spearman"] == max(r["val/spearman"] for r in trained)
        # the backbone trains: only the overall best's backbone is kept, so only it has a test score
        assert (arch["test_spearman"] is not None) == (arch["best_epoch"] == summary["best/epoch"])
    assert all(r["train/lr"] == 2e-5 and -1 <= r["train/spearman"] <= 1 for r in history)


def test_wandb_shows_results_md_and_the_architectures(nexus_pair):
    from nexus.tracking import read_offline_run_state

    [run] = (nexus_pair / "dendritic" / "wandb").glob("offline-run-*")
    summary = read_offline_run_state(run)["summary"]
    assert summary["results"]["_type"] == "html-file" and summary["pai/architectures"]["_type"] == "table-file"
    assert (run / "files" / "results.md").read_text() == (nexus_pair / "dendritic" / "results.md").read_text()


def test_nexus_compare_fills_in_the_dendritic_runs_section(nexus_pair):
    text = (nexus_pair / "dendritic" / "results.md").read_text()
    assert "## Against the baseline (nexus-compare)" in text and "Not compared yet" not in text
    assert "| verdict | too few seeds to tell |" in text  # one seed: the numbers, not a verdict
    report = (nexus_pair / "report" / "report.md").read_text()
    assert "](forest.png)" in report and "](params_vs_test.png)" in report
    assert str(nexus_pair / "dendritic" / "results.md") in report
