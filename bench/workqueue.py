"""Benchmark: WorkQueue (dynamic sharding over tf.data service) vs static sharding.

4 workers consume the same work items; worker 0 is 4x slower (its simulated
training step takes 4x as long). Static sharding gives each worker a fixed
quarter of the items, so the slow worker decides when the epoch ends; the
WorkQueue hands the next item to whichever worker asks first. Every row
carries a unique id, so rows lost and duplicated are counted independently of
the queue's own bookkeeping.

Last line: ``workqueue: speedup_vs_static=<x> rows_lost=<n> rows_duplicated=<m>``.

Usage: python bench/workqueue.py [--rows 131072] [--step_ms 20]
"""
import argparse
import os
import sys
import tempfile
import threading
import time

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from deeprec_lite.data import (CategoricalField, LocalDataService, ParquetSource, Schema,  # noqa: E402  pylint: disable=wrong-import-position
                               SyntheticCTR, WorkQueue)

NUM_WORKERS = 4
SLOWDOWN = 4.0


def write_inputs(directory, total_rows, num_files, row_group_rows=1024):
    """Synthetic Criteo-like Parquet files with an extra unique ``row_id`` column."""
    gen = SyntheticCTR(seed=0)
    per_file = total_rows // num_files
    paths = []
    for i in range(num_files):
        rows = gen.generate(per_file, start_row=i * per_file)
        table = gen.to_arrow(rows).append_column(
            "row_id", pa.array(np.arange(i * per_file, (i + 1) * per_file, dtype=np.int64)))
        path = os.path.join(directory, f"part{i}.parquet")
        pq.write_table(table, path, row_group_size=row_group_rows)
        paths.append(path)
    schema = Schema(labels=gen.schema.labels,
                    categorical=[*gen.schema.categorical, CategoricalField("row_id")],
                    numeric=gen.schema.numeric)
    return paths, schema, per_file * num_files


def run_workers(datasets, step_seconds):
    """One thread per worker; returns (epoch seconds, setup seconds, row ids per worker).

    The epoch lasts from the start until the last worker has received its last
    batch (iterator clean-up afterwards is not counted); setup is the time until
    every worker's iterator exists (included in the epoch).
    """
    got = [[] for _ in datasets]
    ends = [0.0] * len(datasets)
    created = [0.0] * len(datasets)
    errors = []

    def work(i):
        try:
            delay = step_seconds * (SLOWDOWN if i == 0 else 1.0)
            iterator = iter(datasets[i])
            created[i] = time.perf_counter()
            for features, _ in iterator:
                got[i].append(features["row_id"].numpy())
                time.sleep(delay)          # the simulated training step
            ends[i] = time.perf_counter()
            del iterator
        except Exception as e:  # pylint: disable=broad-except
            errors.append(e)

    threads = [threading.Thread(target=work, args=(i,)) for i in range(len(datasets))]
    start = time.perf_counter()
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    if errors:
        raise errors[0]
    return (max(ends) - start, max(created) - start,
            [np.concatenate(g) if g else np.zeros(0, np.int64) for g in got])


def lost_and_duplicated(per_worker, total_rows):
    ids = np.concatenate(per_worker)
    unique = np.unique(ids)
    return total_rows - len(unique), len(ids) - len(unique)


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=131072)
    parser.add_argument("--files", type=int, default=8)
    parser.add_argument("--batch_size", type=int, default=512)
    parser.add_argument("--rows_per_item", type=int, default=1024,
                        help="rows per work item (and per Parquet row group)")
    parser.add_argument("--step_ms", type=float, default=60.0,
                        help="simulated training step of a fast worker, per batch")
    args = parser.parse_args()
    step = args.step_ms / 1000.0
    with tempfile.TemporaryDirectory() as tmp, LocalDataService(num_workers=1) as service:
        paths, schema, total = write_inputs(tmp, args.rows, args.files, args.rows_per_item)

        def new_queue():
            return WorkQueue(paths, ParquetSource(schema), batch_size=args.batch_size,
                             rows_per_item=args.rows_per_item, service=service, seed=1)

        static_queue = new_queue()
        print(f"{total} rows, {len(static_queue.items)} work items of {args.rows_per_item} rows, "
              f"batch {args.batch_size}, {NUM_WORKERS} workers, worker 0 slowed "
              f"{SLOWDOWN:g}x (step {args.step_ms:g} ms vs {args.step_ms * SLOWDOWN:g} ms)")
        # Warm-up (TF function tracing, file cache), not timed.
        warm = new_queue()
        next(iter(warm.static_dataset(0, NUM_WORKERS)))

        static_wall, static_setup, static_rows = run_workers(
            [static_queue.static_dataset(i, NUM_WORKERS) for i in range(NUM_WORKERS)], step)
        queue = new_queue()
        dynamic_wall, dynamic_setup, dynamic_rows = run_workers(
            [queue.epoch_dataset(0) for _ in range(NUM_WORKERS)], step)

        ideal = total / args.batch_size * step / (NUM_WORKERS - 1 + 1 / SLOWDOWN)
        print(f"{'sharding':<10} {'epoch s':>8} {'of it setup s':>14} "
              f"{'rows per worker (w0 slow)':>30} {'lost':>6} {'dup':>6}")
        for name, wall, setup, rows in (("static", static_wall, static_setup, static_rows),
                                        ("workqueue", dynamic_wall, dynamic_setup, dynamic_rows)):
            lost, dup = lost_and_duplicated(rows, total)
            per = "/".join(str(len(r)) for r in rows)
            print(f"{name:<10} {wall:>8.2f} {setup:>14.2f} {per:>30} {lost:>6} {dup:>6}")
        print(f"ideal dynamic epoch (no overhead): {ideal:.2f} s")
        lost, dup = lost_and_duplicated(dynamic_rows, total)
        print(f"workqueue: speedup_vs_static={static_wall / dynamic_wall:.2f} "
              f"rows_lost={lost} rows_duplicated={dup}")


if __name__ == "__main__":
    main()
