import math
import os

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from deeprec_lite.compat import tf
from deeprec_lite.data import (BadFileCounter, BadFileError, CategoricalField, LabelField,
                               NumericField, Schema, parquet_num_rows, read_parquet,
                               read_parquet_rows)
from tests.data.dataset_rows import dataset_columns

SCHEMA = Schema(
    labels=[LabelField("click")],
    categorical=[CategoricalField("user"),
                 CategoricalField("city", dtype="string", default="?"),
                 CategoricalField("tags", kind="multi", max_len=3),
                 CategoricalField("hist", dtype="string", kind="sequence", max_len=2, keep="last")],
    numeric=[NumericField("price", transform="log"),
             NumericField("age", transform="minmax", min=10, max=60, fill_value=-1.0)])


def _random_rows(rng, n, offset):
    rows = []
    for i in range(n):
        rows.append({
            "click": float(rng.integers(0, 2)),
            "user": None if rng.random() < 0.1 else int(rng.integers(-5, 2**62)),
            "city": None if rng.random() < 0.1 else f"city{rng.integers(0, 50)}",
            "tags": None if rng.random() < 0.1 else [int(t) for t in rng.integers(0, 99, rng.integers(0, 6))],
            "hist": None if rng.random() < 0.1 else [f"h{t}" for t in rng.integers(0, 9, rng.integers(0, 4))],
            "price": None if rng.random() < 0.1 else float(rng.normal() * 100),
            "age": None if rng.random() < 0.1 else float(rng.integers(0, 90)),
            "row_id": offset + i,        # an extra column the schema does not name
        })
    return rows


def _expected(rows):
    """Independent per-row reference of what the reader must give."""
    out = {k: [] for k in ["__label__", "user", "city", "tags", "hist", "price", "age"]}
    for r in rows:
        out["__label__"].append(r["click"])
        out["user"].append(-1 if r["user"] is None else r["user"])
        out["city"].append("?" if r["city"] is None else r["city"])
        out["tags"].append((r["tags"] or [])[:3])
        out["hist"].append((r["hist"] or [])[-2:])
        p = r["price"]
        out["price"].append(0.0 if p is None else float(np.float32(math.copysign(math.log1p(abs(p)), p))))
        a = r["age"]
        out["age"].append(-1.0 if a is None else float(np.float32((min(max(a, 10), 60) - 10) / 50)))
    return out


def _write(path, rows, row_group_size=17):
    table = pa.table({
        "click": pa.array([r["click"] for r in rows], pa.float64()),
        "user": pa.array([r["user"] for r in rows], pa.int64()),
        "city": pa.array([r["city"] for r in rows], pa.string()).dictionary_encode(),
        "tags": pa.array([r["tags"] for r in rows], pa.list_(pa.int32())),
        "hist": pa.array([r["hist"] for r in rows], pa.list_(pa.string())),
        "price": pa.array([r["price"] for r in rows], pa.float64()),
        "age": pa.array([None if r["age"] is None else int(r["age"]) for r in rows], pa.int32()),
        "row_id": pa.array([r["row_id"] for r in rows], pa.int64()),
    })
    pq.write_table(table, path, row_group_size=row_group_size)


@pytest.fixture(scope="module")
def files(tmp_path_factory):
    d = tmp_path_factory.mktemp("pq")
    rng = np.random.default_rng(7)
    sizes = [100, 37, 64]
    rows, paths, offset = [], [], 0
    for i, n in enumerate(sizes):
        part = _random_rows(rng, n, offset)
        offset += n
        path = str(d / f"part{i}.parquet")
        _write(path, part)
        rows.extend(part)
        paths.append(path)
    return paths, rows


def _assert_columns_equal(got, expected):
    assert set(got) == set(expected), (set(got), set(expected))
    for name in expected:
        assert got[name] == expected[name], name


def test_round_trip_single_reader_exact_batches(files):
    paths, rows = files
    ds = read_parquet(paths, SCHEMA, batch_size=30, num_parallel_reads=1, chunk_rows=16)
    got, sizes = dataset_columns(ds)
    _assert_columns_equal(got, _expected(rows))
    assert sizes == [30] * 6 + [21]


def test_types_and_ragged_output(files):
    paths, _ = files
    features, label = next(iter(read_parquet(paths, SCHEMA, batch_size=8)))
    assert label.dtype == tf.float32 and label.shape == (8,)
    assert features["user"].dtype == tf.int64 and features["city"].dtype == tf.string
    assert isinstance(features["tags"], tf.RaggedTensor) and features["tags"].dtype == tf.int64
    assert isinstance(features["hist"], tf.RaggedTensor) and features["hist"].dtype == tf.string
    assert features["price"].dtype == tf.float32
    assert "row_id" not in features  # column projection: only schema columns


def test_parallel_reads_give_every_row_once(files):
    paths, rows = files
    ds = read_parquet(paths, SCHEMA, batch_size=16, num_parallel_reads=3, deterministic=False)
    got, sizes = dataset_columns(ds)
    expected = _expected(rows)
    assert sorted(got["user"]) == sorted(expected["user"])
    assert sorted(map(tuple, got["tags"])) == sorted(map(tuple, expected["tags"]))
    assert sum(sizes) == len(rows) and max(sizes) == 16


