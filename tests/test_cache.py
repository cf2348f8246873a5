"""The embedding cache: each sentence encoded once, reused across runs and processes, never torn."""

import subprocess
import sys

import numpy as np
import pytest

from nexus.backbone import fingerprint, load_backbone
from nexus.cache import EmbeddingCache

SENTENCES = ["A plane is taking off.", "An air plane is taking off.", "A man is playing a flute.",
             "A man is playing a flute."]


@pytest.fixture(scope="module")
def backbone():
    from omegaconf import OmegaConf

    cfg = OmegaConf.create({"name_or_path": "sentence-transformers/all-MiniLM-L6-v2", "allow_download": False,
                            "max_seq_length": 256})
    return load_backbone(cfg, "cpu")


class CountingEncoder:
    def __init__(self, backbone):
        self.backbone, self.calls = backbone, []

    def __call__(self, sentences):
        self.calls.append(list(sentences))
        return self.backbone.encode(sentences, convert_to_numpy=True)


def test_second_lookup_does_not_call_the_encoder(tmp_path, backbone):
    encoder = CountingEncoder(backbone)
    first = EmbeddingCache(tmp_path, fingerprint(backbone)).embed(SENTENCES, encoder)
    # a new cache object, as a later run or another process would make
    second = EmbeddingCache(tmp_path, fingerprint(backbone)).embed(SENTENCES, encoder)
    assert encoder.calls == [SENTENCES[:3]]  # duplicates encoded once, the second lookup not at all
    np.testing.assert_array_equal(first, second)
    np.testing.assert_allclose(first, backbone.encode(SENTENCES), atol=1e-6)


def test_only_new_sentences_are_encoded(tmp_path, backbone):
    encoder = CountingEncoder(backbone)
    cache = EmbeddingCache(tmp_path, fingerprint(backbone))
    cache.embed(SENTENCES[:2], encoder)
    cache.embed(SENTENCES, encoder)
    assert encoder.calls == [SENTENCES[:2], SENTENCES[2:3]]


def test_key_depends_on_max_seq_length(backbone):
    before = fingerprint(backbone)
    backbone.max_seq_length = 128
    try:
        assert fingerprint(backbone) != before
    finally:
        backbone.max_seq_length = 256


def test_corrupt_shard_is_detected_and_rebuilt(tmp_path, backbone):
    encoder = CountingEncoder(backbone)
    cache = EmbeddingCache(tmp_path, fingerprint(backbone))
    good = cache.embed(SENTENCES, encoder)
    (shard,) = cache.dir.glob("shard-*.npz")
    shard.write_bytes(shard.read_bytes()[:-100])  # a truncated file
    again = cache.embed(SENTENCES, encoder)
    assert len(encoder.calls) == 2
    np.testing.assert_allclose(again, good, atol=1e-6)


# The two processes meet on purpose, through files in SIGNALS: the first one encodes (holding the
# lock) until the second has tried the cache once without waiting and been refused; then the
# second waits for the lock, as a run does, and reuses the first one's vectors.
RACE = """
import sys, time
from pathlib import Path
from filelock import Timeout
from nexus.backbone import fingerprint, load_backbone
from nexus.cache import EmbeddingCache
from omegaconf import OmegaConf
cache_dir, signals, role = sys.argv[1], Path(sys.argv[2]), sys.argv[3]
def wait_for(name):
    while not (signals / name).exists():
        time.sleep(0.01)
backbone = load_backbone(OmegaConf.create({"name_or_path": "sentence-transformers/all-MiniLM-L6-v2",
                                           "allow_download": False, "max_seq_length": 256}), "cpu")
sentences = [f"sentence number {i} about a cat" for i in range(200)]
def encode(batch):
    print("encoded", len(batch), flush=True)
    if role == "first":
        (signals / "encoding").touch()
        wait_for("tried")
    return backbone.encode(batch, convert_to_numpy=True)
cache = EmbeddingCache(cache_dir, fingerprint(backbone))
if role == "second":
    wait_for("encoding")
    cache.lock.timeout = 0
    try:
        cache.embed(sentences, encode)
    except Timeout:
        print("refused while the first encodes", flush=True)
    (signals / "tried").touch()
    cache.lock.timeout = -1
vectors = cache.embed(sentences, encode)
print("sum", float(vectors.sum()))
"""


def test_two_processes_racing_build_one_cache(tmp_path):
    signals = tmp_path / "signals"
    signals.mkdir()
    procs = [subprocess.Popen([sys.executable, "-c", RACE, str(tmp_path / "cache"), str(signals), role],
                              stdout=subprocess.PIPE, text=True) for role in ("first", "second")]
    try:
        outputs = [p.communicate(timeout=300)[0] for p in procs]
    finally:
        for p in procs:
            p.kill()  # one that failed leaves the other waiting for its signal
    assert all(p.returncode == 0 for p in procs)
    assert "refused while the first encodes" in outputs[1]  # the lock kept the second one out
    assert sum(out.count("encoded 200") for out in outputs) == 1  # the lock made the other one wait and reuse
    sums = {line for out in outputs for line in out.splitlines() if line.startswith("sum")}
    assert len(sums) == 1
    (folder,) = [p for p in (tmp_path / "cache").iterdir() if p.is_dir()]
    assert len(list(folder.glob("shard-*.npz"))) == 1
    assert not list(folder.glob(".*.tmp*"))
