"""On a CUDA GPU, for real: a bf16 fine-tuning run and its model folder on the CPU, a fine-tuning
sweep whose runs are forked onto the card, a frozen sweep whose cache is encoded on the GPU while
the adapters train on the cores, and the same seed twice. Marked `gpu`: skipped, with the reason,
where torch sees no GPU (conftest).

Every run is a process of its own, started as a user starts one (`python launch.py`, `python -m
nexus.sweep`), with the GPUs this test process was given (conftest keeps them from other tests)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import yaml

from conftest import CARDS, REPO, Hold, read_json, read_jsonl, wait_for, with_gpus

pytestmark = pytest.mark.gpu

# What docs/reliability.md ("Determinism") promises for full fine-tuning on a GPU: cuBLAS and bf16 autocast
# make the same seed reproducible to this, not to the last bit.
SAME_SEED_TOLERANCE = 2e-3
# A model folder saved on the GPU and loaded on the CPU: the same fp32 weights, other kernels.
CPU_EMBEDDING_TOLERANCE = 1e-4
FINETUNE_SMOKE = ["+experiment=finetune", "data.limit.train=64", "data.limit.val=32", "data.limit.test=32",
                  "train.max_epochs=2", "logger=none"]


def run(args: list[str], env: dict | None = None, timeout: float = 600) -> subprocess.CompletedProcess:
    """`python ARGS` from the repository root, on the GPUs; fails the test with its output unless it exits 0."""
    done = subprocess.run([sys.executable, *args], cwd=REPO, env=with_gpus(env or os.environ), capture_output=True,
                          text=True, timeout=timeout)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    return done


def finetune(run_dir: Path, *extra: str) -> dict:
    run(["launch.py", *FINETUNE_SMOKE, *extra, f"hydra.run.dir={run_dir}"])
    return read_json(run_dir / "summary.json")


@pytest.fixture(scope="module")
def finetuned(tmp_path_factory) -> Path:
    run_dir = tmp_path_factory.mktemp("gpu") / "finetune"
    finetune(run_dir, "seed=0")
    return run_dir


ENCODE_ON_BOTH = """import sys, numpy as np
from nexus.model import load_model
sentences = ["A man is playing a guitar.", "Dendrites grow on an adapter.", "Ein Hund läuft im Park."]
np.savez(sys.argv[2], **{device: load_model(sys.argv[1], device=device).encode(sentences) for device in ("cuda", "cpu")})
"""


def test_a_bf16_fine_tuning_run_on_the_gpu_reloads_on_the_cpu(finetuned, tmp_path):
    summary = read_json(finetuned / "summary.json")
    assert summary["status"] == "completed"
    assert summary["gpu/peak_memory_mb"] > 0
    run(["-c", ENCODE_ON_BOTH, str(finetuned / "model"), str(tmp_path / "embeddings.npz")])
    embeddings = np.load(tmp_path / "embeddings.npz")
    np.testing.assert_allclose(embeddings["cpu"], embeddings["cuda"], atol=CPU_EMBEDDING_TOLERANCE)


def test_a_run_killed_on_the_gpu_resumes_from_its_checkpoint(finetuned, tmp_path):
    """Killed after epoch 0's checkpoint, the same command goes on from it, backbone and adapter on
    the card again, and ends as the uninterrupted run does, within the GPU's tolerance."""
    run_dir = tmp_path / "run"
    hold = Hold(tmp_path / "hold", epoch=0)
    args = [sys.executable, "launch.py", *FINETUNE_SMOKE, "seed=0", f"hydra.run.dir={run_dir}"]
    process = subprocess.Popen(args, cwd=REPO, env=with_gpus(hold.env), stdout=subprocess.DEVNULL,
                               stderr=subprocess.DEVNULL)
    try:
        wait_for(lambda: process.pid in hold.held(), "the run to wait after epoch 0", process)
        process.kill()
        process.wait()
    finally:
        hold.release_all()
    assert read_json(run_dir / "summary.json")["status"] == "running"
    assert "resuming after epoch 0" in run(args[1:]).stdout
    resumed = read_json(run_dir / "summary.json")
    uninterrupted = read_json(finetuned / "summary.json")
    assert resumed["status"] == "completed"
    assert abs(resumed["best/val_spearman"] - uninterrupted["best/val_spearman"]) <= SAME_SEED_TOLERANCE
    assert len(read_jsonl(run_dir / "metrics.jsonl")) == len(read_jsonl(finetuned / "metrics.jsonl"))


def test_the_same_seed_twice_gives_the_same_best_dev_within_the_stated_tolerance(finetuned, tmp_path):
    again = finetune(tmp_path / "again", "seed=0")
    first = read_json(finetuned / "summary.json")
    assert abs(again["best/val_spearman"] - first["best/val_spearman"]) <= SAME_SEED_TOLERANCE
    assert again["best/epoch"] == first["best/epoch"]


def sweep(tmp_path: Path, command: list[str], parameters: dict, *args: str) -> tuple[str, dict]:
    """A sweep file of `parameters` run by `python -m nexus.sweep ARGS` in an empty NEXUS_HOME (so the
    first run encodes the cache); its printed output and sweep.json."""
    sweep_file = tmp_path / "sweep.yaml"
    sweep_file.write_text(yaml.safe_dump({
        "name": "gpu", "program": "launch.py", "method": "grid", "parameters": parameters,
        "metric": {"name": "best/val_spearman", "goal": "maximize"},
        "command": ["${env}", "${interpreter}", "${program}", *command, "${args_no_hyphens}"]}))
    env = {**os.environ, "NEXUS_HOME": str(tmp_path / "home")}
    done = run(["-m", "nexus.sweep", str(sweep_file), "--dir", str(tmp_path / "sweep"), *args], env=env)
    return done.stdout, read_json(tmp_path / "sweep" / "sweep.json")


def test_a_fine_tuning_sweep_forks_every_run_onto_the_card(tmp_path):
    output, state = sweep(tmp_path, FINETUNE_SMOKE, {"seed": {"values": [0, 1]}, "pai": {"values": ["disabled", "history"]}},
                          "--gpus", "all", "--runs-per-gpu", "4")
    assert "each run forked from this runner, 4 at a time" in output
    assert [r["state"] for r in state["runs"]] == ["completed"] * 4
    first_card = (CARDS or "0").split(",")[0]  # --gpus all, as CUDA numbers the cards this process was given
    assert {r["gpu"] for r in state["runs"]} == {first_card}
    # CUDA started in each forked child: each one measured what it held on the card
    assert all(r["summary"]["gpu/peak_memory_mb"] > 0 for r in state["runs"])


def test_a_frozen_sweep_with_cpu_adapters_encodes_its_cache_on_the_gpu(tmp_path):
    _, state = sweep(tmp_path, ["+experiment=smoke", "logger=none"], {"seed": {"values": [0, 1, 2]}},
                     "--gpus", "all", "--runs-per-gpu", "3", "--override", "train.device=cpu")
    assert [r["state"] for r in state["runs"]] == ["completed"] * 3
    logs = {r["name"]: (tmp_path / "sweep" / "runs" / r["name"] / "stdout.log").read_text() for r in state["runs"]}
    encoders = [name for name, log in logs.items() if "new sentences on cuda" in log]
    assert len(encoders) == 1, logs  # one run encodes, on the GPU, under the cache's lock; the others read it
    assert not any("new sentences on cpu" in log for log in logs.values())
    # the adapters trained on the cores: only the run that encoded ever started CUDA
    started_cuda = [r["name"] for r in state["runs"] if "gpu/peak_memory_mb" in r["summary"]]
    assert started_cuda == encoders
