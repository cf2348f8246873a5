"""Is it the dendrites or just the parameters? Plain residual MLP adapters of any size
(`model.adapter=mlp`), matched by parameter count to dendritic runs: end-to-end on smoke runs."""

import json

import numpy as np
import pytest
import torch
from omegaconf import OmegaConf

from conftest import launch, read_json, read_jsonl
from nexus.compose import compose
from model_folders import RunsCode, copy_folder, cosines, saved_predictions

ONE_DENDRITE = 296064  # the Dense 384->384 adapter with one dendrite (pai/params of such runs)


def mlp_cfg(**keys):
    return OmegaConf.create({"kind": "mlp", "hidden": 384, "depth": 2, "activation": "relu", "match_params": None,
                             **keys})


@pytest.fixture(scope="module")
def mlp_run(tmp_path_factory):
    run = tmp_path_factory.mktemp("adapters") / "mlp"
    assert launch("+experiment=smoke", "logger=none", "model.adapter=mlp", f"model.adapter.match_params={ONE_DENDRITE}",
                  f"hydra.run.dir={run}") == 0
    return run


@pytest.fixture(scope="module")
def smoke_test_pairs():
    from nexus.data import load_splits

    return load_splits(compose(["+experiment=smoke"]).data)["test"]


@pytest.mark.parametrize("depth", [2, 3, 4])
@pytest.mark.parametrize("activation", ["relu", "tanh", "gelu", "identity"])
def test_an_untrained_mlp_adapter_is_exactly_the_identity(depth, activation):
    """Epoch 0 of an MLP run starts at the zero-shot model, as the Dense adapter's identity init does."""
    from nexus.adapter import build_layers

    torch.manual_seed(0)
    net = build_layers(384, mlp_cfg(hidden=50, depth=depth, activation=activation))
    x = torch.randn(16, 384)
    assert torch.equal(net(x), x)
    assert sum(isinstance(m, torch.nn.Linear) for m in net.modules()) == depth


@pytest.mark.parametrize("depth", [2, 3])
@pytest.mark.parametrize("target", [296064, 445440, 595584])
def test_match_params_picks_the_nearest_width_within_one_percent(depth, target):
    from nexus.adapter import build_layers, mlp_hidden, mlp_params

    cfg = mlp_cfg(depth=depth, match_params=target)
    hidden = mlp_hidden(384, cfg)
    params = sum(p.numel() for p in build_layers(384, cfg).parameters())
    assert params == mlp_params(384, hidden, depth)
    assert abs(params - target) <= 0.01 * target
    assert all(abs(mlp_params(384, h, depth) - target) >= abs(params - target) for h in (hidden - 1, hidden + 1))
    if depth == 2:  # the closed form for two layers: params = 2*384*h + h + 384
        assert hidden == round((target - 384) / 769)


def test_an_mlp_smoke_run_has_the_matched_parameter_count(mlp_run):
    summary = read_json(mlp_run / "summary.json")
    assert summary["status"] == "completed"
    assert summary["config"]["model"]["adapter"] == {"kind": "mlp", "hidden": 384, "depth": 2, "activation": "relu",
                                                     "match_params": ONE_DENDRITE}
    assert abs(summary["pai/params"] - ONE_DENDRITE) <= 0.01 * ONE_DENDRITE
    assert summary["pai/params"] == 295680  # hidden 384: 2*384*384 + 384 + 384
    assert summary["pai/dendrites"] == 0 and summary["pai"] == "disabled"
    assert {r["pai/params"] for r in read_jsonl(mlp_run / "metrics.jsonl")} == {summary["pai/params"]}


def test_an_mlp_model_folder_reloads_through_nexus_with_the_runs_predictions(mlp_run, smoke_test_pairs):
    from sentence_transformers import SentenceTransformer

    from nexus.adapter import MLPAdapter
    from nexus.model import load_model

    folder = mlp_run / "model"
    modules = json.loads((folder / "modules.json").read_text())
    assert modules[3] == {"idx": 3, "name": "3", "path": "3_MLPAdapter", "type": "nexus.adapter.MLPAdapter"}
    assert sorted(p.name for p in (folder / "3_MLPAdapter").iterdir()) == ["config.json", "model.safetensors"]
    assert json.loads((folder / "3_MLPAdapter" / "config.json").read_text()) == {
        "in_features": 384, "hidden": 384, "depth": 2, "activation": "relu"}
    model = load_model(folder, device="cpu")
    assert isinstance(model[3], MLPAdapter)
    assert sum(p.numel() for p in model[3].parameters()) == read_json(mlp_run / "summary.json")["pai/params"]
    np.testing.assert_allclose(cosines(model, smoke_test_pairs), saved_predictions(mlp_run), atol=1e-5)
    assert "load_model(path)" in (folder / "README.md").read_text()
    # sentence-transformers alone never imports the adapter's class on a folder's say-so
    with pytest.raises(ValueError, match="trust_remote_code"):
        SentenceTransformer(str(folder), device="cpu")


