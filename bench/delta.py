"""Delta exports and incremental checkpoints of a big table, against full ones measured in
the same run.

1. A model (ids -> KVEmbedding, dim 16 -> Dense) whose table of `--keys` keys (Adagrad)
   is filled through the training path in 100 steps (each step 1% of the keys: lookup
   with insert, then an Adagrad update), so versions spread over 100 steps. A full export
   E0 (export_embeddings), a full save S0 (IncrementalCheckpointManager) and a serving
   SavedModel V0 (export_saved_model) of that state.
2. The stream: 5 steps, each looking up and updating `--touched`/5 of the keys (a tenth of
   them new ids), then staleness eviction of the keys not updated since step 1 (about 1%);
   the dense layer gets new weights.
3. In that state, each pair timed in the same run: the delta export D1 (since=E0) against a
   full export E1, and the incremental save S1 (S0's manager) against a full save (a
   manager with full_every=1 into another directory). Every save and export is flushed to
   stable storage (fsync) before it counts as written, the full ones as the deltas.
4. Checks: read_chain([E0, D1]) equals E1 record for record (chain_exact); S0 + S1 restored
   into a fresh table equals the live table, values, slots, freq and version
   (incremental_exact); the serving SavedModel rebuilt by apply_serving_delta from V0 and
   the serving delta (export_serving_delta since V0) serves, on ids that were touched,
   untouched, evicted and never seen, what export_saved_model V1 of the live model
   serves, bit for bit (serving_exact); the rebuild's time is printed beside V1's.
5. From the full checkpoint of that state (no change stamps), a delta export since E0
   (compared with E0's records) beside a full export of the same checkpoint, and its
   chain checked against that full export (printed, not in the last line).

    python bench/delta.py [--keys 10000000] [--touched 0.05]

Last line: ``delta: keys=<n> touched_fraction=<f> delta_export_bytes_vs_full=<a>
delta_export_time_vs_full=<b> incremental_save_time_vs_full=<c> chain_exact=<1|0>
serving_exact=<1|0>``
"""
import argparse
import os
import sys
import tempfile
import time

import numpy as np

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))

from deeprec_lite.compat import keras, tf  # noqa: E402
from deeprec_lite.export import (export_embeddings, export_saved_model, read_chain,  # noqa: E402
                                 read_embeddings)
from deeprec_lite.export.serving_delta import apply_serving_delta, export_serving_delta  # noqa: E402,E501
from deeprec_lite.kv import KVVariable, TableConfig, sparse_optimizers  # noqa: E402
from deeprec_lite.kv.incremental_checkpoints import IncrementalCheckpointManager  # noqa: E402
from deeprec_lite.layers import KVEmbedding  # noqa: E402

DIM = 16
FILL_STEPS = 100
STREAM_STEPS = 5


def directory_bytes(path):
    return sum(os.path.getsize(os.path.join(root, f)) for root, _, files in os.walk(path)
               for f in files)


def timed(fn):
    start = time.perf_counter()
    result = fn()
    return time.perf_counter() - start, result


def train_step(kv, optimizer, keys, step, rng):
    kv.lookup_or_insert(keys, global_step=step)
    optimizer.apply(kv, keys, rng.normal(0, 0.1, (len(keys), DIM)).astype(np.float32),
                    global_step=step, unique_keys=True)


def fill(kv, optimizer, num_keys, rng):
    keys = rng.permutation(num_keys).astype(np.int64) * 7919 + 11
    per_step = num_keys // FILL_STEPS
    for step in range(1, FILL_STEPS + 1):
        train_step(kv, optimizer, keys[(step - 1) * per_step:step * per_step], step, rng)
    kv.step.assign(FILL_STEPS)
    return keys


