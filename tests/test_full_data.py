"""Full STS-B (slow, minutes on a CPU): python -m pytest -m slow"""

import os
import subprocess
import sys

import pytest

from conftest import REPO, launch, read_json, read_jsonl, records, without_times
from nexus.backbone import load_backbone
from nexus.compose import compose
from nexus.data import load_splits
from nexus.evaluate import correlations, cosine_predictions
from nexus.inputs import encode_splits

pytestmark = pytest.mark.slow


def test_zero_shot_spearman_matches_the_published_figures(tmp_path):
    cfg = compose()
    splits = load_splits(cfg.data)
    splits = {"val": splits["val"], "test": splits["test"]}
    encoded = encode_splits(splits, load_backbone(cfg.model, "cpu"), cfg.model, str(tmp_path), "cpu")
    val = correlations(cosine_predictions(None, encoded["val"]), splits["val"].scores)[0]
    test = correlations(cosine_predictions(None, encoded["test"]), splits["test"].scores)[0]
    assert val == pytest.approx(0.8672, abs=0.001)
    assert test == pytest.approx(0.8203, abs=0.001)


def test_full_baseline_beats_zero_shot(tmp_path):
    assert launch("+experiment=baseline", "logger=none", f"hydra.run.dir={tmp_path}") == 0
    summary = read_json(tmp_path / "summary.json")
    assert summary["best/val_spearman"] > 0.8672
    assert summary["test/spearman"] > 0.8203


def test_full_dendritic_run_grows_dendrites_and_is_tracked(tmp_path):
    from nexus.model import load_model

    assert launch("+experiment=dendritic", f"hydra.run.dir={tmp_path}") == 0
    summary = read_json(tmp_path / "summary.json")
    assert summary["status"] == "completed"
    assert "dendrites_added" in [e["kind"] for e in read_jsonl(tmp_path / "events.jsonl")]
    assert (tmp_path / "pai" / "pai.png").is_file()
    load_model(tmp_path / "model", device="cpu").encode(["a sentence"])
    history = [h["item"] for h in records(tmp_path, "history") if "train/loss" in h["item"]]
    assert [{k: v for k, v in h.items() if not k.startswith("_") and k != "pai/restructure"} for h in history] \
        == read_jsonl(tmp_path / "metrics.jsonl")
    artifacts = [a for a in records(tmp_path, "artifact") if a["type"] == "model"]
    assert len(artifacts) == 1


def test_the_number_of_threads_does_not_change_results(tmp_path):
    """Denormals are flushed on every thread (set before OpenMP starts its workers), so one torch
    thread and two give the same run, dendrites included. (Needs full-size dev and training:
    on smoke data no operation is big enough to be split across threads.)"""
    for threads in ("1", "2"):
        done = subprocess.run([sys.executable, str(REPO / "launch.py"), "+experiment=dendritic", "pai=every_epoch",
                               "train.max_epochs=2", "logger=none", f"hydra.run.dir={tmp_path / threads}"],
                              env={**os.environ, "OMP_NUM_THREADS": threads}, capture_output=True, text=True)
        assert done.returncode == 0, done.stderr[-2000:]
    assert read_jsonl(tmp_path / "1" / "events.jsonl")[0]["kind"] == "dendrites_added"

    assert without_times(read_jsonl(tmp_path / "1" / "metrics.jsonl")) == \
        without_times(read_jsonl(tmp_path / "2" / "metrics.jsonl"))