def test_a_pickle_in_place_of_the_mlp_weights_is_refused_without_running_it(mlp_run, tmp_path):
    from nexus.errors import UserError
    from nexus.model import load_model

    folder = copy_folder(mlp_run / "model", tmp_path / "model")
    marker = tmp_path / "marker"
    (folder / "3_MLPAdapter" / "model.safetensors").unlink()
    torch.save(RunsCode(marker), folder / "3_MLPAdapter" / "model.safetensors")
    with pytest.raises(UserError) as refused:
        load_model(folder, device="cpu")
    message = str(refused.value)
    assert "\n" not in message and "not an MLP adapter this nexus can load" in message and str(folder) in message
    assert not marker.exists()
    with open(folder / "3_MLPAdapter" / "model.safetensors", "rb") as f:  # the file really carries code
        torch.load(f, weights_only=False)
    assert marker.read_text() == "code ran"


@pytest.mark.parametrize(
    "overrides, message",
    [
        (["model.adapter=conv"], "unknown option 'conv' for 'model.adapter'; choose one of dense, mlp"),
        (["model.adapter=mlp", "model.adapter.hidden=0"], "model.adapter.hidden=0: must be >= 1"),
        (["model.adapter=mlp", "model.adapter.depth=1"], "model.adapter.depth=1: must be >= 2"),
        (["model/adapter=mlp", "model.adapter.depth=2.5"], "model.adapter.depth=2.5: expected an integer"),
        (["model.adapter=mlp", "model.adapter.activation=swish"], "model.adapter.activation='swish': choose one of"),
        (["model.adapter=mlp", "model.adapter.match_params=0"], "model.adapter.match_params=0: must be >= 1"),
        (["model.adapter=mlp", "model.adapter.match_params=1000"],
         "model.adapter.match_params=1000: no hidden width gets within 1% of it (depth 2 on 384 features: "
         "the nearest, hidden 1, has 1,153)"),
        (["model.adapter=mlp", "model.adapter.match_params=2000"],
         "model.adapter.match_params=2000: no hidden width gets within 1% of it"),
        (["model.adapter=mlp", "pai=history"],
         "model.adapter=mlp is a plain adapter: use it with pai=disabled, not pai=history"),
        (["model.adapter.hidden=64"], "unknown config key 'model.adapter.hidden'"),  # a Dense key set only
    ],
)
def test_bad_adapter_input_is_one_line_and_no_run_folder(tmp_path, capsys, overrides, message):
    run_dir = tmp_path / "run"
    assert launch("+experiment=smoke", "logger=none", f"hydra.run.dir={run_dir}", *overrides) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("error: ") and message in err
    assert "\n" not in err and "Traceback" not in err
    assert not run_dir.exists()


def test_both_spellings_of_the_adapter_group_compose_the_same_config():
    from nexus.config import hydra_spelling

    dotted = compose(hydra_spelling(["+experiment=baseline", "model.adapter=mlp", "model.adapter.match_params=445440"]))
    slashed = compose(["+experiment=baseline", "model/adapter=mlp", "model.adapter.match_params=445440"])
    assert dotted == slashed
    assert dotted.model.adapter.kind == "mlp" and dotted.pai.mode == "disabled"
    assert compose().model.adapter == {"kind": "dense", "out_features": 384, "init": "identity",
                                       "activation": "identity"}


def test_the_report_compares_dendrites_with_the_plain_adapter_of_their_size_on_smoke_runs(tmp_path, capsys):
    """Real smoke runs: a dendritic configuration, its Dense baseline, and the MLP whose size is the
    dendritic runs' own trained parameter count; the report names both comparisons with intervals."""
    from nexus.compare import main as compare_main

    args = ["+experiment=smoke", "logger=none", "seed=0,1,2", "train.lr=1e-3"]  # lr 1e-3: a dendrite is kept
    assert launch("-m", *args, "pai=disabled,fixed", f"hydra.sweep.dir={tmp_path / 'pai'}") == 0
    dendritic = [read_json(s) for s in (tmp_path / "pai").glob("*/summary.json") if read_json(s)["pai"] == "fixed"]
    size = int(np.median([s["pai/params"] for s in dendritic]))
    assert size > 147_840, "the dendritic runs should keep a dendrite, so that a plain MLP is their match"
    assert launch("-m", *args, "model.adapter=mlp", f"model.adapter.match_params={size}",
                  f"hydra.sweep.dir={tmp_path / 'mlp'}") == 0
    capsys.readouterr()
    assert compare_main([str(tmp_path / "pai"), str(tmp_path / "mlp"), "--out", str(tmp_path / "report"),
                         "--param-matched"]) == 0
    report = (tmp_path / "report" / "report.md").read_text()
    same_recipe = report.split("## Against the baseline")[1].split("\n## ")[0]
    matched = report.split("## Against a parameter-matched plain adapter")[1].split("\n## ")[0]
    assert "pai=fixed" in same_recipe and "95% CI" in report
    (line,) = [line for line in matched.splitlines() if line.startswith("- pai=fixed")]
    assert f"({size:,} trained parameters) vs pai=disabled model.adapter.match_params={size} (" in line
    assert "95% CI [" in line
