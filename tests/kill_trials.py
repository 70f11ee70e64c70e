"""kill -9 trials of everything that writes a model's state: a checkpoint save (into a
directory that holds one already, at the same step), a Parquet export, a serving export,
a warm start saved over an earlier one, an incremental checkpoint and a delta export.

A child process prepares two different trained states A and B of one small model and
their references, then repeats the operation, alternating A and B, until it is killed
at a random moment. Whatever the moment, the target must then hold A or B exactly:
"survived"; "lost" when it cannot be read (a clear error), "corrupted" when it reads
but holds neither (silent corruption). The warm start's sources must stay intact.
The incremental checkpoint and the delta export go on training instead, one step of
states after the other: the latest listed save must restore the state it was taken of,
and the chain of complete deltas must give the full export of its last step.
Used by tests/test_kill_during_writes.py (one trial each) and bench/faults.py (many).

    python kill_trials.py OPERATION DIR      # the child
"""
import os
import random
import subprocess
import sys
import time

import numpy as np

from deeprec_lite.kv import TableConfig

OPERATIONS = ("checkpoint", "export", "serving", "warm_start", "incremental_checkpoint",
              "delta_export")


def build():
    from deeprec_lite.compat import keras, tf
    from deeprec_lite.kv import sparse_optimizers
    from deeprec_lite.layers import KVEmbedding
    from deeprec_lite.training import optimizers

    inputs = {f: keras.Input((), dtype=tf.int64, name=f) for f in ("a", "b")}
    embedded = [KVEmbedding(TableConfig(8, seed=i), name=f"emb_{f}")(inputs[f])
                for i, f in enumerate(inputs)]
    # named layers: warm start matches dense weights by name, and Keras numbers unnamed
    # layers by how many the process made before
    concatenated = keras.layers.Concatenate(name="concatenate")(embedded)
    out = keras.layers.Dense(1, activation="sigmoid", name="out")(concatenated)
    model = keras.Model(inputs, out)
    model.compile(optimizer=optimizers.KVOptimizer(sparse_optimizers.Adam(0.01),
                                                   keras.optimizers.Adam(0.01)),
                  loss="binary_crossentropy")
    return model


def inputs(n=4096):
    rng = np.random.default_rng(0)
    return {f: rng.integers(0, 5000, n) for f in ("a", "b")}


def predict(model, x):
    from deeprec_lite.export import predict_as_served

    return predict_as_served(model, x).numpy()


def records(export_dir):
    """{table: (keys, values, freqs, versions) sorted by key} of a verified export."""
    from deeprec_lite.export import read_embeddings

    return sorted_records(read_embeddings(export_dir))


def sorted_records(export):
    """records() of an EmbeddingExport."""
    out = {}
    for name in export.tables:
        keys, *rest = export.numpy(name)
        order = np.argsort(keys)
        out[name] = [np.asarray(keys)[order]] + [np.asarray(r)[order] for r in rest]
    return out


def same_records(a, b):
    return a.keys() == b.keys() and all(
        all(np.array_equal(x, y) for x, y in zip(a[t], b[t])) for t in a)


# ----- the child ----------------------------------------------------------------------

def child(operation, directory):
    from deeprec_lite import export
    from deeprec_lite.migration import warm_start
    from deeprec_lite.training import checkpoints

    x = inputs()
    models = []
    for name, rule in (("a", 3), ("b", 5)):  # same steps, other labels: two distinct states
        model = build()
        model.fit(x, (x["a"] % rule == 0).astype(np.float32), batch_size=256, verbose=0)
        np.save(os.path.join(directory, f"pred_{name}.npy"), predict(model, x))
        checkpoints.save(model, os.path.join(directory, f"source_{name}"))
        export.export_embeddings(model, os.path.join(directory, f"ref_{name}"), overwrite=True)
        models.append((name, model))
    print("ready", flush=True)
    target = os.path.join(directory, "target")
    if operation in ("incremental_checkpoint", "delta_export"):
        train_and_write(operation, models[0][1], x, directory, target)
    for turn in range(10 ** 9):
        name, model = models[turn % 2]
        if operation == "checkpoint":
            checkpoints.save(model, target)
        elif operation == "export":
            export.export_embeddings(model, target, overwrite=True)
        elif operation == "serving":
            export.export_saved_model(model, target, overwrite=True)
        else:
            new_model = build()
            new_model.optimizer.build(new_model.trainable_variables)
            warm_start(new_model, os.path.join(directory, f"source_{name}"), migrate_slots=True)
            checkpoints.save(new_model, target)
        print("done", flush=True)


