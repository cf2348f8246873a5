"""End-to-end: the real entry point with argv on smoke data; assertions on the files it writes."""

import re
import subprocess
import sys

import numpy as np
import pytest

from conftest import REPO, launch, read_json, read_jsonl, without_times
from nexus.growth import MODES

EPOCH_KEYS = {"epoch", "train/loss", "train/spearman", "train/lr", "val/spearman", "val/pearson", "pai/mode",
              "pai/dendrites", "pai/params", "time/epoch_s"}
SUMMARY_KEYS = {"status", "best/val_spearman", "best/epoch", "test/spearman", "test/pearson",
                "zero_shot/val_spearman", "zero_shot/test_spearman", "pai/dendrites", "pai/params",
                "pai/restructures", "time/total_s"}


def smoke(run_dir, *overrides):
    return launch("+experiment=smoke", "logger=none", f"hydra.run.dir={run_dir}", *overrides)


@pytest.fixture(scope="module")
def smoke_runs(tmp_path_factory):
    """One smoke run per pai option, started from an empty working directory."""
    root = tmp_path_factory.mktemp("smoke")
    cwd = root / "cwd"
    cwd.mkdir()
    runs = {}
    with pytest.MonkeyPatch.context() as mp:
        mp.chdir(cwd)
        for mode in MODES:
            assert smoke(root / mode, f"pai={mode}") == 0
            runs[mode] = root / mode
    assert list(cwd.iterdir()) == [], "a run wrote into the working directory"
    return runs


@pytest.mark.parametrize("mode", MODES)
def test_smoke_run_leaves_a_complete_run_folder(smoke_runs, mode):
    run = smoke_runs[mode]
    for name in (".hydra/config.yaml", "metrics.jsonl", "events.jsonl", "summary.json", "predictions/val.csv",
                 "predictions/test.csv", "model/modules.json", "training_results.png"):
        assert (run / name).is_file(), name
    summary = read_json(run / "summary.json")
    assert summary["status"] == "completed"
    assert summary.keys() >= SUMMARY_KEYS
    assert summary["config"]["pai"]["mode"] == mode
    history = read_jsonl(run / "metrics.jsonl")
    assert 1 <= len(history) <= 4
    assert [r["epoch"] for r in history] == list(range(len(history)))
    assert all(set(r) == EPOCH_KEYS for r in history)
    best = max(history, key=lambda r: r["val/spearman"])
    assert summary["best/val_spearman"] == best["val/spearman"]
    assert summary["best/epoch"] == best["epoch"]
    assert summary["pai/params"] == best["pai/params"]
    assert 0.5 < summary["test/spearman"] <= 1.0
    # identity init: the adapter starts at the zero-shot model, one epoch stays close to it
    assert abs(history[0]["val/spearman"] - summary["zero_shot/val_spearman"]) < 0.05
    val = np.genfromtxt(run / "predictions/val.csv", delimiter=",", names=True)
    assert list(val["row"]) == list(range(32)) and list(val["line"]) == list(range(1, 33))


@pytest.mark.parametrize("mode", ["history", "fixed", "every_epoch", "no_switch"])
def test_pai_runs_keep_pai_files_inside_the_run_folder(smoke_runs, mode):
    pai_dir = smoke_runs[mode] / "pai"
    assert (pai_dir / "pai.png").is_file()
    assert (pai_dir / "paiScores.csv").is_file()


@pytest.mark.parametrize("mode, expect_dendrites", [("disabled", False), ("no_switch", False),
                                                    ("history", True), ("fixed", True), ("every_epoch", True)])
def test_restructure_events(smoke_runs, mode, expect_dendrites):
    run = smoke_runs[mode]
    events = read_jsonl(run / "events.jsonl")
    kinds = [e["kind"] for e in events]
    assert ("dendrites_added" in kinds) == expect_dendrites
    history = {r["epoch"]: r for r in read_jsonl(run / "metrics.jsonl")}
    for event in events:
        if event["kind"] == "dendrites_added":
            assert event["params"] > history[event["epoch"]]["pai/params"]
    summary = read_json(run / "summary.json")
    assert summary["pai/restructures"] == sum(k != "training_complete" for k in kinds)
    if mode == "disabled":
        assert not (run / "pai").exists()


def test_saved_model_reloads_and_encodes_like_the_run(smoke_runs, smoke_cfg):
    """model/ is a SentenceTransformer folder: its cosine similarities are the saved predictions."""
    import torch
    from nexus.data import load_splits
    from nexus.model import load_model

    val = load_splits(smoke_cfg.data)["val"]
    for mode in ("disabled", "every_epoch"):
        model = load_model(smoke_runs[mode] / "model", device="cpu")
        a, b = model.encode(val.sentences1, convert_to_tensor=True), model.encode(val.sentences2, convert_to_tensor=True)
        cosine = torch.cosine_similarity(a, b).numpy()
        saved = np.genfromtxt(smoke_runs[mode] / "predictions/val.csv", delimiter=",", names=True)["pred"]
        np.testing.assert_allclose(cosine, saved, atol=1e-4)


