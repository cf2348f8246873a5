
import numpy as np
import pytest

from nexus.compose import compose
from omegaconf import OmegaConf

from conftest import REPO
from nexus.data import load_splits, read_pairs
from nexus.errors import UserError


@pytest.fixture(scope="module")
def stsb_cfg():
    return compose().data


def test_packaged_stsb_has_the_official_splits(stsb_cfg):
    splits = load_splits(stsb_cfg)
    assert {k: len(v) for k, v in splits.items()} == {"train": 5749, "val": 1500, "test": 1379}
    for pairs in splits.values():
        assert pairs.scores.min() >= 0.0 and pairs.scores.max() <= 1.0
    first = splits["train"]
    assert first.sentences1[0] == "A plane is taking off."
    assert first.sentences2[0] == "An air plane is taking off."
    assert first.scores[0] == pytest.approx(1.0)
    assert first.lines[0] == 1


def test_nine_field_lines_keep_sentences_from_fields_6_and_7(stsb_cfg):
    path = REPO / "nexus/data/stsbenchmark/sts-train.csv"
    lines = path.read_text(encoding="utf-8").splitlines()
    line_no = next(i for i, line in enumerate(lines, 1) if len(line.split("\t")) == 9)
    fields = lines[line_no - 1].split("\t")
    pairs = read_pairs(str(path), stsb_cfg)
    row = int(np.flatnonzero(pairs.lines == line_no)[0])
    assert pairs.sentences1[row] == fields[5].strip()
    assert pairs.sentences2[row] == fields[6].strip()
    assert pairs.scores[row] == pytest.approx(float(fields[4]) / 5)


def test_row_limit_keeps_the_first_rows(stsb_cfg):
    cfg = OmegaConf.merge(stsb_cfg, {"limit": {"train": 10, "val": 3, "test": 1}})
    splits = load_splits(cfg)
    assert [len(splits[s]) for s in ("train", "val", "test")] == [10, 3, 1]
    assert list(splits["val"].lines) == [1, 2, 3]


def test_custom_column_layout(tmp_path, stsb_cfg):
    path = tmp_path / "pairs.csv"
    path.write_text("s1,s2,label\nA cat.,A dog.,0.25\nRain.,It rains.,1\n")
    cfg = OmegaConf.merge(stsb_cfg, {"delimiter": ",", "skip_header": True, "score_max": 1.0,
                                     "columns": {"sentence1": 1, "sentence2": 2, "score": 3}})
    pairs = read_pairs(str(path), cfg)
    assert pairs.sentences2 == ["A dog.", "It rains."]
    assert list(pairs.scores) == pytest.approx([0.25, 1.0])
    assert list(pairs.lines) == [2, 3]


GOOD = "g\tx\t2012\t1\t{score}\t{a}\t{b}"


@pytest.mark.parametrize(
    "content, message",
    [
        (b"", "no sentence pairs"),
        (GOOD.format(score="3.0", a="A", b="B").encode() + b"\nonly\tthree\tfields\n", ":2: 3 fields, expected at least 7"),
        (GOOD.format(score="3.0", a="A", b=" ").encode(), ":1: empty sentence"),
        (GOOD.format(score="high", a="A", b="B").encode(), ":1: score 'high' is not a number"),
        (GOOD.format(score="5.5", a="A", b="B").encode(), ":1: score 5.5 is outside 0..5"),
        (GOOD.format(score="-1", a="A", b="B").encode(), ":1: score -1.0 is outside 0..5"),
        (GOOD.format(score="nan", a="A", b="B").encode(), ":1: score nan is outside 0..5"),
        (GOOD.format(score="3", a="A", b="B").encode() + b"\n" + GOOD.format(score="3", a="caf\xe9", b="B").encode("latin-1"),
         ":2: not valid UTF-8"),
    ],
    ids=["empty", "too-few-fields", "empty-sentence", "not-a-number", "above-5", "below-0", "nan", "undecodable"],
)
def test_bad_files_are_refused_with_file_and_line(tmp_path, stsb_cfg, content, message):
    path = tmp_path / "bad.csv"
    path.write_bytes(content)
    with pytest.raises(UserError) as err:
        read_pairs(str(path), stsb_cfg)
    assert str(path) in str(err.value)
    assert message in str(err.value)


def test_missing_file(tmp_path, stsb_cfg):
    with pytest.raises(UserError, match="data file not found: .*nope.csv"):
        read_pairs(str(tmp_path / "nope.csv"), stsb_cfg)
