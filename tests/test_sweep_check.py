"""`nexus-sweep check FILE`, the check to run before `wandb sweep FILE`: every sweep file we ship
passes; a bad user file fails with each problem in one line (file, key and fix), exit code 2. A
number that YAML 1.1 reads as a string (1e-4) is refused by `nexus-sweep FILE` too, before any run."""

from __future__ import annotations

import subprocess
import sys

import pytest

from conftest import REPO
from nexus import sweep

HEAD = "program: launch.py\ncommand: ['${env}', '${interpreter}', '${program}', +experiment=smoke, '${args_no_hyphens}']\n"
GRID = HEAD + "method: grid\nparameters:\n"
STRING = "is a string to YAML 1.1 (what `wandb sweep` reads), not a number; write"

SHIPPED = {"pai.yaml": "36 runs for grid", "pai_bayes.yaml": "bayes: no fixed number of runs",
           "pai_recommended.yaml": "random: no fixed number of runs", "smoke.yaml": "4 runs for grid",
           "param_matched.yaml": "27 runs for grid", "finetune.yaml": "36 runs for grid"}


def test_every_shipped_sweep_file_is_listed_here():
    assert set(SHIPPED) == {path.name for path in (REPO / "sweeps").glob("*.yaml")}


@pytest.mark.parametrize("name", SHIPPED)
def test_shipped_sweep_files_pass(name, capsys, monkeypatch):
    monkeypatch.chdir(REPO)  # where `wandb agent` runs them: their program is relative to it
    assert sweep.main(["check", f"sweeps/{name}"]) == 0
    assert capsys.readouterr().out.splitlines()[-1] == f"ok: sweeps/{name} ({SHIPPED[name]})"


# A bad file: its text, and the lines the check prints after `error: <file>: `, each a problem
BAD_FILES = {
    "exponent without a decimal point": (GRID + "  train.lr: {values: [1e-4, 3.0e-4]}\n",
                                         [f"parameters.train.lr.values[0]: '1e-4' {STRING} 1.0e-4"]),
    "upper-case exponent as value": (GRID + "  train.lr: {value: 3E-5}\n",
                                     [f"parameters.train.lr.value: '3E-5' {STRING} 3.0e-5"]),
    "exponent without a sign": (GRID + "  train.weight_decay: {values: [1.0e2]}\n",
                                [f"parameters.train.weight_decay.values[0]: '1.0e2' {STRING} 1.0e+2"]),
    "a quoted number": (GRID + "  seed: {values: ['1', 2]}\n", [f"parameters.seed.values[0]: '1' {STRING} 1"]),
    "distribution bounds": (
        HEAD + "method: random\nparameters:\n  train.lr: {distribution: log_uniform_values, min: 1e-5, max: 1e-3}\n",
        [f"parameters.train.lr.min: '1e-5' {STRING} 1.0e-5", f"parameters.train.lr.max: '1e-3' {STRING} 1.0e-3"]),
    "nested parameters": (GRID + "  train:\n    parameters:\n      lr: {values: [1e-4]}\n",
                          [f"parameters.train.parameters.lr.values[0]: '1e-4' {STRING} 1.0e-4"]),
    "unknown key": (GRID + "  train.lrr: {values: [0.1]}\n", ["unknown config key 'train.lrr'"]),
    "yaml boolean": (GRID + "  pai: {values: [off]}\n", ["parameters.pai: False is a YAML boolean"]),
    "schema": (HEAD + "method: grids\nparameters: {seed: {values: [0]}}\n", ["method"]),
}


@pytest.mark.parametrize("case", BAD_FILES)
def test_a_bad_sweep_file_fails_the_check_a_line_per_problem(case, tmp_path, capsys, monkeypatch):
    text, problems = BAD_FILES[case]
    (tmp_path / "bad.yaml").write_text(text)
    monkeypatch.chdir(REPO)
    assert sweep.main(["check", str(tmp_path / "bad.yaml")]) == 2
    captured = capsys.readouterr()
    lines = captured.err.splitlines()
    assert captured.out == "" and len(lines) == len(problems), captured.err
    for line, problem in zip(lines, problems):
        assert line.startswith(f"error: {tmp_path / 'bad.yaml'}: ") and problem in line, line


def test_check_without_a_file_is_a_usage_error(capsys):
    assert sweep.main(["check"]) == 2
    assert capsys.readouterr().err == "error: the following arguments are required: sweep_file\n"


def test_running_a_sweep_refuses_a_number_yaml_reads_as_a_string_before_any_run(tmp_path):
    """Through `wandb agent`, W&B would store train.lr = '1e-4', a string, while the run used 0.0001."""
    (tmp_path / "bad.yaml").write_text(BAD_FILES["exponent without a decimal point"][0])
    done = subprocess.run([sys.executable, "-m", "nexus.sweep", str(tmp_path / "bad.yaml"), "--dir",
                           str(tmp_path / "sweep")], cwd=REPO, capture_output=True, text=True, timeout=300)
    assert done.returncode == 2
    assert done.stderr == f"error: {tmp_path / 'bad.yaml'}: parameters.train.lr.values[0]: '1e-4' {STRING} 1.0e-4\n"
    assert not (tmp_path / "sweep").exists()
