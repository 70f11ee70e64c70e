"""Parameter-server training of a zoo model with KV embeddings, on a loopback cluster.

The chief (this process) runs tf.distribute.ParameterServerStrategy and
model.fit; every KV table is split into one shard per parameter server (the
shards live and are updated there); workers run the training steps. Data:
built-in synthetic CTR rows (day 0 to train, day 1 to test), batches of a new
random order each pass, per worker.

    python examples/ps_training.py --ps 2 --workers 2          # starts its own cluster
    python examples/ps_training.py --cluster '<json spec>'     # tasks already running
    python examples/ps_training.py --single-process            # the same job, no cluster

With --checkpoint-dir the job saves a checkpoint after every epoch and, when the
directory already holds one, restores it and trains the remaining epochs: after a
parameter server fails, restart the job (and the task) and it goes on from the
last checkpoint. The last line printed is a JSON summary.
"""
import argparse
import json
import os
import sys
import time

import numpy as np

from deeprec_lite import cli
from deeprec_lite.compat import keras, tf
from deeprec_lite.data.auc import roc_auc
from deeprec_lite.data.synthetic.generator import SyntheticCTR, SyntheticConfig
from deeprec_lite.distribute import local_cluster, server
from deeprec_lite.export import sources
from deeprec_lite.kv import snapshots
from deeprec_lite.training import checkpoints, model_tables


def arrays(generator, rows, batch_size, day):
    """(features, labels) numpy of the first rows of a day, as the reader gives them."""
    features, labels = {}, []
    for x, y in generator.dataset(rows, batch_size, day=day):
        for name, column in x.items():
            features.setdefault(name, []).append(column.numpy())
        labels.append(y.numpy())
    return {k: np.concatenate(v) for k, v in features.items()}, np.concatenate(labels)


def dataset_creator(features, labels, batch_size, seed):
    """Batches of the arrays, in a new order each pass (per worker): each pass draws a
    permutation of the rows and gathers every column by it, batch by batch, so the
    pipeline does no per-row work."""
    def dataset_fn(context):
        columns = ({k: tf.constant(v) for k, v in features.items()}, tf.constant(labels))
        rows = len(labels)
        batches = rows // batch_size

        def pass_order(pass_seed):
            order = tf.random.experimental.stateless_shuffle(tf.range(rows), seed=pass_seed)
            return tf.data.Dataset.from_tensor_slices(
                tf.reshape(order[:batches * batch_size], [batches, batch_size]))

        passes = tf.data.Dataset.random(seed=seed + context.input_pipeline_id).batch(2)
        ds = passes.flat_map(pass_order).map(
            lambda index: tf.nest.map_structure(lambda c: tf.gather(c, index), columns))
        return ds.prefetch(2)
    return keras.utils.experimental.DatasetCreator(dataset_fn)


def check_restored_tables(model, checkpoint_dir):
    """Every restored table holds exactly the records of the checkpoint file."""
    saved = sources.from_checkpoint(checkpoint_dir).tables
    for name, kv in model_tables.kv_tables(model).items():
        live, disk = snapshots.collect(snapshots.of_variable(kv)), snapshots.collect(saved[name])
        for fields in (snapshots.RecordChunk._fields[:5], snapshots.RecordChunk._fields[5:]):
            a, b = np.argsort(getattr(live, fields[0])), np.argsort(getattr(disk, fields[0]))
            for field in fields:
                if not np.array_equal(getattr(live, field)[a], getattr(disk, field)[b]):
                    raise AssertionError(f"table {name}: restored {field} differ from the "
                                         "checkpoint")
    return len(saved)


class EpochTimer(keras.callbacks.Callback):
    """Seconds of each epoch, in `seconds`."""

    def __init__(self):
        super().__init__()
        self.seconds = []
        self._start = None

    def on_epoch_begin(self, epoch, logs=None):
        self._start = time.perf_counter()

    def on_epoch_end(self, epoch, logs=None):
        self.seconds.append(time.perf_counter() - self._start)


def evaluate(model, features, labels, batch_size):
    """AUC of inference calls made by the chief (lookups run on the parameter servers)."""
    scores = [model({k: v[i:i + batch_size] for k, v in features.items()}, training=False)
              for i in range(0, len(labels), batch_size)]
    return roc_auc(labels, np.concatenate([s.numpy().ravel() for s in scores]))


def kv_calls_per_step(model, strategy, features, labels):
    """Calls to the KV tables (DrlKv ops that take a table: lookups and updates) in one
    training step, counted in its traced graph; under the cluster every table lives on
    a parameter server, so each is a remote call."""
    @tf.function
    def step(x, y):
        return strategy.run(model.train_step, args=((x, y),))

    graph = step.get_concrete_function({k: v[:2] for k, v in features.items()},
                                       labels[:2]).graph
    return sum(op.type.startswith("DrlKv") and any(t.dtype == tf.resource for t in op.inputs)
               for op in graph.get_operations())


