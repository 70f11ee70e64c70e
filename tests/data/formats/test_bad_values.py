"""Readers reject labels that are not finite (or outside [0, 1] for a binary label) and
infinite numeric values, naming the file and the column; with skip_bad_files such a file
is skipped and counted. Missing numeric values stay missing (fill_value)."""
import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from deeprec_lite.data import (BadFileCounter, CategoricalField, LabelField, NumericField, Schema,
                               read_csv, read_libsvm, read_parquet)


def schema(binary=True):
    return Schema(labels=[LabelField("y", binary=binary)], categorical=[CategoricalField("c")],
                  numeric=[NumericField("n", fill_value=-1.0)])


def write_parquet(path, labels, numbers):
    pq.write_table(pa.table({"y": pa.array(labels, pa.float64()), "c": list(range(len(labels))),
                             "n": pa.array(numbers, pa.float64())}), path)
    return str(path)


def write_csv(path, labels, numbers):
    lines = ["y,c,n"] + [f"{y},{i},{n}" for i, (y, n) in enumerate(zip(labels, numbers))]
    path.write_text("\n".join(lines) + "\n")
    return str(path)


def read(reader, path, binary=True, **kwargs):
    read_files = read_parquet if reader == "parquet" else read_csv
    return list(read_files(path, schema(binary), batch_size=8, **kwargs))


WRITERS = {"parquet": write_parquet, "csv": write_csv}


@pytest.mark.parametrize("reader", WRITERS)
@pytest.mark.parametrize("labels, numbers, column, problem", [
    ([0, float("nan"), 1], [1, 2, 3], "y", r"1 label\(s\) are not finite \(first: nan\)"),
    ([0, float("inf"), float("-inf")], [1, 2, 3], "y", r"2 label\(s\) are not finite"),
    ([0, 2, 1], [1, 2, 3], "y", r"1 label\(s\) of a binary label are outside \[0, 1\] \(first: 2"),
    ([0, 1, 1], [1, float("inf"), 3], "n", r"1 infinite value\(s\) \(first: inf\)"),
])
def test_bad_values_name_the_file_and_column(tmp_path, reader, labels, numbers, column, problem):
    path = WRITERS[reader](tmp_path / f"bad.{reader}", labels, numbers)
    with pytest.raises(Exception, match=f"{path}.*column '{column}': {problem}"):
        read(reader, path)


@pytest.mark.parametrize("reader", WRITERS)
def test_a_file_with_bad_values_is_skipped_and_counted(tmp_path, reader):
    bad = WRITERS[reader](tmp_path / f"bad.{reader}", [0, float("nan")], [1, 2])
    good = WRITERS[reader](tmp_path / f"good.{reader}", [1, 0], [3, float("nan")])
    counter = BadFileCounter()
    batches = read(reader, [bad, good], skip_bad_files=True, bad_files=counter)
    features, labels = batches[0]
    np.testing.assert_array_equal(labels.numpy(), [1, 0])
    np.testing.assert_array_equal(features["n"].numpy(), [3, -1])  # missing -> fill_value
    assert counter.count == 1 and counter.skipped[0][0] == bad


def test_a_non_binary_label_may_be_any_finite_value(tmp_path):
    path = write_parquet(tmp_path / "reg.parquet", [2.5, -3.0], [1, 2])
    (features, labels), = read("parquet", path, binary=False)
    np.testing.assert_array_equal(labels.numpy(), [2.5, -3.0])


def test_libsvm_labels_must_be_finite(tmp_path):
    layout = dict(field_ranges={"a": (0, 4), "b": (5, 9)},
                  schema=Schema(labels=[LabelField("label", binary=True)],
                                categorical=[CategoricalField("a"), CategoricalField("b")]))
    path = tmp_path / "bad.libsvm"
    path.write_text("1 0:1 5:1\nnan 1:1 6:1\n")
    with pytest.raises(Exception, match=r"bad.libsvm.*column 'label': 1 label\(s\) are not finite"):
        list(read_libsvm(str(path), batch_size=4, **layout))
    path.write_text("-1 0:1 5:1\n1 1:1 6:1\n")  # binary_label maps -1 / 1 to 0 / 1
    (features, labels), = read_libsvm(str(path), batch_size=4, **layout)
    np.testing.assert_array_equal(labels.numpy(), [0, 1])


def _latin1_files(tmp_path):
    """A CSV with a Latin-1 cell in an int64 id column, a Parquet file with one in a
    multi-valued int64 field: (path, column, the message's quote of the bad value)."""
    csv = tmp_path / "latin1.csv"
    csv.write_bytes(b"y,c,n\n1,5,1\n0,caf\xe9,2\n")
    parquet = str(tmp_path / "latin1.parquet")
    ids = pa.array([b"1|2", b"3|caf\xe9"], pa.binary()).view(pa.string())  # not validated
    pq.write_table(pa.table({"y": [1.0, 0.0], "m": ids, "n": [1.0, 2.0]}), parquet)
    multi = Schema(labels=[LabelField("y")], categorical=[CategoricalField("m", kind="multi")],
                   numeric=[NumericField("n")])
    return [(read_csv, str(csv), schema(), "c"), (read_parquet, parquet, multi, "m")]


def test_non_utf8_values_are_escaped_in_errors(tmp_path):
    for read_files, path, fields, column in _latin1_files(tmp_path):
        with pytest.raises(Exception, match=rf"{path}', column '{column}': .*'caf\\xe9'"):
            list(read_files(path, fields, batch_size=8))
        counter = BadFileCounter()
        assert list(read_files(path, fields, batch_size=8, skip_bad_files=True,
                               bad_files=counter)) == []
        assert counter.skipped[0][0] == path
        assert rf"column '{column}'" in counter.skipped[0][1]
        assert r"'caf\xe9'" in counter.skipped[0][1]
