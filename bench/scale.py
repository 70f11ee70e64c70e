"""Production scale on one machine: one big KV table trained, checkpointed, restored,
exported and warm-started, each phase in its own process.

A DeepFM-like model with one KVEmbedding table ("ids": dim 16, Adagrad) is trained through
the training path (lookup-with-insert and Adagrad updates over all keys in batches of
65,536; half of the keys are looked up a second time, so an export with min_freq=2 keeps
about half), then, each in a fresh process:
  save        deeprec_lite.training.checkpoints.save (tf.train.CheckpointManager), in the
              trained process;
  restore     the model rebuilt from the checkpoint (checkpoints.load);
  export      export_embeddings(checkpoint, min_freq=2): about half of the keys kept;
  warm_start  warm_start of a model with one more table from the checkpoint.
Each phase reports seconds, keys/s and its peak resident memory (VmHWM; the save phase's
peak is measured from the trained process's resident memory, after resetting VmHWM), beside
the table's own bytes and, as the reference, plain sequential write and read of the same
number of bytes in the same run (8 MiB chunks, fsync; reads of the checkpoint and of the
reference file start with their pages dropped from the page cache), measured after the
save and again at the end, the faster of the two counting. A second reference for the
restore: a fresh process that writes the table's bytes of newly allocated memory once, run
right after the restore (a restore fills that much new memory; on a virtual machine whose
host backs guest memory on first touch, that alone can take longer than the read).

    python bench/scale.py [--keys 100000000]

Last line: ``scale: keys=<n> bytes_per_key=<b> raw_bytes_per_key=<r>
save_extra_ratio=<..> restore_peak_ratio=<..> export_extra_ratio=<..>
warm_start_peak_ratio=<..> save_vs_raw_write=<x> restore_vs_raw_read=<y>``
"""
import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time

DIM = 16
BATCH = 65_536
RAW_BYTES_PER_KEY = 8 + 4 * DIM * 2 + 8 + 8  # key, value, Adagrad slot, freq, version


def memory_kb(field):
    with open("/proc/self/status") as f:
        return next(int(line.split()[1]) for line in f if line.startswith(field + ":"))


def reset_peak():
    """Resets VmHWM to the present resident size (Linux >= 4.0)."""
    with open("/proc/self/clear_refs", "w") as f:
        f.write("5")


def build_model(extra_table=False):
    from deeprec_lite.compat import keras, tf
    from deeprec_lite.layers import KVEmbedding
    from deeprec_lite.training import optimizers

    inputs = {"ids": keras.Input((), dtype=tf.int64, name="ids")}
    embedded = [KVEmbedding(DIM, name="ids_table")(inputs["ids"])]
    if extra_table:
        inputs["extra"] = keras.Input((), dtype=tf.int64, name="extra")
        embedded.append(KVEmbedding(DIM, name="extra_table")(inputs["extra"]))
    x = embedded[0] if len(embedded) == 1 else keras.layers.Concatenate(name="concat")(embedded)
    out = keras.layers.Dense(1, activation="sigmoid", name="out")(x)
    model = keras.Model(inputs, out)
    model.compile(optimizer=optimizers.Adagrad(0.05), loss="binary_crossentropy")
    model.optimizer.build(model.trainable_variables)
    return model


def phase_train_and_save(keys, directory):
    import numpy as np

    from deeprec_lite.compat import tf
    from deeprec_lite.training import checkpoints, model_tables

    model = build_model()
    kv = model_tables.kv_tables(model)["ids_table"]
    sparse = model.optimizer.sparse
    kv.ensure_slots(sparse.slots)

    @tf.function
    def step(batch, global_step):
        values, _ = kv.lookup_or_insert(batch, global_step=global_step)
        return sparse.apply(kv, batch, 0.01 * values, global_step, unique_keys=True)

    start = time.perf_counter()
    order = np.random.default_rng(0).permutation(keys).astype(np.int64)
    batches = [order[i:i + BATCH] for i in range(0, keys, BATCH)]
    batches += batches[::2]  # half of the keys seen twice: freq 2
    for n, batch in enumerate(batches):
        step(tf.constant(batch), tf.constant(n, tf.int64))
    model.optimizer.iterations.assign(len(batches))
    train_seconds = time.perf_counter() - start
    table_bytes = int(kv.stats()["bytes"])
    del order, batches
    rss = memory_kb("VmRSS")
    reset_peak()
    start = time.perf_counter()
    checkpoints.save(model, directory)
    save_seconds = time.perf_counter() - start
    return {"train_seconds": train_seconds, "table_bytes": table_bytes,
            "save_seconds": save_seconds, "rss_before_kb": rss, "peak_kb": memory_kb("VmHWM")}


