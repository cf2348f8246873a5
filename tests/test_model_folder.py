"""A run's model/ folder is safe to share: it loads without unpickling anything, baselines with
sentence-transformers alone, and its card says what the model is. End-to-end on smoke runs."""

import json
import shutil
import subprocess
import sys

import numpy as np
import pytest
import torch

from nexus.compose import compose
from conftest import REPO, launch, read_json, read_jsonl, records
from model_folders import RunsCode, copy_folder, cosines, saved_predictions


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    """A baseline tracked in W&B (offline, with its model artifact) and a run that keeps a dendrite
    (fixed switch after epoch 1; at lr 1e-3 the best dev epoch comes after it)."""
    root = tmp_path_factory.mktemp("model_folder")
    assert launch("+experiment=smoke", "logger.log_model=true", f"hydra.run.dir={root / 'baseline'}") == 0
    assert launch("+experiment=smoke", "logger=none", "pai=fixed", "train.lr=1e-3",
                  f"hydra.run.dir={root / 'dendritic'}") == 0
    return {"baseline": root / "baseline", "dendritic": root / "dendritic"}


@pytest.fixture(scope="module")
def test_pairs():
    from nexus.data import load_splits

    return load_splits(compose(["+experiment=smoke"]).data)["test"]


# Runs in an isolated interpreter (-I: no PYTHONPATH, no current directory on sys.path) where
# importing nexus or perforatedai fails, although the venv has nexus installed.
ONLY_SENTENCE_TRANSFORMERS = """
import importlib.abc, json, sys

class Unavailable(importlib.abc.MetaPathFinder):
    def find_spec(self, name, path=None, target=None):
        if name.split(".")[0] in ("nexus", "perforatedai"):
            raise ImportError(name + " is not installed here")

sys.meta_path.insert(0, Unavailable())
import numpy as np, torch
from sentence_transformers import SentenceTransformer

model_dir, pairs_file, out_file = sys.argv[1:]
model = SentenceTransformer(model_dir, device="cpu")
pairs = json.loads(open(pairs_file).read())
a = model.encode(pairs["sentences1"], convert_to_tensor=True)
b = model.encode(pairs["sentences2"], convert_to_tensor=True)
np.save(out_file, torch.cosine_similarity(a, b).numpy())
assert "nexus" not in sys.modules and "perforatedai" not in sys.modules, "nexus was needed"
"""


def test_a_baseline_folder_loads_with_sentence_transformers_alone(runs, test_pairs, tmp_path):
    pairs_file = tmp_path / "pairs.json"
    pairs_file.write_text(json.dumps({"sentences1": test_pairs.sentences1, "sentences2": test_pairs.sentences2}))
    done = subprocess.run([sys.executable, "-I", "-c", ONLY_SENTENCE_TRANSFORMERS, str(runs["baseline"] / "model"),
                           str(pairs_file), str(tmp_path / "cos.npy")], cwd=tmp_path, capture_output=True, text=True)
    assert done.returncode == 0, done.stderr[-2000:]
    np.testing.assert_allclose(np.load(tmp_path / "cos.npy"), saved_predictions(runs["baseline"]), atol=1e-5)
    modules = json.loads((runs["baseline"] / "model" / "modules.json").read_text())
    assert all(m["type"].startswith("sentence_transformers.") for m in modules)
    assert not list((runs["baseline"] / "model").rglob("*.pt"))


def test_a_dendritic_folder_round_trips_with_the_same_predictions(runs, test_pairs, tmp_path, monkeypatch):
    from sentence_transformers import SentenceTransformer

    from nexus.adapter import DendriticAdapter
    from nexus.model import load_model
    from nexus.growth.pai import dendrite_count
    from perforatedai import utils_perforatedai as UPA

    run = runs["dendritic"]
    assert "dendrites_added" in [e["kind"] for e in read_jsonl(run / "events.jsonl")]
    summary = read_json(run / "summary.json")
    assert summary["pai/dendrites"] >= 1
    monkeypatch.chdir(tmp_path)  # PAI writes a config file where it runs: the loader must keep it away
    model = load_model(run / "model", device="cpu")
    assert list(tmp_path.iterdir()) == []
    adapter = model[3]
    assert isinstance(adapter, DendriticAdapter)
    assert adapter.dendrites == dendrite_count(adapter.layers) == summary["pai/dendrites"]
    assert UPA.count_params(adapter.layers) == summary["pai/params"]  # PAI's count, as in the run
    np.testing.assert_allclose(cosines(model, test_pairs), saved_predictions(run), atol=1e-5)
    # sentence-transformers alone never imports the adapter's class on a folder's say-so
    with pytest.raises(ValueError, match="trust_remote_code"):
        SentenceTransformer(str(run / "model"), device="cpu")


