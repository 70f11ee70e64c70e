"""One pass over fixed batches, each trained exactly once, on a cluster or in this process.

The chief of tests/test_ps_training.py (run as a script with --cluster) and its
single-process reference (`train_locally`): the same model, data and batches,
the model's own train_step, so the two can be compared key for key.
On the cluster every batch is one ClusterCoordinator closure running
model.train_step on a worker (asynchronous, like model.fit, but no batch is
repeated or skipped). Prints a JSON line: {table: {key: freq}} and the test AUC.
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


def build(schema):
    model = cli.build_model("deepfm", schema, 8, min_count=1, max_staleness=10 ** 9,
                            evict_every=None, freq_counting="every_epoch")
    # Rates high enough that one pass learns well (AUC ~0.67, the data's best is ~0.82).
    model.compile(optimizer=optimizers.KVOptimizer(sparse=sparse_optimizers.Adagrad(0.2),
                                                   dense=keras.optimizers.Adam(0.005)),
                  loss="binary_crossentropy")
    return model


def summary(model, test_batches):
    scores = np.concatenate([model(x, training=False).numpy().ravel() for x, _ in test_batches])
    labels = np.concatenate([y.numpy() for _, y in test_batches])
    freqs = {}
    for name, kv in model_tables.kv_tables(model).items():
        r = kv.export()
        freqs[name] = dict(zip(r.keys.numpy().tolist(), r.freqs.numpy().tolist()))
    return {"auc": roc_auc(labels, scores), "freqs": freqs}


def train_locally():
    generator, train, test = data()
    model = build(generator.schema)
    for x, y in train:
        model.train_on_batch(x, y)
    return summary(model, test)


def train_on_cluster(cluster):
    from deeprec_lite.distribute import server

    generator, train, test = data()
    strategy = server.strategy(cluster)
    with strategy.scope():
        model = build(generator.schema)
    model.make_train_function()  # compiles the metrics under the strategy
    coordinator = tf.distribute.coordinator.ClusterCoordinator(strategy)

    @tf.function
    def step(x, y):
        return strategy.run(model.train_step, args=((x, y),))

    for x, y in train:
        coordinator.schedule(step, args=(x, y))
    coordinator.join()
    return summary(model, test)


if __name__ == "__main__":
    parser = argparse.ArgumentParser()
    parser.add_argument("--cluster", required=True)
    print(json.dumps(train_on_cluster(parser.parse_args().cluster)), flush=True)
