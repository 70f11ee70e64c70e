"""Real-data check: DeepFM on Frappe with KV embeddings against the same DeepFM with
tf_keras Embedding over the full vocabulary, same optimizer and epoch budget.

Trains on frappe.validation.libfm, tests on frappe.test.libfm (../shared/data/frappe,
read in place, never copied). Last line: frappe_auc: kv=<auc> keras_embedding=<auc>
"""
import argparse
import os

import numpy as np

from deeprec_lite.compat import keras, tf
from deeprec_lite.data import FRAPPE_FIELD_RANGES, frappe_schema, read_libsvm, roc_auc
from deeprec_lite.kv import TableConfig, sparse_optimizers
from deeprec_lite.models import DeepFM
from deeprec_lite.training import optimizers

DATA = os.path.join(os.path.dirname(__file__), "..", "..", "shared", "data", "frappe")
VOCAB = max(hi for _, hi in FRAPPE_FIELD_RANGES.values()) + 1


def keras_embedding(field, dim, name):
    return keras.layers.Embedding(VOCAB, dim, name=name)


def train_and_test(kind, args, schema):
    tf.keras.utils.set_random_seed(args.seed)
    train = read_libsvm(os.path.join(args.data, "frappe.validation.libfm"), args.batch_size,
                        schema=schema, field_ranges=FRAPPE_FIELD_RANGES)
    test = read_libsvm(os.path.join(args.data, "frappe.test.libfm"), 4096, schema=schema,
                       field_ranges=FRAPPE_FIELD_RANGES)
    if kind == "kv":
        # the same initial distribution as tf_keras Embedding
        model = DeepFM(schema, table=TableConfig(args.dim, initializer="uniform", seed=args.seed),
                       dnn=(400, 400, 400))
        sparse = (sparse_optimizers.Adam(args.lr) if args.kv_optimizer == "adam"
                  else sparse_optimizers.Adagrad(args.kv_lr))
        optimizer = optimizers.KVOptimizer(sparse, keras.optimizers.Adam(args.lr))
    else:
        model = DeepFM(schema, table=args.dim, dnn=(400, 400, 400), layer_factory=keras_embedding)
        optimizer = keras.optimizers.Adam(args.lr)
    model.compile(optimizer=optimizer, loss="binary_crossentropy")
    model.fit(train.shuffle(64, seed=args.seed), epochs=args.epochs, verbose=0)
    labels = np.concatenate([y.numpy() for _, y in test])
    return roc_auc(labels, model.predict(test, verbose=0)[:, 0])


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--data", default=DATA)
    parser.add_argument("--epochs", type=int, default=10)
    parser.add_argument("--batch-size", type=int, default=1024)
    parser.add_argument("--dim", type=int, default=10)
    parser.add_argument("--lr", type=float, default=1e-3)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--kv-optimizer", choices=["adam", "adagrad"], default="adam",
                        help="sparse optimizer of the KV tables (lazy Adam, or Adagrad)")
    parser.add_argument("--kv-lr", type=float, default=0.05, help="learning rate of Adagrad")
    args = parser.parse_args()
    schema = frappe_schema()
    kv = train_and_test("kv", args, schema)
    reference = train_and_test("keras", args, schema)
    print(f"frappe_auc: kv={kv:.4f} keras_embedding={reference:.4f}")


if __name__ == "__main__":
    main()