def test_glob_and_row_ranges(files):
    paths, rows = files
    directory = os.path.dirname(paths[0])
    got, _ = dataset_columns(read_parquet(os.path.join(directory, "*.parquet"), SCHEMA, 50,
                                          num_parallel_reads=1))
    assert got["user"] == _expected(rows)["user"]
    assert parquet_num_rows(paths[0]) == 100
    pieces = list(read_parquet_rows(paths[0], SCHEMA, 15, 52, chunk_rows=10))
    users = np.concatenate([p["user"] for p in pieces]).tolist()
    assert users == _expected(rows[15:52])["user"]


def test_multiple_labels_give_a_dict(tmp_path):
    path = str(tmp_path / "two.parquet")
    pq.write_table(pa.table({"a": [1.0, 0.0], "b": [0, 1], "x": [5, 6]}), path)
    schema = Schema(labels=[LabelField("a"), LabelField("b", dtype="int64")],
                    categorical=[CategoricalField("x")])
    features, labels = next(iter(read_parquet(path, schema, 2)))
    assert labels["a"].numpy().tolist() == [1.0, 0.0] and labels["b"].dtype == tf.int64


def test_truncated_file_names_file(files, tmp_path):
    src = files[0][0]
    bad = tmp_path / "truncated.parquet"
    bad.write_bytes(open(src, "rb").read()[:-100])
    with pytest.raises(BadFileError, match=r"truncated\.parquet.*truncated or corrupt"):
        read_parquet(str(bad), SCHEMA, 8)


def test_missing_column_names_file_and_column(tmp_path):
    path = tmp_path / "nocity.parquet"
    pq.write_table(pa.table({"click": [1.0], "user": [1]}), str(path))
    with pytest.raises(BadFileError, match=r"nocity\.parquet.*column 'city'.*missing") as e:
        read_parquet(str(path), SCHEMA, 8)
    assert e.value.column == "city" and e.value.path == str(path)


def test_duplicated_column_names_file_and_column(files, tmp_path):
    path = str(tmp_path / "twice.parquet")
    columns = [[1.0], [1], ["a"], [[1]], [["h"]], [1.0], [20.0], [2]]
    names = ["click", "user", "city", "tags", "hist", "price", "age", "user"]
    pq.write_table(pa.Table.from_arrays([pa.array(c) for c in columns], names), path)
    with pytest.raises(BadFileError, match=r"twice\.parquet.*column 'user'.*appears 2 times"):
        read_parquet(path, SCHEMA, 8)
    with pytest.raises(BadFileError, match=r"twice\.parquet.*column 'user'.*appears 2 times"):
        list(read_parquet_rows(path, SCHEMA))
    counter = BadFileCounter()
    got, _ = dataset_columns(read_parquet([path, files[0][0]], SCHEMA, 10, skip_bad_files=True,
                                          bad_files=counter, num_parallel_reads=1))
    assert got["user"] == _expected(files[1][:100])["user"]
    assert [p for p, _ in counter.skipped] == [path]
    assert "column 'user'" in counter.skipped[0][1]


def test_wrong_column_type_names_file_and_column(files, tmp_path):
    rows = files[1][:5]
    path = str(tmp_path / "wrongtype.parquet")
    _write(path, rows)
    table = pq.read_table(path)
    table = table.set_column(table.schema.get_field_index("user"), "user",
                             pa.array([str(r["user"]) for r in rows]))
    pq.write_table(table, path)
    with pytest.raises(BadFileError, match=r"wrongtype\.parquet.*column 'user'.*type string"):
        read_parquet(path, SCHEMA, 8)


def test_skip_bad_files_counts_them(files, tmp_path):
    paths, rows = files
    truncated = tmp_path / "t.parquet"
    truncated.write_bytes(open(paths[0], "rb").read()[:50])
    missing = tmp_path / "m.parquet"
    pq.write_table(pa.table({"click": [1.0]}), str(missing))
    counter = BadFileCounter()
    ds = read_parquet([str(truncated), paths[1], str(missing), paths[2]], SCHEMA, 10,
                      skip_bad_files=True, bad_files=counter, num_parallel_reads=1)
    got, _ = dataset_columns(ds)
    assert got["user"] == _expected(rows[100:])["user"]
    assert counter.count == 2
    assert [p for p, _ in counter.skipped] == [str(truncated), str(missing)]


def test_argument_errors(files):
    paths, _ = files
    with pytest.raises(ValueError, match="batch_size.*0"):
        read_parquet(paths, SCHEMA, 0)
    with pytest.raises(ValueError, match="matches no file"):
        read_parquet("/nonexistent/*.parquet", SCHEMA, 4)
    with pytest.raises(ValueError, match="does not exist"):
        read_parquet("/nonexistent/a.parquet", SCHEMA, 4)