def train_and_write(operation, model, x, directory, target):
    """Trains on and on; after each epoch an incremental save of the state (whose
    predictions were written before), or a full export of it and then a delta export."""
    from deeprec_lite import export
    from deeprec_lite.compat import tf
    from deeprec_lite.kv.incremental_checkpoints import IncrementalCheckpointManager

    if operation == "incremental_checkpoint":
        manager = IncrementalCheckpointManager(tf.train.Checkpoint(model=model), target,
                                               full_every=3)
    else:
        export.export_embeddings(model, os.path.join(target, "chain-0"))
    for turn in range(1, 10 ** 9):
        model.fit(x, (x["b"] % (turn % 4 + 2) == 0).astype(np.float32), batch_size=512,
                  verbose=0)
        if operation == "incremental_checkpoint":
            np.save(os.path.join(directory, f"pred_turn_{turn}.npy"), predict(model, x))
            manager.save(turn)
        else:
            export.export_embeddings(model, os.path.join(target, f"full-{turn}"))
            export.export_embeddings(model, os.path.join(target, f"chain-{turn}"),
                                     since=os.path.join(target, f"chain-{turn - 1}"))
        print("done", flush=True)


def verify_trained(operation, x, directory, target):
    from deeprec_lite.compat import tf
    from deeprec_lite.export import read_chain
    from deeprec_lite.kv.incremental_checkpoints import IncrementalCheckpointManager

    if operation == "incremental_checkpoint":
        model = build()
        manager = IncrementalCheckpointManager(tf.train.Checkpoint(model=model), target)
        manager.restore()
        want = np.load(os.path.join(directory, f"pred_turn_{manager.saves[-1]['step']}.npy"))
        return "survived" if np.array_equal(predict(model, x), want) else "corrupted"
    last = max(int(name[len("chain-"):]) for name in os.listdir(target)
               if name.startswith("chain-"))
    if last == 0:
        return "survived"
    got = sorted_records(read_chain([os.path.join(target, f"chain-{i}") for i in range(last + 1)]))
    return "survived" if same_records(got, records(os.path.join(target, f"full-{last}"))) else \
        "corrupted"


# ----- the parent ---------------------------------------------------------------------

def verify(operation, directory):
    """'survived', 'lost' or 'corrupted' for the target after a kill."""
    from deeprec_lite.compat import tf
    from deeprec_lite.training import checkpoints

    x = inputs()
    expected = [np.load(os.path.join(directory, f"pred_{n}.npy")) for n in ("a", "b")]
    target = os.path.join(directory, "target")
    if operation == "warm_start":  # the sources are read, never written
        for name, want in zip(("a", "b"), expected):
            got = predict(checkpoints.load(os.path.join(directory, f"source_{name}")), x)
            if not np.array_equal(got, want):
                return "corrupted"
    try:
        if operation in ("incremental_checkpoint", "delta_export"):
            return verify_trained(operation, x, directory, target)
        if operation == "export":
            got = records(target)
            return "survived" if any(same_records(got, records(os.path.join(directory, f"ref_{n}")))
                                     for n in ("a", "b")) else "corrupted"
        if operation == "serving":
            serving = tf.saved_model.load(target)
            got = serving.serve(x).numpy()
        else:
            got = predict(checkpoints.load(target), x)
    except (ValueError, OSError, tf.errors.OpError) as e:
        print(f"{operation}: target unreadable after the kill: {e}", file=sys.stderr)
        return "lost"
    return "survived" if any(np.array_equal(got, want) for want in expected) else "corrupted"


def run_trial(operation, directory, seed):
    """One trial: starts the child, kills it at a random moment of an operation, verifies."""
    env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="3")
    process = subprocess.Popen([sys.executable, __file__, operation, str(directory)],
                               stdout=subprocess.PIPE, text=True, env=env)
    try:
        if process.stdout.readline().strip() != "ready":
            raise RuntimeError(f"the {operation} child died while preparing")
        process.stdout.readline()  # one complete operation: the target exists
        start = time.perf_counter()
        process.stdout.readline()
        duration = time.perf_counter() - start
        time.sleep(random.Random(seed).uniform(0, duration))  # inside the next operation
    finally:
        process.kill()
        process.wait()
    return verify(operation, str(directory))


if __name__ == "__main__":
    child(sys.argv[1], sys.argv[2])
