"""model.freeze_backbone=false: transformer, pooling and adapter all train (CPU smoke run)."""

import numpy as np
import pytest
import torch

from conftest import launch, read_json, read_jsonl

ARGS = ["+experiment=smoke", "model.freeze_backbone=false", "data.limit.train=32", "train.max_epochs=2",
        "logger=none"]


@pytest.fixture(scope="module")
def finetuned(tmp_path_factory):
    run_dir = tmp_path_factory.mktemp("finetune") / "run"
    assert launch(*ARGS, "pai=fixed", "pai.fixed_switch_num=1", "pai.first_fixed_switch_num=1",
                  f"hydra.run.dir={run_dir}") == 0
    return run_dir


def test_backbone_weights_change_and_the_model_reloads(finetuned):
    from sentence_transformers import SentenceTransformer

    from nexus.backbone import resolve_backbone
    from nexus.model import load_model

    summary = read_json(finetuned / "summary.json")
    assert summary["status"] == "completed"
    assert "dendrites_added" in [e["kind"] for e in read_jsonl(finetuned / "events.jsonl")]
    original = SentenceTransformer(resolve_backbone("sentence-transformers/all-MiniLM-L6-v2"), device="cpu")
    tuned = load_model(finetuned / "model", device="cpu")
    name = "0.model.embeddings.word_embeddings.weight"
    assert not torch.equal(original.state_dict()[name], tuned.state_dict()[name])
    # no embedding cache in this mode: the saved model's cosines are the saved predictions
    import csv

    with open(finetuned / "predictions/test.csv") as f:
        saved = np.array([float(r["pred"]) for r in csv.DictReader(f)])
    from nexus.compose import compose
    from nexus.data import load_splits

    test = load_splits(compose(ARGS).data)["test"]
    a = tuned.encode(test.sentences1, convert_to_tensor=True)
    b = tuned.encode(test.sentences2, convert_to_tensor=True)
    np.testing.assert_allclose(torch.cosine_similarity(a, b).numpy(), saved, atol=1e-4)


def test_full_finetune_baseline_runs_on_cpu(tmp_path):
    assert launch(*ARGS, f"hydra.run.dir={tmp_path}") == 0
    history = read_jsonl(tmp_path / "metrics.jsonl")
    assert len(history) == 2 and history[1]["train/loss"] < history[0]["train/loss"] * 1.5
