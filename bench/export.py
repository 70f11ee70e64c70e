"""Filtered export: throughput against raw pyarrow, size kept by threshold, AUC of
the filtered serving model.

1. A KVVariable of `--keys` keys (dim `--dim`) with Zipf-like freqs: `--lookups`
   draws from a power law over the keys (exponent 1.1, like the synthetic
   generator's id popularity), plus one lookup per key; versions spread over 5 steps.
   Export throughput (keys/s) of `export_embeddings` at min_freq 0 (everything
   written: snapshot of the table, filter, Parquet files on several threads,
   sha256 checksums, manifest) against `pyarrow.parquet.write_table` of the same
   unfiltered arrays, measured in the same run (best of `--repeats`).
2. Keys and bytes on disk kept at a few min_freq thresholds.
3. A DeepFM trained on synthetic data without admission (so rare keys are in
   the tables), exported as serving SavedModels unfiltered and at each
   threshold, loaded with tf.saved_model.load, and scored (AUC) on held-out rows
   of the next day.

Last line: export: vs_raw_pyarrow=<x> size_ratio_at_min_freq_2=<s> auc_drop_at_min_freq_2=<d>
"""
import argparse
import os
import shutil
import tempfile
import time

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from deeprec_lite import KVVariable, cli
from deeprec_lite.compat import tf
from deeprec_lite.data.auc import roc_auc
from deeprec_lite.data.synthetic.generator import SyntheticCTR, SyntheticConfig
from deeprec_lite.export import export_embeddings, export_saved_model

THRESHOLDS = (0, 2, 5, 10)


def zipf_table(num_keys, dim, lookups, seed=0):
    """A KVVariable whose keys' freqs follow a power law (1 + Zipf draws)."""
    rng = np.random.default_rng(seed)
    u = rng.random(lookups)
    # closed-form inverse CDF of a continuous power law with exponent 1.1 over [1, N]
    s, n = 1.1, float(num_keys)
    ranks = ((n ** (1 - s) - 1) * u + 1) ** (1 / (1 - s))
    counts = 1 + np.bincount(np.minimum(ranks.astype(np.int64) - 1, num_keys - 1),
                             minlength=num_keys)
    keys = (np.arange(num_keys, dtype=np.uint64) * np.uint64(0x9E3779B97F4A7C15)
            >> np.uint64(2)).astype(np.int64)  # scrambled, distinct, positive
    kv = KVVariable(dim, initializer="uniform", name="zipf")
    for step, part in enumerate(np.array_split(np.arange(num_keys), 5)):
        kv.lookup_or_insert(keys[part], counts=counts[part], global_step=step + 1)
    kv.step.assign(5)
    return kv


def raw_pyarrow_write(kv, path):
    """The reference: the same unfiltered arrays written with pyarrow directly."""
    r = kv.export()
    values = r.values.numpy()
    table = pa.Table.from_arrays(
        [pa.array(r.keys.numpy()),
         pa.FixedSizeListArray.from_arrays(pa.array(values.reshape(-1)), values.shape[1]),
         pa.array(r.freqs.numpy()), pa.array(r.versions.numpy())],
        names=["key", "value", "freq", "version"])
    pq.write_table(table, path)


def best_time(fn, repeats):
    best = float("inf")
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        best = min(best, time.perf_counter() - start)
    return best


def disk_bytes(manifest):
    return sum(f["bytes"] for t in manifest["tables"].values() for f in t["files"])


def throughput_and_size(args, tmp):
    kv = zipf_table(args.keys, args.dim, args.lookups)
    n = int(kv.size())
    raw_path = os.path.join(tmp, "raw.parquet")
    out = os.path.join(tmp, "export")
    t_raw = best_time(lambda: raw_pyarrow_write(kv, raw_path), args.repeats)
    t_export = best_time(lambda: export_embeddings(kv, out, overwrite=True), args.repeats)
    raw_bytes = os.path.getsize(raw_path)
    print(f"{n} keys, dim {args.dim}")
    print(f"{'writer':>28} {'keys/s':>12} {'seconds':>8} {'MiB':>8}")
    print(f"{'raw pyarrow write_table':>28} {n / t_raw:>12.0f} {t_raw:>8.2f} "
          f"{raw_bytes / 2 ** 20:>8.1f}")
    sizes = {}
    for min_freq in THRESHOLDS:
        manifest = export_embeddings(kv, out, min_freq=min_freq, overwrite=True)
        sizes[min_freq] = (manifest["tables"]["zipf"]["kept"], disk_bytes(manifest))
    print(f"{'export_embeddings min_freq=0':>28} {n / t_export:>12.0f} {t_export:>8.2f} "
          f"{sizes[0][1] / 2 ** 20:>8.1f}")
    print(f"\n{'min_freq':>8} {'kept keys':>10} {'MiB':>8} {'size ratio':>10}")
    for min_freq, (kept, size) in sizes.items():
        print(f"{min_freq:>8} {kept:>10} {size / 2 ** 20:>8.1f} {size / sizes[0][1]:>10.3f}")
    shutil.rmtree(out, ignore_errors=True)
    return t_raw / t_export, sizes[2][1] / sizes[0][1]


def serving_auc(args, tmp):
    gen = SyntheticCTR(SyntheticConfig(num_categorical=args.fields, num_numeric=4, seed=1))
    model = cli.build_model("deepfm", gen.schema, 8, min_count=1, max_staleness=10 ** 9,
                            evict_every=10 ** 6)
    model.fit(gen.dataset(args.train_rows, 1024, day=0), verbose=0)
    features, labels = next(iter(gen.dataset(args.test_rows, args.test_rows, day=1)))
    labels = labels.numpy().reshape(-1)
    print(f"\n{'min_freq':>8} {'kept keys':>10} {'test AUC':>9}  (DeepFM, {args.train_rows} rows, "
          f"tested on {args.test_rows} rows of the next day)")
    aucs = {}
    for min_freq in THRESHOLDS:
        path = os.path.join(tmp, f"serving_{min_freq}")
        manifest = export_saved_model(model, path, min_freq=min_freq)
        loaded = tf.saved_model.load(path)
        aucs[min_freq] = roc_auc(labels, loaded.serve(features).numpy().reshape(-1))
        kept = sum(t["kept"] for t in manifest["tables"].values())
        print(f"{min_freq:>8} {kept:>10} {aucs[min_freq]:>9.5f}")
        del loaded
        shutil.rmtree(path)
    return aucs[0] - aucs[2]


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--keys", type=int, default=5_000_000)
    parser.add_argument("--dim", type=int, default=16)
    parser.add_argument("--lookups", type=int, default=20_000_000)
    parser.add_argument("--repeats", type=int, default=2)
    parser.add_argument("--fields", type=int, default=8)
    parser.add_argument("--train-rows", type=int, default=200_000)
    parser.add_argument("--test-rows", type=int, default=50_000)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        ratio, size_ratio = throughput_and_size(args, tmp)
        auc_drop = serving_auc(args, tmp)
    print(f"export: vs_raw_pyarrow={ratio:.2f} size_ratio_at_min_freq_2={size_ratio:.3f} "
          f"auc_drop_at_min_freq_2={auc_drop:.5f}")


if __name__ == "__main__":
    main()
