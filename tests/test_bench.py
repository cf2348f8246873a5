"""Smoke test of `python -m nexus.bench`: every measurement path on tiny data, no sweep (not a timing test)."""

from __future__ import annotations

import json

from nexus import bench


def test_bench_tiny(tmp_path, capsys):
    out = tmp_path / "bench.json"
    assert bench.main(["--tiny", "--skip-sweep", "--reps", "1", "--threads", "1", "--out", str(out)]) == 0

    result = json.loads(out.read_text())
    assert result["machine"]["cores"] >= 1 and result["machine"]["torch"]
    assert result["pairs"] == {"train": 64, "val": 32, "test": 32}
    cache = result["cache"]
    assert cache["distinct_sentences"] > 0 and cache["sentences_per_s"] > 0 and cache["hit_median_s"] > 0

    epochs = result["epochs"]["1"]
    for key in ("baseline", "pai_every_epoch", "pai_graphs"):
        assert epochs[key]["epoch_s"] > 0, key
    # PAI drew its graphs at every epoch in one case, not on the ordinary epochs in the other
    assert epochs["pai_graphs"]["graph_counts"]["skipped"] >= 1
    assert epochs["pai_every_epoch"]["graph_counts"]["skipped"] == 0
    assert epochs["nexus_way"]["epoch_s"] > 0 and epochs["nexus_way"]["extrapolated"]
    assert epochs["one_dendrite"]["dendrites"] == 1
    assert epochs["one_dendrite"]["params"] > epochs["one_dendrite"]["params_before"]
    # timed as configured (denormals flushed) and the other way
    assert epochs["one_dendrite"]["flush_denormals"] is True and epochs["one_dendrite"]["other_flush_denormals"] is False
    assert epochs["one_dendrite"]["train_and_dev_s"] > 0 and epochs["one_dendrite"]["other_train_and_dev_s"] > 0

    assert result["memory"]["warm_cache"]["rc"] == 0 and result["memory"]["warm_cache"]["peak_mb"] > 100
    assert result["sweep"] == {"all": {"skipped": "--skip-sweep"}}

    table = capsys.readouterr().out
    assert "| measurement | value | details | target |" in table
    assert "Baseline epoch, cached inputs" in table and "Peak RSS, one run" in table
    assert result["markdown"] in table
