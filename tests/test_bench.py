"""Smoke test of `python -m benchmarks.bench`: every measurement path on tiny data, no sweep (not a
timing test); the report reads the committed results; the decision timer leaves the policy alone."""

from __future__ import annotations

import json
from pathlib import Path

from benchmarks import bench, report
from benchmarks.timed_growth import TimedGrowth

RESULTS = Path(__file__).resolve().parents[1] / "benchmarks" / "cpu"


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
        assert all(r["decide_s"] >= 0 for r in epochs[key]["records"]), key
    # PAI drew its graphs at every epoch in one case, not on the ordinary epochs in the other
    assert epochs["pai_graphs"]["graph_counts"]["skipped"] >= 1
    assert epochs["pai_every_epoch"]["graph_counts"]["skipped"] == 0
    assert epochs["uncached"]["epoch_s"] > 0 and epochs["uncached"]["extrapolated"]
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
    assert "Re-encoding / cached epoch" in table
    assert result["markdown"] in table


def test_report_reads_committed_results():
    """Results saved before the rename (`nexus_way`) still give every row."""
    for path in sorted(RESULTS.glob("*.json")):
        saved = json.loads(path.read_text())
        table = report.markdown(saved)
        assert table.count("\n|") == saved["markdown"].count("\n|"), path.name
        if "epochs" in saved:
            assert "| Re-encoding / cached epoch, 2 threads |" in table and "NEXUS" not in table.split("Command:")[0]


def test_timed_growth_times_the_decision_and_delegates_the_rest():
    class Policy:
        def after_epoch(self, score, net, optimizer, last=False):
            return ("decision", score, last)

        def state(self, net):
            return {"pai/params": 3}

    policy = Policy()
    timed = TimedGrowth(policy)
    assert timed.after_epoch(0.5, None, None, last=True) == ("decision", 0.5, True)
    assert timed.state(None) == {"pai/params": 3}
    assert len(timed.decide_s) == 1 and timed.decide_s[0] >= 0
    assert "after_epoch" not in vars(policy)  # the policy itself is untouched
