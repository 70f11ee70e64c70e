"""KV table lookup / insert throughput and memory, against TensorFlow's own tables.

For each (keys, dim): insert of new keys (KV: lookup-with-insert, which also
initializes each new row; MutableHashTable: insert of precomputed rows),
lookup of existing keys with values gathered, and memory per key. In
the same run: tf.lookup.experimental.MutableHashTable, DenseHashTable key->row
plus tf.gather, and a dense tf.gather from a variable (the near-physical limit).

Lookups are the best of 7 passes over the query batches and inserts the best of
--insert_passes fresh tables, for every table alike, as timeit takes the best of
its repeats (an insert of 1M keys takes ~0.1 s, which one pause of the machine
can stretch by a quarter). The KV and MutableHashTable insert passes alternate,
so that both tables meet the same spells of a noisy (virtual) machine rather than
one table the first seconds and the other the next. Memory is what the C
allocator holds for the first table of each kind once filled (glibc's mallinfo2):
every row and index slot is written, so all of it is resident, while the process's
resident size can grow by less (the table reuses pages that the process freed
before) or more (a batch's buffers).
Each configuration runs --repeats times, each time in a fresh process; the
table shows the median of each figure and the last line (1M keys, dim 16) the
median of each run's ratios:
kv_lookup: lookup_vs_mutable=<x> lookup_vs_dense_gather=<y> insert_vs_mutable=<z>
           bytes_per_key=<b> raw_bytes_per_key=<r>
"""
import argparse
import ctypes
import gc
import json
import subprocess
import sys
import time
import weakref

import numpy as np

from deeprec_lite import KVVariable
from deeprec_lite.compat import tf

BATCH = 65_536
# (name, numerator, denominator): the ratios of the last line, from the same run's figures
RATIOS = (("lookup_vs_mutable", "kv_lookup", "mutable_lookup"),
          ("lookup_vs_dense_gather", "kv_lookup", "dense_gather"),
          ("insert_vs_mutable", "kv_insert", "mutable_insert"))


class _MallInfo2(ctypes.Structure):
    _fields_ = [(name, ctypes.c_size_t) for name in (
        "arena", "ordblks", "smblks", "hblks", "hblkhd", "usmblks", "fsmblks", "uordblks",
        "fordblks", "keepcost")]


def heap_bytes():
    """Bytes that the C allocator has handed out and not had back (glibc's mallinfo2)."""
    mallinfo2 = ctypes.CDLL(None).mallinfo2
    mallinfo2.restype = _MallInfo2
    info = mallinfo2()
    return info.uordblks + info.hblkhd


def gc_paused(fn):
    """Runs fn with Python's garbage collector paused, as timeit does: a full collection
    walks every object TensorFlow created and would land in whichever call it hits."""
    def wrapped(*args):
        gc.collect()
        gc.disable()
        try:
            return fn(*args)
        finally:
            gc.enable()
    return wrapped


@gc_paused
def timed_batches(fn, batches, repeats=7):
    """Keys per second: the best of `repeats` passes over all batches."""
    fn(batches[0])  # warm up kernels
    best = float("inf")
    for _ in range(repeats):
        start = time.perf_counter()
        for b in batches:
            fn(b)
        best = min(best, time.perf_counter() - start)
    return sum(int(b.shape[0]) for b in batches) / best


@gc_paused
def timed_inserts(contenders, passes):
    """Insert throughput of each contender, a (new_table, insert, batches) triple: keys
    per second of inserting all its batches into a fresh table, the best of `passes`
    fresh tables. The contenders take turns, one pass each; each table is freed before
    the next is made, except that the last pass keeps its tables. Returns, per
    contender, that figure, its last table and the heap bytes its first table holds."""
    best = [float("inf")] * len(contenders)
    added = [0] * len(contenders)
    last_tables, table = [], None
    for p in range(passes):
        for c, (new_table, insert, batches) in enumerate(contenders):
            table = None
            gc.collect()
            before = heap_bytes()
            table = new_table()
            start = time.perf_counter()
            for b in batches:
                insert(table, *b)
            best[c] = min(best[c], time.perf_counter() - start)
            if p == 0:
                added[c] = heap_bytes() - before
            if p == passes - 1:
                last_tables.append(table)
    return [(sum(int(b[0].shape[0]) for b in batches) / best[c], last_tables[c], added[c])
            for c, (_, _, batches) in enumerate(contenders)]