def phase_restore(directory):
    from deeprec_lite.training import checkpoints, model_tables

    rss = memory_kb("VmRSS")
    start = time.perf_counter()
    model = checkpoints.load(directory)
    seconds = time.perf_counter() - start
    size = int(model_tables.kv_tables(model)["ids_table"].size())
    return {"seconds": seconds, "rss_before_kb": rss, "peak_kb": memory_kb("VmHWM"), "keys": size}


def phase_export(directory, out):
    from deeprec_lite.export import export_embeddings  # loads TensorFlow before the baseline

    rss = memory_kb("VmRSS")
    start = time.perf_counter()
    manifest = export_embeddings(directory, out, min_freq=2)
    seconds = time.perf_counter() - start
    kept = sum(t["kept"] for t in manifest["tables"].values())
    return {"seconds": seconds, "rss_before_kb": rss, "peak_kb": memory_kb("VmHWM"), "kept": kept}


def phase_warm_start(directory):
    from deeprec_lite.migration import warm_start

    model = build_model(extra_table=True)
    rss = memory_kb("VmRSS")
    start = time.perf_counter()
    report = warm_start(model, directory, migrate_slots=True)
    seconds = time.perf_counter() - start
    return {"seconds": seconds, "rss_before_kb": rss, "peak_kb": memory_kb("VmHWM"),
            "summary": report.summary()}


def drop_from_page_cache(path):
    """Drops a written (and synced) file's pages from the page cache, so that the next read
    comes from the disk, as a restore after a restart does."""
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
        os.posix_fadvise(fd, 0, 0, os.POSIX_FADV_DONTNEED)
    finally:
        os.close(fd)


def raw_io(num_bytes, path):
    """Seconds to write `num_bytes` sequentially (8 MiB chunks, fsync) and to read them back
    from the disk (the file's pages dropped from the page cache first)."""
    chunk = os.urandom(8 << 20)
    start = time.perf_counter()
    with open(path, "wb") as f:
        for _ in range(0, num_bytes, len(chunk)):
            f.write(chunk)
        f.flush()
        os.fsync(f.fileno())
    write = time.perf_counter() - start
    drop_from_page_cache(path)
    start = time.perf_counter()
    with open(path, "rb") as f:
        while f.read(len(chunk)):
            pass
    read = time.perf_counter() - start
    os.remove(path)
    return write, read


def phase_fresh_memory(num_bytes):
    import numpy as np

    start = time.perf_counter()
    np.ones(num_bytes, np.uint8)  # allocated and written once
    return {"seconds": time.perf_counter() - start}