@pytest.mark.parametrize("layout", ["pickled adapter.pt", "pickle in place of the safetensors"])
def test_a_pickle_in_the_adapter_folder_is_refused_without_running_it(runs, tmp_path, layout):
    from sentence_transformers import SentenceTransformer

    from nexus.errors import UserError
    from nexus.model import load_model

    folder = copy_folder(runs["dendritic"] / "model", tmp_path / "model")
    marker = tmp_path / "marker"
    if layout == "pickled adapter.pt":  # a folder of the format before safe serialization
        (folder / "3_DendriticAdapter").rename(folder / "3_Adapter")
        for f in (folder / "3_Adapter").iterdir():
            f.unlink()
        torch.save(RunsCode(marker), folder / "3_Adapter" / "adapter.pt")
        (folder / "3_Adapter" / "config.json").write_text("{}")
        modules = json.loads((folder / "modules.json").read_text())
        modules[3].update(path="3_Adapter", type="nexus.adapter.Adapter")
        (folder / "modules.json").write_text(json.dumps(modules))
    else:
        (folder / "3_DendriticAdapter" / "model.safetensors").unlink()
        torch.save(RunsCode(marker), folder / "3_DendriticAdapter" / "model.safetensors")

    with pytest.raises(UserError) as refused:
        load_model(folder, device="cpu")
    message = str(refused.value)
    assert "\n" not in message and str(folder) in message
    if layout == "pickled adapter.pt":
        assert f"python -m nexus.model resave {folder} NEW" in message
        # also through sentence-transformers itself, even when trusted to import nexus's class
        with pytest.raises(UserError, match="resave"):
            SentenceTransformer(str(folder), device="cpu", trust_remote_code=True)
    assert not marker.exists()
    # the file really carries code: a full unpickle runs it
    adapter_file = next(p for p in folder.rglob("*") if p.is_file() and p.parent.name.startswith("3_")
                        and p.name != "config.json")
    with open(adapter_file, "rb") as f:  # a file object: torch.load reads *.safetensors names as safetensors
        torch.load(f, weights_only=False)
    assert marker.read_text() == "code ran"


def test_resave_turns_an_old_baseline_folder_into_a_plain_one(runs, test_pairs, tmp_path):
    """A folder written before safe serialization (the Dense layers pickled as a module) re-saved
    with the one command the refusal names: it then loads with sentence-transformers alone."""
    from sentence_transformers import SentenceTransformer
    from safetensors.torch import load_file

    old = copy_folder(runs["baseline"] / "model", tmp_path / "old")
    weights = load_file(old / "3_Dense" / "model.safetensors")
    layers = torch.nn.Sequential(torch.nn.Linear(384, 384), torch.nn.Identity())
    layers[0].load_state_dict({"weight": weights["linear.weight"], "bias": weights["linear.bias"]})
    shutil.rmtree(old / "3_Dense")
    (old / "3_Adapter").mkdir()
    torch.save(layers, old / "3_Adapter" / "adapter.pt")
    (old / "3_Adapter" / "config.json").write_text("{}")
    modules = json.loads((old / "modules.json").read_text())
    modules[3].update(path="3_Adapter", type="nexus.adapter.Adapter")
    (old / "modules.json").write_text(json.dumps(modules))

    new = tmp_path / "new"
    resave = [sys.executable, "-m", "nexus.model", "resave"]
    done = subprocess.run([*resave, str(old), str(new)], cwd=REPO, capture_output=True, text=True)
    assert done.returncode == 0, done.stderr[-2000:]
    assert not list(new.rglob("*.pt"))
    np.testing.assert_allclose(cosines(SentenceTransformer(str(new), device="cpu"), test_pairs),
                               saved_predictions(runs["baseline"]), atol=1e-5)
    for args, message in (([str(tmp_path / "missing"), str(tmp_path / "x")], "not a sentence-transformers model folder"),
                          ([str(old), str(new)], "already exists")):
        done = subprocess.run([*resave, *args], cwd=REPO, capture_output=True, text=True)
        assert done.returncode == 2
        assert done.stderr.startswith("error: ") and message in done.stderr
        assert done.stderr.count("\n") == 1 and "Traceback" not in done.stderr


def test_the_model_card_and_the_artifact_name_the_run(runs):
    run = runs["baseline"]
    summary = read_json(run / "summary.json")
    (wandb_run,) = records(run, "run")
    card = (run / "model" / "README.md").read_text()
    assert f"| test/spearman | {summary['test/spearman']:.4f} |" in card
    assert f"| zero_shot/test_spearman | {summary['zero_shot/test_spearman']:.4f} |" in card
    assert f"| best/val_spearman | {summary['best/val_spearman']:.4f} |" in card
    assert f"| pai/params | {summary['pai/params']} |" in card
    assert str(run.resolve()) in card and wandb_run["run_id"] in card
    assert "train `pkg:stsbenchmark/sts-train.csv`" in card
    assert "lr: 0.0001" in card  # the recipe
    # the W&B model artifact, logged by this run, carries the same facts
    (artifact,) = [a for a in records(run, "artifact") if a["type"] == "model"]
    metadata = json.loads(artifact["metadata"])
    for key in ("test/spearman", "zero_shot/test_spearman", "best/val_spearman", "pai/dendrites", "pai/params"):
        assert metadata[key] == summary[key], key
    assert metadata["wandb_run_id"] == wandb_run["run_id"]
    assert metadata["run_folder"] == str(run.resolve())
    assert metadata["recipe"] == summary["config"]
    assert metadata["status"] == "completed"
