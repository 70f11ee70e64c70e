"""Benchmark: the C++ file readers against Arrow's own decoding, and model.fit from files.

All in one run, on the same Criteo-like rows (label, 13 counts with missing values,
26 ids; written by the synthetic generator into a temporary directory, two files per
format, each timed read going over them 5 times), batch 4096, every column of every batch materialized in the graph (as model.fit
consumes a dataset; a Python loop over 40 tensors a batch would add its own cost):

* ``read_parquet`` with string ids against pyarrow ``read_table`` of the same columns
  (decode only, the reference), the same files with the ids hashed to int64 in the op
  (``hash_to_int64``), and files with int64 ids;
* ``read_csv`` against ``pyarrow.csv.read_csv`` of the same columns with the same
  column types (decode only), and ``tf.data.experimental.make_csv_dataset``;
* DeepFM (KV embeddings, string ids) ``model.fit`` examples/s reading the Parquet files
  against the same model fed the same batches from memory (``Dataset.cache``d tensors).

When the shared Criteo sample is present it is also read (in place, 10 passes) by
``read_tsv`` and by make_csv_dataset. Last line:
``readers: parquet_rows_per_s=<a> parquet_vs_pyarrow_decode=<a/b> csv_rows_per_s=<c>
csv_vs_pyarrow_csv=<c/d> fit_from_files_vs_memory=<e>`` (a, b with string ids).

Usage: python bench/readers.py [--rows 200000] [--batch_size 4096] [--repeats 3] [--passes 5]
"""
import argparse
import dataclasses
import os
import sys
import tempfile
import time

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

import pyarrow as pa  # noqa: E402  pylint: disable=wrong-import-position
import pyarrow.csv as pacsv  # noqa: E402
import pyarrow.parquet as pq  # noqa: E402

from deeprec_lite.compat import tf  # noqa: E402
from deeprec_lite.data import (CRITEO_COLUMNS, SyntheticCTR, criteo_schema, read_csv,  # noqa: E402
                               read_parquet, read_tsv, write_csv, write_parquet)
from deeprec_lite.models import DeepFM  # noqa: E402
from deeprec_lite.training import optimizers  # noqa: E402

CRITEO_TSV = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..", "shared",
                          "data", "criteo", "criteo_head_10k.tsv")


def _touch_every_column(count, element):
    features, label = element
    sizes = [tf.size(v, out_type=tf.int64) for v in tf.nest.flatten(features, expand_composites=True)]
    return count + tf.shape(label, out_type=tf.int64)[0] + 0 * tf.add_n(sizes)


def dataset_rate(make_dataset, repeats):
    """Best rows/s of ``repeats`` passes, each in the graph (``Dataset.reduce``, as
    model.fit iterates: no Python per batch) over every tensor of every batch; the
    function is traced (and the dataset built) before the timing."""
    best = 0.0
    for _ in range(repeats):
        count = tf.function(lambda: make_dataset().reduce(tf.constant(0, tf.int64),
                                                          _touch_every_column))
        run = count.get_concrete_function()
        start = time.perf_counter()
        rows = int(run())
        best = max(best, rows / (time.perf_counter() - start))
    return best


def decode_rate(decode, paths, rows, repeats):
    """Best rows/s of decoding every file with ``decode(path)`` (the Arrow reference)."""
    best = 0.0
    for _ in range(repeats):
        start = time.perf_counter()
        for path in paths:
            decode(path)
        best = max(best, rows / (time.perf_counter() - start))
    return best


def csv_decoder(schema):
    types = {f.name: (pa.float64() if f.name == "label" or f.name.startswith("I")
                      else pa.string()) for f in schema.fields}
    convert = pacsv.ConvertOptions(column_types=types, include_columns=schema.column_names,
                                   strings_can_be_null=True)
    return lambda path: pacsv.read_csv(path, convert_options=convert)


def make_csv_dataset_fn(paths, columns, batch_size, delimiter=",", header=True):
    defaults = [[0.0] if (c == "label" or c.startswith("I")) else [""] for c in columns]

    def make():
        return tf.data.experimental.make_csv_dataset(
            paths, batch_size=batch_size, column_names=columns, column_defaults=defaults,
            label_name="label", field_delim=delimiter, header=header, num_epochs=1,
            shuffle=False, num_parallel_reads=2, num_rows_for_inference=0)
    return make


