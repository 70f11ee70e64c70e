"""The C++ reader op behind read_parquet / read_csv: checkpointed position, work-item ranges,
Arrow column types, ids hashed in the op, and bit-for-bit agreement with the Python (pyarrow +
numpy) conversion."""
import dataclasses

import numpy as np
import pyarrow as pa
import pyarrow.csv as pacsv
import pyarrow.parquet as pq
import pytest

from deeprec_lite.compat import tf
from deeprec_lite.data import (CategoricalField, LabelField, NumericField, Schema, SyntheticCTR,
                               hash_string_ids, read_csv, read_csv_rows, read_parquet,
                               read_parquet_rows, write_csv, write_parquet)
from deeprec_lite.data.formats import arrow_dataset
from deeprec_lite.data.formats.column_batch import RaggedColumn, concat_batches
from deeprec_lite.data.formats.csv_reader import CsvFormat
from deeprec_lite.data.formats.line_index import row_offsets
from tests.data.dataset_rows import dataset_columns

GEN = SyntheticCTR(seed=3, num_categorical=4, num_numeric=3, id_dtype="string",
                   categorical_missing_rate=0.1)


@pytest.fixture(scope="module")
def files(tmp_path_factory):
    root = tmp_path_factory.mktemp("native")
    parquet = write_parquet(GEN, str(root / "pq"), 900, rows_per_file=300, row_group_rows=70).paths
    csv = write_csv(GEN, str(root / "csv"), 900, rows_per_file=300).paths
    return parquet, csv


def _python_columns(batches, schema):
    """name -> per-row values of numpy column batches (the Python conversion path)."""
    merged = concat_batches(list(batches))
    out = {}
    for field in schema.fields:
        col = merged[field.name]
        name = "__label__" if isinstance(field, LabelField) else field.name
        if isinstance(col, RaggedColumn):
            out[name] = [[v.decode() if isinstance(v, bytes) else v for v in row]
                         for row in col.to_lists()]
        else:
            out[name] = [v.item() if isinstance(v, np.generic) else v for v in col]
    return out


def _rest(iterator):
    return dataset_columns(_Remaining(iterator))[0]


class _Remaining:
    def __init__(self, iterator):
        self.iterator = iterator

    def __iter__(self):
        return self.iterator


@pytest.mark.parametrize("kind", ["parquet", "csv"])
def test_equals_python_conversion_bit_for_bit(files, kind):
    paths = files[0] if kind == "parquet" else files[1]
    if kind == "parquet":
        native = read_parquet(paths, GEN.schema, 128, num_parallel_reads=1)
        python = [b for p in paths for b in read_parquet_rows(p, GEN.schema)]
    else:
        native = read_csv(paths, GEN.schema, 128, num_parallel_reads=1)
        python = [b for p in paths for b in read_csv_rows(p, GEN.schema, CsvFormat())]
    got, sizes = dataset_columns(native)
    want = _python_columns(python, GEN.schema)
    assert sizes == [128] * 7 + [4]  # 900 rows, batches cross the files
    assert set(got) == set(want)
    for name in want:
        np.testing.assert_array_equal(np.asarray(got[name]), np.asarray(want[name]), err_msg=name)


@pytest.mark.parametrize("kind,parallel", [("parquet", 1), ("parquet", 2), ("csv", 2)])
def test_checkpoint_resumes_after_the_last_delivered_batch(files, tmp_path, kind, parallel):
    def make():
        if kind == "parquet":
            return read_parquet(files[0], GEN.schema, 100, num_parallel_reads=parallel,
                                chunk_rows=64)
        return read_csv(files[1], GEN.schema, 100, num_parallel_reads=parallel)

    whole = dataset_columns(make())[0]
    iterator = iter(make())
    for _ in range(4):  # 400 rows delivered, mid-file and mid-record-batch
        next(iterator)
    saved = tf.train.Checkpoint(iterator=iterator).save(str(tmp_path / "it"))
    rest = _rest(iterator)
    restored = iter(make())
    tf.train.Checkpoint(iterator=restored).restore(saved).assert_consumed()
    # saved again before it reads: the restored position is kept
    resaved = tf.train.Checkpoint(iterator=restored).save(str(tmp_path / "again"))
    restored = iter(make())
    tf.train.Checkpoint(iterator=restored).restore(resaved).assert_consumed()
    again = _rest(restored)
    for name in whole:
        assert again[name] == rest[name], name
        assert len(rest[name]) == 500
    if parallel == 1:
        for name in whole:
            assert whole[name][400:] == rest[name], name


def _csv_lines(quoted_breaks):
    """40 records with blank lines between them, and with line breaks inside quotes."""
    lines = ["y,c,s"]
    for i in range(40):
        quoted = quoted_breaks and i % 3 == 0
        lines.append(f'1,{i},"a\nb{i}"' if quoted else f"0,{i},t{i}")
        lines += [""] * (i % 3 == 1)
    return "\n".join(lines) + "\n"