def measure(num_keys, dim, lookup_batches, passes):
    rng = np.random.default_rng(num_keys + dim)
    keys = np.unique(rng.integers(-2 ** 62, 2 ** 62, int(num_keys * 1.01)))[:num_keys]
    rng.shuffle(keys)
    insert_batches = [tf.constant(keys[i:i + BATCH]) for i in range(0, num_keys, BATCH)]
    query = [tf.constant(rng.choice(keys, BATCH)) for _ in range(lookup_batches)]
    row_ids = [tf.constant(rng.integers(0, num_keys, BATCH)) for _ in range(lookup_batches)]
    out = {"raw_bytes_per_key": 8 + 4 * dim + 8 + 8}

    # The KV variable (no slots: the raw payload is key + value + freq + version), and
    # MutableHashTable: key -> row of dim floats, rows precomputed outside the timing.
    rows = [(b, tf.random.truncated_normal([int(b.shape[0]), dim], stddev=0.05))
            for b in insert_batches]

    def new_mutable():
        table = tf.lookup.experimental.MutableHashTable(tf.int64, tf.float32, tf.zeros([dim]))
        # TF never frees an eager MutableHashTable's resource (each pass would keep its
        # table's memory until the process ends): destroy it with the Python object.
        weakref.finalize(table, tf.raw_ops.DestroyResourceOp, resource=table.resource_handle,
                         ignore_lookup_error=True)
        table.insert(query[0][:8], tf.zeros([8, dim]))
        return table

    # Load the kernels before the first tables are timed and measured.
    KVVariable(dim).lookup_or_insert(query[0])
    new_mutable()
    (out["kv_insert"], kv, kv_bytes), (out["mutable_insert"], mutable, mutable_bytes) = (
        timed_inserts([(lambda: KVVariable(dim, initializer="truncated_normal"),
                        lambda table, b: table.lookup_or_insert(b),
                        [(b,) for b in insert_batches]),
                       (new_mutable, lambda table, b, r: table.insert(b, r), rows)], passes))
    del rows
    out["bytes_per_key"] = kv_bytes / num_keys
    out["kv_table_bytes_per_key"] = int(kv.stats()["bytes"]) / num_keys
    out["mutable_bytes_per_key"] = mutable_bytes / num_keys
    out["kv_lookup"] = timed_batches(kv.lookup, query)
    del kv
    out["mutable_lookup"] = timed_batches(mutable.lookup, query)
    del mutable

    # DenseHashTable key -> row index, plus a gather from a dense variable.
    dense = tf.lookup.experimental.DenseHashTable(tf.int64, tf.int64, default_value=-1,
                                                  empty_key=2 ** 63 - 1, deleted_key=2 ** 63 - 2)
    start_row = 0
    for b in insert_batches:
        n = int(b.shape[0])
        dense.insert(b, tf.range(start_row, start_row + n, dtype=tf.int64))
        start_row += n
    embeddings = tf.Variable(tf.random.truncated_normal([num_keys, dim], stddev=0.05))
    out["dense_hash_lookup"] = timed_batches(
        lambda b: tf.gather(embeddings, tf.maximum(dense.lookup(b), 0)), query)
    del dense

    # The near-physical limit: a dense gather of random rows.
    out["dense_gather"] = timed_batches(lambda i: tf.gather(embeddings, i), row_ids)
    del embeddings
    return out


def measure_in_subprocess(num_keys, dim, lookup_batches, passes):
    """Each configuration runs in a fresh process, so its memory is not confounded
    by memory that an earlier configuration freed."""
    out = subprocess.run([sys.executable, __file__, "--one", str(num_keys), str(dim),
                          "--lookup_batches", str(lookup_batches),
                          "--insert_passes", str(passes)],
                         check=True, capture_output=True, text=True).stdout
    return json.loads(out.strip().splitlines()[-1])


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--keys", type=int, nargs="+", default=[1_000_000, 10_000_000])
    parser.add_argument("--dims", type=int, nargs="+", default=[16, 64])
    parser.add_argument("--lookup_batches", type=int, default=30)
    parser.add_argument("--insert_passes", type=int, default=5,
                        help="fresh tables filled per insert measurement (the best is reported)")
    parser.add_argument("--repeats", type=int, default=3,
                        help="fresh-process runs per configuration (medians are reported)")
    parser.add_argument("--one", type=int, nargs=2, metavar=("KEYS", "DIM"),
                        help="measure one configuration and print it as JSON")
    args = parser.parse_args()
    if args.one:
        print(json.dumps(measure(args.one[0], args.one[1], args.lookup_batches,
                                   args.insert_passes)))
        return

    header = (f"{'keys':>10} {'dim':>4} | {'kv insert':>10} {'mutable':>9} | {'kv lookup':>10} "
              f"{'mutable':>9} {'dense+gth':>9} {'gather':>9} | {'kv B/key':>8} "
              f"{'(table)':>7} {'mutable':>8} {'raw':>5}")
    print("throughput in M keys/s; memory in heap bytes per key ((table): as the table counts it)")
    print(header)
    ratios = {}
    for num_keys in args.keys:
        for dim in args.dims:
            runs = [measure_in_subprocess(num_keys, dim, args.lookup_batches,
                                         args.insert_passes)
                    for _ in range(args.repeats)]
            r = {field: float(np.median([run[field] for run in runs])) for field in runs[0]}
            ratios[(num_keys, dim)] = {
                name: [run[a] / run[b] for run in runs] for name, a, b in RATIOS}
            ratios[(num_keys, dim)].update(bytes_per_key=r["bytes_per_key"],
                                           raw_bytes_per_key=r["raw_bytes_per_key"])
            m = 1e6
            print(f"{num_keys:>10} {dim:>4} | {r['kv_insert'] / m:>10.2f} "
                  f"{r['mutable_insert'] / m:>9.2f} | {r['kv_lookup'] / m:>10.2f} "
                  f"{r['mutable_lookup'] / m:>9.2f} {r['dense_hash_lookup'] / m:>9.2f} "
                  f"{r['dense_gather'] / m:>9.2f} | {r['bytes_per_key']:>8.1f} "
                  f"{r['kv_table_bytes_per_key']:>7.1f} {r['mutable_bytes_per_key']:>8.1f} "
                  f"{r['raw_bytes_per_key']:>5.0f}", flush=True)
            print("  per run: " + ", ".join(
                name + " " + " ".join(f"{x:.2f}" for x in ratios[(num_keys, dim)][name])
                for name, _, _ in RATIOS), flush=True)
    key = (1_000_000, 16) if (1_000_000, 16) in ratios else next(iter(ratios))
    q = ratios[key]
    print("kv_lookup: " + " ".join(f"{name}={np.median(q[name]):.2f}" for name, _, _ in RATIOS)
          + f" bytes_per_key={q['bytes_per_key']:.1f}"
          + f" raw_bytes_per_key={q['raw_bytes_per_key']:.0f}")


if __name__ == "__main__":
    main()