def run(args, cluster_spec=None):
    generator = SyntheticCTR(SyntheticConfig(num_categorical=args.categorical_fields,
                                             num_numeric=args.numeric_fields, seed=args.seed))
    train_x, train_y = arrays(generator, args.rows, args.batch_size, day=0)
    test_x, test_y = arrays(generator, args.test_rows, args.batch_size, day=1)
    strategy = server.strategy(cluster_spec) if cluster_spec else tf.distribute.get_strategy()
    with strategy.scope():
        model = cli.build_model(args.model, generator.schema, args.embedding_dim, min_count=1,
                                max_staleness=10 ** 9, evict_every=None,
                                freq_counting="every_epoch",  # freq: every lookup
                                steps_per_execution=args.steps_per_execution)
    initial_epoch, restored_step = 0, None
    if args.checkpoint_dir and checkpoints.is_checkpoint(args.checkpoint_dir):
        prefix = tf.train.latest_checkpoint(args.checkpoint_dir)
        model(dict((k, v[:1]) for k, v in train_x.items()), training=False)  # build
        tf.train.Checkpoint(model=model).restore(prefix).expect_partial()
        restored_step = int(model.optimizer.iterations.numpy())
        initial_epoch = restored_step // args.steps_per_epoch
        tables = check_restored_tables(model, args.checkpoint_dir)
        print(f"restored {prefix} at step {restored_step}: {tables} tables identical to the "
              "checkpoint", flush=True)
    timer = EpochTimer()
    save = [keras.callbacks.LambdaCallback(
        on_epoch_end=lambda epoch, logs: checkpoints.save(model, args.checkpoint_dir))] \
        if args.checkpoint_dir else []
    model.fit(dataset_creator(train_x, train_y, args.batch_size, args.seed), epochs=args.epochs,
              initial_epoch=initial_epoch, steps_per_epoch=args.steps_per_epoch,
              callbacks=[timer] + save, verbose=2)
    tables = model_tables.kv_tables(model)
    summary = {
        "restored_step": restored_step, "epoch_seconds": timer.seconds,
        # The last epoch: the first one also traces and ships the functions and data.
        "examples_per_second": args.steps_per_epoch * args.batch_size / timer.seconds[-1],
        "iterations": int(model.optimizer.iterations.numpy()),
        "auc": evaluate(model, test_x, test_y, args.batch_size),
        "freq_total": {n: int(kv.export().freqs.numpy().sum()) for n, kv in tables.items()},
        "table_sizes": {n: int(kv.size().numpy()) for n, kv in tables.items()},
        "shard_devices": {n: [s.resource_handle.device for s in getattr(kv, "shards", [kv])]
                          for n, kv in tables.items()},
        "kv_calls_per_step": kv_calls_per_step(model, strategy, train_x, train_y),
    }
    print(json.dumps(summary), flush=True)
    return summary


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--cluster", help="JSON cluster spec with chief, ps and worker jobs "
                                          "whose ps and worker tasks already run")
    parser.add_argument("--single-process", action="store_true",
                        help="train in this process, without a cluster (the reference)")
    parser.add_argument("--ps", type=cli.int_at_least(1), default=2,
                        help="without --cluster: ps tasks")
    parser.add_argument("--workers", type=cli.int_at_least(1), default=2,
                        help="without --cluster: workers")
    parser.add_argument("--model", default="deepfm")
    parser.add_argument("--rows", type=cli.int_at_least(1), default=50_000)
    parser.add_argument("--test-rows", type=cli.int_at_least(1), default=20_000)
    parser.add_argument("--batch-size", type=cli.int_at_least(1), default=512)
    parser.add_argument("--epochs", type=cli.int_at_least(1), default=2)
    parser.add_argument("--steps-per-epoch", type=cli.int_at_least(1), default=100)
    parser.add_argument("--steps-per-execution", type=cli.int_at_least(1), default=1,
                        help="training steps per call of the train function (and per "
                             "closure a worker runs)")
    parser.add_argument("--embedding-dim", type=cli.int_at_least(1), default=8)
    parser.add_argument("--categorical-fields", type=cli.int_at_least(1), default=26)
    parser.add_argument("--numeric-fields", type=cli.int_at_least(0), default=13)
    parser.add_argument("--seed", type=cli.int_at_least(0), default=0)
    parser.add_argument("--checkpoint-dir")
    args = parser.parse_args(argv)
    if args.cluster or args.single_process:
        run(args, args.cluster)
        return
    with local_cluster.LocalCluster(args.ps, args.workers) as cluster:
        run(args, cluster.spec)
        sys.stdout.flush()
        cluster.stop()
        # Leave without TensorFlow's teardown, which would retry the stopped tasks.
        os._exit(0)


if __name__ == "__main__":
    main()
