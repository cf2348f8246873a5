"""Full STS-B (slow, minutes on a CPU): python -m pytest -m slow"""

import pytest
from hydra import compose, initialize_config_dir

from conftest import REPO, launch, read_json
from nexus.backbone import load_backbone
from nexus.data import load_splits
from nexus.evaluate import correlations, cosine_predictions
from nexus.run import encode_splits

pytestmark = pytest.mark.slow


def test_zero_shot_spearman_matches_the_published_figures(tmp_path):
    with initialize_config_dir(config_dir=str(REPO / "conf"), version_base="1.3"):
        cfg = compose(config_name="config")
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