def stream(kv, optimizer, keys, touched, rng):
    """Touches about `touched` of the keys over STREAM_STEPS steps (a tenth new ids), then
    evicts the keys not updated since step 1. Returns the keys touched."""
    per_step = int(len(keys) * touched / STREAM_STEPS)
    step_keys = []
    for i in range(STREAM_STEPS):
        step = FILL_STEPS + 1 + i
        old = rng.choice(keys, per_step - per_step // 10, replace=False)
        new = (np.arange(per_step // 10, dtype=np.int64) + i * per_step) * 7919 + 5  # unseen
        step_keys.append(np.unique(np.concatenate([old, new])))
        train_step(kv, optimizer, step_keys[-1], step, rng)
    kv.step.assign(FILL_STEPS + STREAM_STEPS)
    evicted = int(kv.evict(FILL_STEPS + STREAM_STEPS, max_staleness=FILL_STEPS + STREAM_STEPS - 2))
    return np.unique(np.concatenate(step_keys)), evicted


def sorted_records(kv):
    r = kv.export()
    keys = r.keys.numpy()
    order = np.argsort(keys)
    return [keys[order]] + [t.numpy()[order] for t in (r.values, r.freqs, r.versions, r.slots,
                                                      r.admitted)]


def same_tables(a, b):
    x, y = sorted_records(a), sorted_records(b)
    return all(np.array_equal(p, q) for p, q in zip(x, y))


def sorted_export(export):
    import pyarrow.compute as pc

    (table,) = export.tables.values()
    return table.take(pc.sort_indices(table, sort_keys=[("key", "ascending")]))


def build_model():
    ids = keras.Input((), dtype=tf.int64, name="ids")
    embedding = KVEmbedding(TableConfig(DIM), name="ids_table")
    out = keras.layers.Dense(1, activation="sigmoid", name="out")(embedding(ids))
    model = keras.Model({"ids": ids}, out)
    model({"ids": tf.constant([0], tf.int64)})
    return model, embedding.kv


def serving_check(model, path, base, ids):
    """(served bit for bit as export_saved_model, rebuild seconds, full seconds)."""
    export_serving_delta(model, path("sd1"), since=base)
    rebuild_s, _ = timed(lambda: apply_serving_delta(base, path("sd1"), path("v1_rebuilt")))
    full_s, _ = timed(lambda: export_saved_model(model, path("v1")))
    batch = {"ids": tf.constant(ids, tf.int64)}
    rebuilt, full = tf.saved_model.load(path("v1_rebuilt")), tf.saved_model.load(path("v1"))
    return np.array_equal(rebuilt.serve(batch), full.serve(batch)), rebuild_s, full_s


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--keys", type=int, default=10_000_000)
    parser.add_argument("--touched", type=float, default=0.05)
    args = parser.parse_args()
    rng = np.random.default_rng(0)
    optimizer = sparse_optimizers.Adagrad(0.05)
    model, kv = build_model()
    kv.ensure_slots(optimizer.slots)
    start = time.perf_counter()
    keys = fill(kv, optimizer, args.keys, rng)
    print(f"filled {int(kv.size()):,} keys in {time.perf_counter() - start:.1f} s")
    with tempfile.TemporaryDirectory(dir=os.environ.get("BENCH_TMP")) as tmp:
        path = lambda name: os.path.join(tmp, name)  # noqa: E731
        export_embeddings(kv, path("e0"))
        manager = IncrementalCheckpointManager(tf.train.Checkpoint(ids=kv), path("inc"),
                                               full_every=10)
        manager.save(FILL_STEPS)
        export_saved_model(model, path("v0"))
        touched, evicted = stream(kv, optimizer, keys, args.touched, rng)
        for weight in model.get_layer("out").weights:
            weight.assign(rng.normal(size=weight.shape).astype(np.float32))
        size = int(kv.size())
        touched_fraction = len(touched) / size
        print(f"stream: {len(touched):,} keys touched ({touched_fraction:.3f} of {size:,}), "
              f"{evicted:,} evicted")

        full_export_s, _ = timed(lambda: export_embeddings(kv, path("e1")))
        delta_export_s, _ = timed(lambda: export_embeddings(kv, path("d1"), since=path("e0")))
        full_bytes, delta_bytes = directory_bytes(path("e1")), directory_bytes(path("d1"))
        print(f"export: full {full_export_s:.2f} s {full_bytes / 2**20:,.0f} MiB, delta "
              f"{delta_export_s:.2f} s {delta_bytes / 2**20:,.1f} MiB")
        full_manager = IncrementalCheckpointManager(tf.train.Checkpoint(ids=kv), path("full"),
                                                    full_every=1)
        full_save_s, full_path = timed(lambda: full_manager.save(FILL_STEPS + STREAM_STEPS))
        inc_save_s, inc_path = timed(lambda: manager.save(FILL_STEPS + STREAM_STEPS))
        assert manager.saves[-1]["kind"] == "increment"
        print(f"checkpoint: full {full_save_s:.2f} s {directory_bytes(path('full')) / 2**20:,.0f} "
              f"MiB, incremental {inc_save_s:.2f} s {directory_bytes(inc_path) / 2**20:,.1f} MiB")

        chain_exact = sorted_export(read_chain([path("e0"), path("d1")])).equals(
            sorted_export(read_embeddings(path("e1"))))
        # From that checkpoint (no change stamps): compared with E0's records.
        prefix = os.path.join(full_path, "ckpt")
        ckpt_full_s, _ = timed(lambda: export_embeddings(prefix, path("e1c")))
        ckpt_delta_s, _ = timed(lambda: export_embeddings(prefix, path("d1c"),
                                                          since=[path("e0")]))
        compared_exact = sorted_export(read_chain([path("e0"), path("d1c")])).equals(
            sorted_export(read_embeddings(path("e1c"))))
        print(f"from the checkpoint: full export {ckpt_full_s:.2f} s, delta compared with E0 "
              f"{ckpt_delta_s:.2f} s {directory_bytes(path('d1c')) / 2**20:,.1f} MiB, "
              f"exact={int(compared_exact)}")
        fresh = KVVariable(DIM, slots=optimizer.slots, name=kv.name)
        restore_s, _ = timed(lambda: IncrementalCheckpointManager(
            tf.train.Checkpoint(ids=fresh), path("inc")).restore())
        incremental_exact = same_tables(fresh, kv)
        print(f"restore of full + increment: {restore_s:.2f} s, incremental_exact="
              f"{int(incremental_exact)}")
        probe = np.concatenate([rng.choice(touched, 50_000), rng.choice(keys, 50_000),
                                np.arange(1000, dtype=np.int64) * 7919 + 3])  # never seen
        serving_exact, rebuild_s, full_serving_s = serving_check(model, path, path("v0"), probe)
        print(f"serving: rebuilt from V0 + delta in {rebuild_s:.1f} s, export_saved_model "
              f"{full_serving_s:.1f} s, serving_exact={int(serving_exact)}")
    print(f"delta: keys={size} touched_fraction={touched_fraction:.3f} "
          f"delta_export_bytes_vs_full={delta_bytes / full_bytes:.3f} "
          f"delta_export_time_vs_full={delta_export_s / full_export_s:.3f} "
          f"incremental_save_time_vs_full={inc_save_s / full_save_s:.3f} "
          f"chain_exact={int(chain_exact)} serving_exact={int(serving_exact)}")


if __name__ == "__main__":
    main()