def fit_rate(schema, dataset, rows, repeats):
    """Best examples/s of one model.fit epoch over ``dataset`` (traced before timing)."""
    model = DeepFM(schema, table=16, dnn=(256, 128))
    model.compile(optimizer=optimizers.Adagrad(0.05), loss="binary_crossentropy")
    model.fit(dataset.take(2), verbose=0)
    best = 0.0
    for _ in range(repeats):
        start = time.perf_counter()
        model.fit(dataset, verbose=0)
        best = max(best, rows / (time.perf_counter() - start))
    return best


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=200_000)
    parser.add_argument("--batch_size", type=int, default=4096)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--passes", type=int, default=5,
                        help="times each timed read goes over the files (start-up amortized)")
    args = parser.parse_args()
    rows, batch, repeats, passes = args.rows, args.batch_size, args.repeats, args.passes
    strings = SyntheticCTR(seed=0, id_dtype="string")
    ints = SyntheticCTR(seed=0, id_dtype="int64")
    schema = strings.schema
    results = {}
    with tempfile.TemporaryDirectory() as tmp:
        per_file = (rows + 1) // 2
        pq_paths = write_parquet(strings, os.path.join(tmp, "pq"), rows, rows_per_file=per_file).paths
        pq_int_paths = write_parquet(ints, os.path.join(tmp, "pq_int"), rows,
                                     rows_per_file=per_file).paths
        csv_paths = write_csv(strings, os.path.join(tmp, "csv"), rows, rows_per_file=per_file).paths
        size_mb = sum(os.path.getsize(p) for p in csv_paths) / 2**20
        print(f"{rows} rows, {len(schema.column_names)} columns, CSV {size_mb:.0f} MiB in "
              f"{len(csv_paths)} files, batch {batch}, best of {repeats}")
        columns = schema.column_names
        pq_passes, pq_int_passes, csv_passes = (
            paths * passes for paths in (pq_paths, pq_int_paths, csv_paths))
        results["read_parquet (string ids)"] = dataset_rate(
            lambda: read_parquet(pq_passes, schema, batch), repeats)
        results["pyarrow read_table (string ids)"] = decode_rate(
            lambda p: pq.read_table(p, columns=columns), pq_passes, rows * passes, repeats)
        hashed = dataclasses.replace(schema, categorical=[
            dataclasses.replace(f, hash_to_int64=True) for f in schema.categorical])
        results["read_parquet (string ids hashed)"] = dataset_rate(
            lambda: read_parquet(pq_passes, hashed, batch), repeats)
        results["read_parquet (int64 ids)"] = dataset_rate(
            lambda: read_parquet(pq_int_passes, ints.schema, batch), repeats)
        results["pyarrow read_table (int64 ids)"] = decode_rate(
            lambda p: pq.read_table(p, columns=columns), pq_int_passes, rows * passes, repeats)
        results["read_csv"] = dataset_rate(lambda: read_csv(csv_passes, schema, batch), repeats)
        results["pyarrow.csv.read_csv"] = decode_rate(csv_decoder(schema), csv_passes,
                                                      rows * passes, repeats)
        results["tf make_csv_dataset"] = dataset_rate(
            make_csv_dataset_fn(csv_paths, columns, batch), repeats)
        from_files = read_parquet(pq_paths, schema, batch)
        in_memory = read_parquet(pq_paths, schema, batch).cache()
        for _ in in_memory:  # read once, outside the timing
            pass
        results["DeepFM fit from Parquet (examples/s)"] = fit_rate(schema, from_files, rows,
                                                                   repeats)
        results["DeepFM fit from memory (examples/s)"] = fit_rate(schema, in_memory, rows,
                                                                  repeats)
    if os.path.exists(CRITEO_TSV):
        passes = [CRITEO_TSV] * 10       # the shared sample, read in place 10 times
        results["criteo sample: read_tsv"] = dataset_rate(
            lambda: read_tsv(passes, criteo_schema(), batch, header=False,
                             column_names=CRITEO_COLUMNS), repeats)
        results["criteo sample: make_csv_dataset"] = dataset_rate(
            make_csv_dataset_fn(passes, CRITEO_COLUMNS, batch, delimiter="\t", header=False),
            repeats)
    print(f"{'reader':<40} {'rows/s':>12}")
    for name, speed in results.items():
        print(f"{name:<40} {speed:>12,.0f}")
    parquet = results["read_parquet (string ids)"]
    ratio = parquet / results["pyarrow read_table (string ids)"]
    int_ratio = results["read_parquet (int64 ids)"] / results["pyarrow read_table (int64 ids)"]
    csv = results["read_csv"]
    fit = (results["DeepFM fit from Parquet (examples/s)"]
           / results["DeepFM fit from memory (examples/s)"])
    hashed_ratio = (results["read_parquet (string ids hashed)"]
                    / results["pyarrow read_table (string ids)"])
    print(f"string ids hashed in the op: read_parquet_vs_pyarrow_decode={hashed_ratio:.2f}; "
          f"int64 ids: read_parquet_vs_pyarrow_decode={int_ratio:.2f}; read_csv vs "
          f"make_csv_dataset {csv / results['tf make_csv_dataset']:.2f}x")
    print(f"readers: parquet_rows_per_s={parquet:.0f} parquet_vs_pyarrow_decode={ratio:.2f} "
          f"csv_rows_per_s={csv:.0f} csv_vs_pyarrow_csv={csv / results['pyarrow.csv.read_csv']:.2f} "
          f"fit_from_files_vs_memory={fit:.2f}")


if __name__ == "__main__":
    main()