# Quoted line breaks need the file in one block (Arrow's newlines_in_values is off); the
# 64-byte blocks give many record batches, which the restored reader drops whole or sliced.
@pytest.mark.parametrize("quoted_breaks,block_size", [(True, 1 << 20), (False, 64)])
def test_csv_checkpoint_counts_records_not_lines(tmp_path, quoted_breaks, block_size):
    path = tmp_path / "lines.csv"
    path.write_text(_csv_lines(quoted_breaks))
    schema = Schema(labels=[LabelField("y")],
                    categorical=[CategoricalField("c"), CategoricalField("s", dtype="string")])
    want = pacsv.read_csv(path).to_pydict()
    assert len(want["c"]) == 40

    def make():
        return read_csv(str(path), schema, 6, num_parallel_reads=1, block_size=block_size)

    for delivered in (1, 4):
        iterator = iter(make())
        for _ in range(delivered):
            next(iterator)
        saved = tf.train.Checkpoint(iterator=iterator).write(str(tmp_path / f"it{delivered}"))
        restored = iter(make())
        tf.train.Checkpoint(iterator=restored).read(saved).assert_consumed()
        rest = _rest(restored)
        assert rest["c"] == want["c"][6 * delivered:]
        assert rest["s"] == want["s"][6 * delivered:]


def test_parquet_row_ranges_read_only_those_rows(files):
    path = files[0][1]
    items = [(5, 140), (140, 141), (299, -1), (0, 3)]  # across row groups, one row, to the end
    ds = arrow_dataset.items_dataset(
        GEN.schema, [path] * 4, [a for a, _ in items], [b for _, b in items], 1000)
    got = dataset_columns(ds)[0]
    rows = _python_columns(read_parquet_rows(path, GEN.schema), GEN.schema)
    for name, values in rows.items():
        assert got[name] == values[5:141] + values[299:] + values[0:3], name


def test_csv_byte_ranges_check_their_row_count(files):
    path = files[1][0]
    offsets = row_offsets(path, skip_header=True)
    csv = arrow_dataset.CsvOptions(",", True, None, [""], '"', 1 << 20)
    ds = arrow_dataset.items_dataset(GEN.schema, [path], [offsets[10]], [offsets[20]], 64,
                                     row_counts=[10], csv=csv)
    got = dataset_columns(ds)[0]
    rows = _python_columns(read_csv_rows(path, GEN.schema, CsvFormat()), GEN.schema)
    assert got["C1"] == rows["C1"][10:20]
    wrong = arrow_dataset.items_dataset(GEN.schema, [path], [offsets[10]], [offsets[20]], 64,
                                        row_counts=[11], csv=csv)
    with pytest.raises(tf.errors.InvalidArgumentError, match=r"parsed into 10 rows instead of 11"):
        list(wrong)


def test_arrow_column_types_are_converted(tmp_path):
    schema = Schema(
        labels=[LabelField("y", dtype="int64")],
        categorical=[CategoricalField("small", default=7),
                     CategoricalField("word", dtype="string", default="none"),
                     CategoricalField("joined", kind="multi", separator=";"),
                     CategoricalField("words", dtype="string", kind="multi", max_len=2,
                                      keep="last"),
                     CategoricalField("absent", dtype="string")],
        numeric=[NumericField("n")])
    table = pa.table({
        "y": pa.array([1.0, 0.0, 1.0, 0.0], pa.float32()),
        "small": pa.array([1, None, -3, 2**31 - 1], pa.int32()),
        "word": pa.array(["a", None, "a", "bb"]).dictionary_encode(),
        "joined": pa.array(["1;2", "", None, ";;5;"], pa.large_string()),
        "words": pa.array([["x", "y", "z"], [], None, ["", "w", None]],
                          pa.large_list(pa.string())),
        "absent": pa.nulls(4),
        "n": pa.array([1, None, 3, 4], pa.int16()),
    })
    path = str(tmp_path / "types.parquet")
    pq.write_table(table, path, row_group_size=3)
    got = dataset_columns(read_parquet(path, schema, 3))[0]
    assert got == {"__label__": [1, 0, 1, 0], "small": [1, 7, -3, 2**31 - 1],
                   "word": ["a", "none", "a", "bb"], "joined": [[1, 2], [], [], [5]],
                   "words": [["y", "z"], [], [], ["w"]],
                   "absent": ["__missing__"] * 4, "n": [1.0, 0.0, 3.0, 4.0]}
    hashed = dataset_columns(read_parquet(path, _hashed(schema), 3))[0]
    for name in ("word", "words", "absent"):  # nulls, dictionaries, lists, max_len
        assert hashed[name] == _tf_hash(got[name]), name
    assert {k: v for k, v in hashed.items() if k not in ("word", "words", "absent")} == {
        k: v for k, v in got.items() if k not in ("word", "words", "absent")}


