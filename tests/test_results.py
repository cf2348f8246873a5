"""nexus.results: results.md in the shape of the NEXUS report, checked against that report itself."""

from nexus.results import COMPARE_BEGIN, epoch_statuses, render_results, set_comparison

# RESULTS.md of Project NEXUS ("Training Results Summary"): epoch, train loss, val Spearman, its Status.
REPORT = [(0, 0.0239, 0.8918, "Baseline"), (1, 0.0150, 0.8910, "Training"), (2, 0.0107, 0.8887, "Training"),
          (3, 0.0082, 0.8883, "Dendritic Activation #1"), (4, 0.0070, 0.8886, "Training"),
          (5, 0.0057, 0.8865, "Training"), (6, 0.0049, 0.8868, "Dendritic Activation #2"),
          (7, 0.0046, 0.8874, "Training"), (8, 0.0044, 0.8882, "Training"), (9, 0.0038, 0.8883, "Training"),
          (10, 0.0037, 0.8884, "Training"), (11, 0.0036, 0.8906, "Final Best")]
HISTORY = [{"epoch": e, "train/loss": loss, "val/spearman": val} for e, loss, val, _ in REPORT]
EVENTS = [{"epoch": 3, "kind": "dendrites_added", "dendrites": 1, "params": 296064},
          {"epoch": 6, "kind": "dendrites_added", "dendrites": 2, "params": 444288}]
SUMMARY = {"experiment": "nexus", "pai": "every_epoch", "seed": 42, "best/epoch": 11, "best/val_spearman": 0.8906,
           "test/spearman": 0.85, "test/pearson": 0.86, "zero_shot/val_spearman": 0.8672,
           "zero_shot/test_spearman": 0.8203, "pai/params": 444288, "pai/dendrites": 2}


def test_the_reports_own_numbers_give_the_reports_table_and_loss_reduction():
    """The report's best-dev epoch is its last one (it called 0.8906 'Final Best'), as the report says."""
    text = render_results(HISTORY, EVENTS, SUMMARY)
    for epoch, loss, val, status in REPORT:
        assert f"| {epoch} | {loss:.4f} | {val:.4f} | {status} |" in text
    assert "- Loss reduction: 84.9% (0.0239 -> 0.0036, epoch 0 -> 11)" in text
    assert "- Dendrites added after epochs: 3, 6" in text
    assert "| test Spearman of the best-dev model | 0.8500 |" in text
    assert "| zero-shot test Spearman | 0.8203 |" in text and "| adapter parameters (pai/params) | 444,288 |" in text
    assert COMPARE_BEGIN in text and "Not compared yet" in text


def test_statuses_combine_and_name_reloads():
    history = [{"epoch": e} for e in range(4)]
    events = [{"epoch": 0, "kind": "dendrites_added"}, {"epoch": 1, "kind": "reloaded_best"},
              {"epoch": 2, "kind": "dendrites_added"}, {"epoch": 2, "kind": "training_complete"}]
    assert epoch_statuses(history, events, best_epoch=0) == {
        0: "Baseline, Dendritic Activation #1, Final Best", 1: "Dendrites reloaded",
        2: "Dendritic Activation #2", 3: "Training"}


def test_a_baseline_has_no_comparison_section_and_the_section_is_replaced(tmp_path):
    baseline = render_results(HISTORY, [], {**SUMMARY, "pai": "disabled"})
    assert "Against the baseline" not in baseline and COMPARE_BEGIN not in baseline
    path = tmp_path / "results.md"
    path.write_text(render_results(HISTORY, EVENTS, SUMMARY))
    set_comparison(path, "## Against the baseline (nexus-compare)\n\nfirst")
    set_comparison(path, "## Against the baseline (nexus-compare)\n\nsecond")
    text = path.read_text()
    assert "second" in text and "first" not in text and "Not compared yet" not in text
    assert text.count(COMPARE_BEGIN) == 1