def test_two_runs_in_one_process_equal_separate_processes(smoke_runs, tmp_path):
    """PAI's globals are reset per run: a fixed-mode run after others in this process
    (smoke_runs ran every mode here) equals the same run in a fresh process."""
    fresh = tmp_path / "fresh"
    subprocess.run([sys.executable, str(REPO / "launch.py"), "+experiment=smoke", "logger=none", "pai=fixed",
                    f"hydra.run.dir={fresh}"], check=True, capture_output=True)
    in_process = smoke_runs["fixed"]
    assert without_times(read_jsonl(fresh / "metrics.jsonl")) == without_times(read_jsonl(in_process / "metrics.jsonl"))
    assert read_jsonl(fresh / "events.jsonl") == read_jsonl(in_process / "events.jsonl")
    drop = ("time/total_s", "config")
    assert {k: v for k, v in read_json(fresh / "summary.json").items() if k not in drop} == \
        {k: v for k, v in read_json(in_process / "summary.json").items() if k not in drop}


@pytest.mark.parametrize(
    "override, message",
    [
        ("train.lrr=0.1", "unknown config key 'train.lrr'"),
        ("pai=sometimes", "unknown option 'sometimes' for 'pai'; choose one of disabled, every_epoch, fixed, history"),
        ("train.lr=0", "train.lr=0: must be > 0"),
        ("train.lr=-0.001", "train.lr=-0.001: must be > 0"),
        ("train.batch_size=0", "train.batch_size=0: must be >= 1"),
        ("train.max_epochs=0", "train.max_epochs=0: must be >= 1"),
        ("train.optimizer=lion", "train.optimizer='lion': choose one of"),
        ("model.encode_device=gpu", "model.encode_device='gpu': choose one of auto, cpu, cuda"),
        ("model.name_or_path=/no/such/model", "model.name_or_path: no model folder at /no/such/model"),
        ("data=custom", "data.test_path is required"),
        ("data.val_path=/no/such.csv", "data file not found: /no/such.csv"),
    ],
)
def test_bad_input_is_one_line_and_no_run_folder(tmp_path, capsys, override, message):
    run_dir = tmp_path / "run"
    assert smoke(run_dir, override) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("error: ") and message in err
    assert "\n" not in err and "Traceback" not in err
    assert not run_dir.exists()


def test_unwritable_output_folder_is_refused(tmp_path, capsys):
    blocker = tmp_path / "a-file"  # a file where a folder must go (root ignores permission bits)
    blocker.write_text("")
    assert smoke(blocker / "run") == 2
    assert capsys.readouterr().err.strip() == f"error: hydra.run.dir: cannot write to {blocker}"


def test_bad_input_from_the_command_line_exits_non_zero_without_traceback(tmp_path):
    done = subprocess.run([sys.executable, str(REPO / "launch.py"), "+experiment=smoke", "train.lr=0",
                           f"hydra.run.dir={tmp_path / 'run'}"], capture_output=True, text=True)
    assert done.returncode == 2
    assert done.stderr.strip() == "error: train.lr=0: must be > 0"


def test_runs_share_one_copy_of_the_backbone_weights(smoke_runs):
    """Disk hygiene: the frozen transformer's weights are hard-linked, not copied, per run."""
    inodes = {(smoke_runs[m] / "model" / "model.safetensors").stat().st_ino for m in ("disabled", "history")}
    assert len(inodes) == 1


def test_an_interactive_prompt_inside_pai_fails_instead_of_hanging(tmp_path):
    import pdb

    from nexus.growth.pai import PAIPromptError, no_interactive_prompts

    before = pdb.set_trace
    with no_interactive_prompts(), pytest.raises(PAIPromptError, match="interactive prompt"):
        pdb.set_trace()
    with no_interactive_prompts(), pytest.raises(PAIPromptError):
        input("confirm? ")
    assert pdb.set_trace is before  # restored afterwards


# The last epoch restructures (max_epochs 6: switches after epochs 1, 3 and 5), so its plain
# report must be drawn inside PAI's call.
ENDS_ON_A_RESTRUCTURE = ["pai=fixed", "train.max_epochs=6", "pai.max_dendrites=2"]


@pytest.mark.parametrize("ending", ["ordinary", "restructure"])
def test_pai_graphs_on_restructures_only_leave_the_same_results(smoke_runs, tmp_path, ending):
    """Skipping PAI's per-epoch redraw changes no number and leaves PAI's files complete."""
    args = ["pai=fixed"] if ending == "ordinary" else ENDS_ON_A_RESTRUCTURE
    every = tmp_path / "every"
    assert smoke(every, *args, "pai.graphs_every_epoch=true") == 0
    if ending == "ordinary":
        lean = smoke_runs["fixed"]
    else:
        lean = tmp_path / "lean"
        assert smoke(lean, *args) == 0
        assert read_jsonl(lean / "events.jsonl")[-1]["epoch"] == 5
    assert without_times(read_jsonl(every / "metrics.jsonl")) == without_times(read_jsonl(lean / "metrics.jsonl"))
    assert read_jsonl(every / "events.jsonl") == read_jsonl(lean / "events.jsonl")
    every_files, lean_files = pai_files(every), pai_files(lean)
    assert every_files.keys() == lean_files.keys()
    for name, path in every_files.items():
        if name.endswith(".csv") and "Times" not in name:
            assert path.read_text() == lean_files[name].read_text(), name


def pai_files(run_dir):
    """PAI's files by name, the wall-clock stamp PAI puts in some names (_26.11.2026.15.17.23) blanked."""
    return {re.sub(r"_\d\d\.\d\d\.\d{4}\.\d\d\.\d\d\.\d\d", "_<time>", p.name): p
            for p in (run_dir / "pai").iterdir()}