def test_signed_log_equals_numpy_bit_for_bit(tmp_path):
    # integer counts below 4096 come from a table in the op, the others from log1p
    values = np.array([0.0, -0.0, 1.0, -1.0, 2.0, 4095.0, -4095.0, 4096.0, 4097.0, 1e15, -3e7,
                       0.5, -0.25, 1e-300, 4095.5, 2.0**52 + 1, 123456789.0, np.nan])
    schema = Schema(numeric=[NumericField("x", transform="log", fill_value=-2.0)])
    path = str(tmp_path / "x.parquet")
    pq.write_table(pa.table({"x": values}), path)
    got = dataset_columns(read_parquet(path, schema, 64))[0]["x"]
    want = (np.sign(values) * np.log1p(np.abs(values))).astype(np.float32)
    want[-1] = -2.0
    assert np.asarray(got, np.float32).tobytes() == want.tobytes()


def _hashed(schema):
    """The schema with every string id field hashed to int64."""
    return dataclasses.replace(schema, categorical=[
        dataclasses.replace(f, hash_to_int64=f.dtype == "string") for f in schema.categorical])


def _tf_hash(column):
    """hash_string_ids of one column's per-row values (lists for ragged fields)."""
    if column and isinstance(column[0], list):
        return hash_string_ids(tf.ragged.constant(column, tf.string)).to_list()
    return hash_string_ids(tf.constant(column, tf.string)).numpy().tolist()


@pytest.mark.parametrize("kind", ["parquet", "csv"])
def test_hashed_ids_are_the_tf_hash_of_the_string_ids(files, kind):
    hashed = _hashed(GEN.schema)
    if kind == "parquet":
        read, read_rows = read_parquet, lambda p, s: read_parquet_rows(p, s)
        paths = files[0]
    else:
        read, read_rows = read_csv, lambda p, s: read_csv_rows(p, s, CsvFormat())
        paths = files[1]
    strings = dataset_columns(read(paths, GEN.schema, 128, num_parallel_reads=1))[0]
    ds = read(paths, hashed, 128, num_parallel_reads=1)
    assert all(ds.element_spec[0][f.name].dtype == tf.int64 for f in hashed.categorical)
    got = dataset_columns(ds)[0]
    python = _python_columns([b for p in paths for b in read_rows(p, hashed)], hashed)
    for field in hashed.categorical:
        assert any(v == field.default for v in strings[field.name])  # missing ids included
        want = _tf_hash(strings[field.name])
        assert got[field.name] == want, field.name
        assert python[field.name] == want, field.name
    for name in ["__label__"] + [f.name for f in hashed.numeric]:
        assert got[name] == strings[name]


def test_zoo_model_trains_on_hashed_ids_with_int64_tables(files):
    from deeprec_lite import models
    from deeprec_lite.training import optimizers
    from deeprec_lite.kv import sparse_optimizers
    from deeprec_lite.compat import keras

    hashed = _hashed(GEN.schema)
    model = models.get("deepfm")(hashed, table=4, dnn=(8,))
    model.compile(optimizer=optimizers.KVOptimizer(sparse_optimizers.Adagrad(0.1),
                                                   keras.optimizers.Adam(0.01)),
                  loss="binary_crossentropy")
    history = model.fit(read_parquet(files[0], hashed, 128), epochs=2, verbose=0).history
    assert np.isfinite(history["loss"]).all()
    strings = dataset_columns(read_parquet(files[0], GEN.schema, 128))[0]
    for field in hashed.categorical:
        kv = model.get_layer(f"embedding_{field.name}").kv
        assert kv.key_dtype == tf.int64
        assert sorted(kv.export().keys.numpy().tolist()) == sorted(set(_tf_hash(strings[field.name])))


def test_workers_share_the_row_groups(files):
    paths = files[0]  # 3 files of 300 rows in row groups of 70: 5 groups each
    whole = dataset_columns(read_parquet(paths, GEN.schema, 64, num_parallel_reads=1))[0]["C1"]
    groups = [whole[f * 300 + g * 70:f * 300 + min(g * 70 + 70, 300)]
              for f in range(3) for g in range(5)]
    for index in range(2):
        got = dataset_columns(read_parquet(paths, GEN.schema, 64, num_parallel_reads=1,
                                           shard=(index, 2)))[0]["C1"]
        assert got == [v for group in groups[index::2] for v in group]
    with pytest.raises(ValueError, match=r"shard must be \(index, count\).*\(2, 2\)"):
        read_parquet(paths, GEN.schema, 64, shard=(2, 2))
