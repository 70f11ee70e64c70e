"""One pass over fixed batches, each trained exactly once, on a cluster or in this process.

The chief of tests/test_ps_training.py (run as a script with --cluster) and its
single-process reference (`train_locally`): the same model, data and batches,
the model's own train_step, so the two can be compared key for key.
On the cluster every batch is one ClusterCoordinator closure running
model.train_step on a worker (asynchronous, like model.fit, but no batch is
repeated or skipped; with --sequential each closure ends before the next is
scheduled, so the pass is deterministic; --ungrouped gives every table its own
ops). Prints a JSON line: {table: {key: freq}}
and the test AUC, and with --sequential every record ({table: {key: [value, slots,
freq, version]}}).
"""
import argparse
import json

import numpy as np

from deeprec_lite import cli
from deeprec_lite.compat import keras, tf
from deeprec_lite.data.auc import roc_auc
from deeprec_lite.data.synthetic.generator import SyntheticCTR, SyntheticConfig
from deeprec_lite.kv import sparse_optimizers
from deeprec_lite.training import model_tables, optimizers

ROWS, TEST_ROWS, BATCH, FIELDS = 16_384, 8_192, 256, 6


def data():
    generator = SyntheticCTR(SyntheticConfig(num_categorical=FIELDS, num_numeric=2, seed=3,
                                             vocab_sizes=300))
    return generator, list(generator.dataset(ROWS, BATCH, day=0)), \
        list(generator.dataset(TEST_ROWS, BATCH, day=1))


def build(schema, grouped=True):
    keras.utils.set_random_seed(0)  # the same dense weights on the cluster and here
    model = cli.build_model("deepfm", schema, 8, min_count=1, max_staleness=10 ** 9,
                            evict_every=None, freq_counting="every_epoch", grouped=grouped)
    # Rates high enough that one pass learns well (AUC ~0.67, the data's best is ~0.82).
    model.compile(optimizer=optimizers.KVOptimizer(sparse=sparse_optimizers.Adagrad(0.2),
                                                   dense=keras.optimizers.Adam(0.005)),
                  loss="binary_crossentropy")
    return model


def summary(model, test_batches, records=False):
    scores = np.concatenate([model(x, training=False).numpy().ravel() for x, _ in test_batches])
    labels = np.concatenate([y.numpy() for _, y in test_batches])
    out = {"auc": roc_auc(labels, scores), "freqs": {}, "records": {}}
    for name, kv in model_tables.kv_tables(model).items():
        r = kv.export()
        keys = r.keys.numpy().tolist()
        out["freqs"][name] = dict(zip(keys, r.freqs.numpy().tolist()))
        if records:
            out["records"][name] = {k: [v, s, f, ver] for k, v, s, f, ver in zip(
                keys, r.values.numpy().tolist(), r.slots.numpy().tolist(),
                r.freqs.numpy().tolist(), r.versions.numpy().tolist())}
    return out


def train_locally(grouped=True, records=False):
    generator, train, test = data()
    model = build(generator.schema, grouped)
    for x, y in train:
        model.train_on_batch(x, y)
    return summary(model, test, records)


def train_on_cluster(cluster, sequential=False, grouped=True):
    from deeprec_lite.distribute import server

    generator, train, test = data()
    strategy = server.strategy(cluster)
    with strategy.scope():
        model = build(generator.schema, grouped)
    model.make_train_function()  # compiles the metrics under the strategy
    coordinator = tf.distribute.coordinator.ClusterCoordinator(strategy)

    @tf.function
    def step(x, y):
        return strategy.run(model.train_step, args=((x, y),))

    for x, y in train:
        coordinator.schedule(step, args=(x, y))
        if sequential:
            coordinator.join()
    coordinator.join()
    out = summary(model, test, records=sequential)
    graph = step.get_concrete_function(*train[0]).graph
    out["kv_transfers"] = kv_transfers(graph)
    out["dense_reads"] = dense_reads(graph, model)
    return out


def dense_reads(graph, model):
    """{name: how many times a traced step reads it} for each trainable dense variable of
    the model (the KV layers' gradient anchors aside): under ParameterServerStrategy
    every read is a fetch from its parameter server."""
    internal = {id(external): inner for external, inner in graph.captures}
    reads = {}
    for i, v in enumerate(model.trainable_variables):
        if getattr(v, "_drl_kv_embedding", None) is not None:
            continue
        handle = internal.get(id(v.handle))
        reads[f"{i}:{v.name}"] = 0 if handle is None else sum(
            consumer.type == "ReadVariableOp" for consumer in handle.consumers())
    return reads


def kv_transfers(graph):
    """How the KV ops of a traced step meet the worker: {"ops": the ops that take a
    table, "inputs_from_elsewhere": their non-scalar inputs made on another device
    than their table's (reads of variables, constants and KV ops' outputs aside),
    "outputs_to_elsewhere": the ops on other devices that take their outputs}. With
    the tensors moved together (kv.device_transfers), the packing and unpacking ops
    sit on the table's device."""
    device_of = {internal.name: external.device for external, internal in graph.captures
                 if internal.dtype == tf.resource}
    counts = {"ops": 0, "inputs_from_elsewhere": 0, "outputs_to_elsewhere": 0}
    for op in graph.get_operations():
        tables = [device_of.get(t.name) for t in op.inputs if t.dtype == tf.resource]
        if not op.type.startswith("DrlKv") or not tables:
            continue
        counts["ops"] += 1
        counts["inputs_from_elsewhere"] += sum(
            t.op.device != tables[0] for t in op.inputs if t.dtype != tf.resource
            and t.shape.rank != 0 and not t.op.type.startswith("DrlKv")
            and t.op.type not in ("ReadVariableOp", "Const"))
        counts["outputs_to_elsewhere"] += sum(
            consumer.device != tables[0] and not consumer.type.startswith("DrlKv")
            for t in op.outputs for consumer in t.consumers())
    return counts


if __name__ == "__main__":
    parser = argparse.ArgumentParser()
    parser.add_argument("--cluster", required=True)
    parser.add_argument("--sequential", action="store_true")
    parser.add_argument("--ungrouped", action="store_true", help="TableConfig(grouped=False)")
    args = parser.parse_args()
    print(json.dumps(train_on_cluster(args.cluster, args.sequential, not args.ungrouped)),
          flush=True)
