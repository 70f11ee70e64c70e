import os

import numpy as np
import pytest

from deeprec_lite.compat import tf
from deeprec_lite.data import (FRAPPE_FIELD_RANGES, BadFileError, CategoricalField, LabelField,
                               LibsvmLayout, Schema, frappe_schema, libsvm_num_rows, read_libsvm,
                               read_libsvm_rows)
from tests.data.dataset_rows import dataset_columns

RANGES = {"a": (0, 9), "b": (10, 19), "c": (20, 99)}
SCHEMA = Schema(labels=[LabelField("label")],
                categorical=[CategoricalField("a"), CategoricalField("b"),
                             CategoricalField("c", kind="multi", max_len=2)])


def _make_rows(rng, n):
    rows = []
    for _ in range(n):
        label = int(rng.choice([-1, 1]))
        feats = []
        if rng.random() < 0.8:
            feats.append((int(rng.integers(0, 10)), 1.0))
        if rng.random() < 0.8:
            feats.append((int(rng.integers(10, 20)), float(rng.integers(1, 5))))
        for _ in range(rng.integers(0, 4)):
            feats.append((int(rng.integers(20, 100)), 0.5))
        if rng.random() < 0.3:
            feats.append((int(rng.integers(500, 600)), 1.0))   # outside every range
        rows.append((label, feats))
    return rows


def _write(path, rows):
    with open(path, "w") as f:
        for label, feats in rows:
            f.write(" ".join([str(label)] + [f"{i}:{v:g}" for i, v in feats]) + " \r\n")


@pytest.fixture(scope="module")
def data(tmp_path_factory):
    d = tmp_path_factory.mktemp("svm")
    rows = _make_rows(np.random.default_rng(5), 120)
    path = str(d / "x.libfm")
    _write(path, rows)
    return path, rows


def test_default_layout_all_ids_ragged(data):
    path, rows = data
    got, _ = dataset_columns(read_libsvm(path, 50, with_values=True, num_parallel_reads=1))
    assert got["__label__"] == [1.0 if l > 0 else 0.0 for l, _ in rows]
    assert got["ids"] == [[i for i, _ in f] for _, f in rows]
    assert got["ids_value"] == [[v for _, v in f] for _, f in rows]


def test_field_ranges(data):
    path, rows = data
    ds = read_libsvm(path, 32, schema=SCHEMA, field_ranges=RANGES, with_values=True,
                     binary_label=False)
    got, _ = dataset_columns(ds)
    assert got["__label__"] == [float(l) for l, _ in rows]
    assert got["a"] == [next((i for i, _ in f if i < 10), -1) for _, f in rows]
    assert got["b_value"] == [next((v for i, v in f if 10 <= i < 20), 0.0) for _, f in rows]
    assert got["c"] == [[i for i, _ in f if 20 <= i < 100][:2] for _, f in rows]
    features, _ = next(iter(ds))
    assert isinstance(features["c"], tf.RaggedTensor) and features["a"].dtype == tf.int64


def test_row_ranges(data):
    path, rows = data
    assert libsvm_num_rows(path) == 120
    layout = LibsvmLayout()
    pieces = list(read_libsvm_rows(path, layout, 7, 33))
    assert pieces[0]["ids"].to_lists() == [[i for i, _ in f] for _, f in rows[7:33]]
    blocks = list(read_libsvm_rows(path, layout, block_bytes=300))  # many small blocks
    assert sum(len(b["label"]) for b in blocks) == 120


def test_whitespace_lines_are_blank_in_counts_and_ranges(tmp_path):
    # The line index and the parser agree: lines of whitespace only are no rows.
    path = str(tmp_path / "blank.libfm")
    lines = [f"1 {i}:1\n" for i in range(12)]
    for at, blank in ((10, "   \n"), (7, " \r\n"), (3, "\t\n"), (0, "\f \v\n")):
        lines.insert(at, blank)
    with open(path, "w", newline="") as f:
        f.write("".join(lines) + " \t")
    layout = LibsvmLayout()
    assert libsvm_num_rows(path) == 12
    assert [i for b in read_libsvm_rows(path, layout) for i in b["ids"].to_lists()] == [
        [i] for i in range(12)]
    pieces = [b["ids"].to_lists() for lo in range(0, 12, 5)
              for b in read_libsvm_rows(path, layout, lo, lo + 5)]
    assert sum(pieces, []) == [[i] for i in range(12)]


def test_row_range_errors(data):
    path, _ = data
    with pytest.raises(ValueError, match="start must be a non-negative integer, got -2"):
        list(read_libsvm_rows(path, LibsvmLayout(), start=-2))
    with pytest.raises(ValueError, match="stop must be an integer >= 3 or None, got -1"):
        list(read_libsvm_rows(path, LibsvmLayout(), 3, -1))


def test_bad_lines(tmp_path):
    path = tmp_path / "bad.libfm"
    path.write_text("1 1:1 2:1\n-1 3:1 oops\n")
    with pytest.raises(tf.errors.OpError, match=r"bad\.libfm.*row 1.*index:value"):
        list(read_libsvm(str(path), 4))
    two = tmp_path / "two.libfm"
    two.write_text("1 1:1 2:1\n")
    with pytest.raises(BadFileError, match=r"two\.libfm.*column 'a'.*2 indices"):
        list(read_libsvm_rows(str(two), LibsvmLayout(SCHEMA, RANGES)))


def test_layout_errors():
    with pytest.raises(ValueError, match="no range for field 'c'"):
        LibsvmLayout(SCHEMA, {"a": (0, 9), "b": (10, 19)})
    with pytest.raises(ValueError, match=r"field_ranges\['a'\].*\(9, 0\)"):
        LibsvmLayout(SCHEMA, {**RANGES, "a": (9, 0)})
    with pytest.raises(ValueError, match=r"field_ranges\['a'\].*got 5"):
        LibsvmLayout(SCHEMA, {**RANGES, "a": 5})
    with pytest.raises(ValueError, match=r"'a' \(0, 10\) and 'b' \(10, 19\) overlap"):
        LibsvmLayout(SCHEMA, {**RANGES, "a": (0, 10)})
    with pytest.raises(ValueError, match=r"'b' \(10, 19\) and 'c' \(15, 99\) overlap"):
        LibsvmLayout(SCHEMA, {**RANGES, "c": (15, 99)})
    with pytest.raises(ValueError, match="dtype must be 'int64'"):
        LibsvmLayout(Schema(labels=[LabelField("y")],
                            categorical=[CategoricalField("s", dtype="string")]), {"s": (0, 1)})


FRAPPE = "/work/shared/data/frappe/frappe.validation.libfm"


@pytest.mark.skipif(not os.path.exists(FRAPPE), reason="shared Frappe data not present")
def test_frappe_validation_file():
    ds = read_libsvm(FRAPPE, 8192, schema=frappe_schema(), field_ranges=FRAPPE_FIELD_RANGES)
    got, _ = dataset_columns(ds)
    labels = np.array(got["__label__"])
    assert len(labels) == 57_722 and int(labels.sum()) == 19_063   # PROVENANCE.txt figures
    for name, (low, high) in FRAPPE_FIELD_RANGES.items():
        ids = np.array(got[name])
        assert ids.min() >= low and ids.max() <= high, name      # exactly one id per field
