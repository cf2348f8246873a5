"""sweeps/pai_recommended.yaml for real: the sweep's own command lines (as `wandb agent` builds them)
for a covering set of its parameters, so every listed value runs once through launch.py on smoke data."""

import pytest

from conftest import REPO, launch, read_json
from nexus.sweep import sweep_file
from nexus.config import flatten

SWEEP = REPO / "sweeps" / "pai_recommended.yaml"
# The sweep's command fixes +experiment=dendritic; these make it smoke-sized (as +experiment=smoke does).
SMOKE = ["data.limit.train=64", "data.limit.val=32", "data.limit.test=32", "train.max_epochs=4",
         "train.batch_size=16", "pai.n_epochs_to_switch=1", "pai.max_dendrites=1", "logger=none"]


def covering_sets() -> list[dict]:
    return sweep_file.covering_sets(sweep_file.load_sweep_file(SWEEP))


def test_the_covering_sets_use_every_listed_value():
    config = sweep_file.load_sweep_file(SWEEP)
    for key, parameter in config["parameters"].items():
        used = [s[key]["value"] for s in covering_sets()]
        assert all(value in used for value in parameter.get("values", [parameter.get("value")])), key


@pytest.mark.parametrize("index", range(len(covering_sets())))
def test_each_covering_set_runs_on_smoke_data(tmp_path, index):
    config = sweep_file.load_sweep_file(SWEEP)
    params = covering_sets()[index]
    args = sweep_file.program_args(sweep_file.agent_command(config, params), config)
    assert launch(*args, *SMOKE, f"hydra.run.dir={tmp_path / 'run'}") == 0
    summary = read_json(tmp_path / "run" / "summary.json")
    assert summary["status"] == "completed" and summary["experiment"] == "dendritic"
    used = {**flatten(summary["config"]), "pai": summary["pai"]}
    assert {key: used[key] for key in params} == {key: p["value"] for key, p in params.items()}