def run_phase(name, *args):
    """Runs one phase in a fresh process; returns its JSON result."""
    out = subprocess.run([sys.executable, __file__, "--phase", name, *map(str, args)],
                         capture_output=True, text=True,
                         env=dict(os.environ, TF_CPP_MIN_LOG_LEVEL="3"))
    if out.returncode != 0:
        raise SystemExit(f"phase {name} failed (exit {out.returncode}):\n{out.stderr[-3000:]}")
    return json.loads(out.stdout.strip().splitlines()[-1])


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--keys", type=int, default=100_000_000)
    parser.add_argument("--dir", default=None, help="work directory (default: a temporary one)")
    parser.add_argument("--phase", default=None, help=argparse.SUPPRESS)
    args, rest = parser.parse_known_args()
    if args.phase:
        phases = {"train_and_save": lambda: phase_train_and_save(int(rest[0]), rest[1]),
                  "fresh_memory": lambda: phase_fresh_memory(int(rest[0])),
                  "restore": lambda: phase_restore(rest[0]),
                  "export": lambda: phase_export(rest[0], rest[1]),
                  "warm_start": lambda: phase_warm_start(rest[0])}
        print(json.dumps(phases[args.phase]()))
        return
    work = args.dir or tempfile.mkdtemp(prefix="drl-scale-")
    ckpt, export_dir = os.path.join(work, "ckpt"), os.path.join(work, "export")
    try:
        saved = run_phase("train_and_save", args.keys, ckpt)
        ckpt_bytes = sum(os.path.getsize(os.path.join(ckpt, f)) for f in os.listdir(ckpt))
        # The reference, twice (here and at the end): this machine's I/O speed drifts by
        # several times over minutes; the faster of the two is the one compared with.
        raw = [raw_io(ckpt_bytes, os.path.join(work, "raw.bin"))]
        for name in os.listdir(ckpt):  # the restore reads from the disk, as after a restart
            drop_from_page_cache(os.path.join(ckpt, name))
        restored = run_phase("restore", ckpt)
        fresh = run_phase("fresh_memory", saved["table_bytes"])
        exported = run_phase("export", ckpt, export_dir)
        warm = run_phase("warm_start", ckpt)
        raw.append(raw_io(ckpt_bytes, os.path.join(work, "raw.bin")))
        raw_write, raw_read = min(w for w, _ in raw), min(r for _, r in raw)
    finally:
        if args.dir is None:
            shutil.rmtree(work, ignore_errors=True)
    n, table = args.keys, saved["table_bytes"]
    kb = 1024

    def row(phase, seconds, peak_kb, base_kb):
        print(f"{phase:<11} {seconds:>8.1f} s {n / seconds / 1e6:>7.2f} M keys/s "
              f"peak {peak_kb * kb / 2 ** 30:>6.2f} GiB  (+{(peak_kb - base_kb) * kb / 2 ** 30:.2f})")

    print(f"table: {n:,} keys, {table / 2 ** 30:.2f} GiB ({table / n:.1f} B/key, raw "
          f"{RAW_BYTES_PER_KEY}); checkpoint {ckpt_bytes / 2 ** 30:.2f} GiB; trained in "
          f"{saved['train_seconds']:.0f} s")
    row("save", saved["save_seconds"], saved["peak_kb"], saved["rss_before_kb"])
    row("restore", restored["seconds"], restored["peak_kb"], restored["rss_before_kb"])
    row("export", exported["seconds"], exported["peak_kb"], exported["rss_before_kb"])
    row("warm_start", warm["seconds"], warm["peak_kb"], warm["rss_before_kb"])
    print(f"export kept {exported['kept']:,} keys; warm start: {warm['summary']}")
    print(f"plain I/O of {ckpt_bytes / 2 ** 30:.2f} GiB: write {ckpt_bytes / raw_write / 2 ** 20:.0f} "
          f"MiB/s, read {ckpt_bytes / raw_read / 2 ** 20:.0f} MiB/s; save "
          f"{ckpt_bytes / saved['save_seconds'] / 2 ** 20:.0f} MiB/s, restore "
          f"{ckpt_bytes / restored['seconds'] / 2 ** 20:.0f} MiB/s")
    print(f"new memory: writing the table's {table / 2 ** 30:.2f} GiB of fresh memory once took "
          f"{fresh['seconds']:.1f} s; restore took {restored['seconds'] / fresh['seconds']:.2f}x that")
    print(f"scale: keys={n} bytes_per_key={table / n:.1f} raw_bytes_per_key={RAW_BYTES_PER_KEY} "
          f"save_extra_ratio={(saved['peak_kb'] - saved['rss_before_kb']) * kb / table:.3f} "
          f"restore_peak_ratio={restored['peak_kb'] * kb / table:.3f} "
          f"export_extra_ratio={(exported['peak_kb'] - exported['rss_before_kb']) * kb / table:.3f} "
          f"warm_start_peak_ratio={warm['peak_kb'] * kb / table:.3f} "
          f"save_vs_raw_write={raw_write / saved['save_seconds']:.2f} "
          f"restore_vs_raw_read={raw_read / restored['seconds']:.2f}")


if __name__ == "__main__":
    main()
