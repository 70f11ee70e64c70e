"""Every zoo model on Frappe, with the DeepCTR implementations of the same models where
deepctr is importable (it is not a dependency of deeprec-lite; the bench runs without it).

Trains on frappe.validation.libfm, tests on frappe.test.libfm (../shared/data/frappe, read
in place, never copied); the same embedding dim, DNN, optimizer (Adam), batch size and
epoch budget for every model. KV tables start from initializer="uniform" (tf_keras
Embedding's distribution, see bench/frappe_auc.py) and train with lazy Adam or Adagrad
(--kv-optimizer; xDeepInt's with its group-lasso FTRL). Table: test AUC, logloss, parameters (dense weights, and
embedding rows actually held: admitted keys x dim for KV tables, the allocated tables for
Keras Embedding) and training examples/s.

Last line: model_zoo: models=<n> trained=<t> best_auc=<a> deepctr_best_auc=<b>
worse_than_deepctr=<k> (k: models more than 0.003 AUC below their DeepCTR counterpart).
"""
import argparse
import inspect
import os
import time
import traceback

import numpy as np

from deeprec_lite import models
from deeprec_lite.compat import keras, tf
from deeprec_lite.data import FRAPPE_FIELD_RANGES, frappe_schema, read_libsvm, roc_auc
from deeprec_lite.kv import sparse_optimizers
from deeprec_lite.training import model_tables, optimizers

DATA = os.path.join(os.path.dirname(__file__), "..", "..", "shared", "data", "frappe")
VOCAB = max(hi for _, hi in FRAPPE_FIELD_RANGES.values()) + 1
MARGIN = 0.003
# schema-specific choices: CAN's induction feature is the target item
ZOO_KWARGS = {"can": {"induction_field": "item"}}
# zoo name -> (deepctr.models class, its arguments beyond the shared ones)
DEEPCTR = {
    "widedeep": ("WDL", {}), "deepfm": ("DeepFM", {}),
    "dcn": ("DCN", {"cross_num": 3}),
    "dcnv2": ("DCN", {"cross_num": 3, "cross_parameterization": "matrix"}),
    "dcnmix": ("DCNMix", {"cross_num": 3}), "xdeepfm": ("xDeepFM", {}),
    "ipnn": ("PNN", {"use_inner": True}),
    "opnn": ("PNN", {"use_inner": False, "use_outter": True}),
    "fibinet": ("FiBiNET", {}),
}


def load(args, schema):
    train = read_libsvm(os.path.join(args.data, "frappe.validation.libfm"), args.batch_size,
                        schema=schema, field_ranges=FRAPPE_FIELD_RANGES).cache()
    test = read_libsvm(os.path.join(args.data, "frappe.test.libfm"), 4096, schema=schema,
                       field_ranges=FRAPPE_FIELD_RANGES).cache()
    labels = np.concatenate([y.numpy() for _, y in test])
    rows = sum(int(y.shape[0]) for _, y in train)
    return train, test, labels, rows


def zoo_model(name, args, schema):
    builder = models.get(name)
    kwargs = dict(ZOO_KWARGS.get(name, {}), initializer="uniform", seed=args.seed)
    if "dnn" in inspect.signature(builder).parameters:
        kwargs["dnn"] = tuple(args.dnn)
    model = builder(schema, table=args.dim, **kwargs)
    sparse = (sparse_optimizers.Adam(args.lr) if args.kv_optimizer == "adam"
              else sparse_optimizers.Adagrad(args.kv_lr))
    model.compile(optimizer=optimizers.KVOptimizer(sparse, keras.optimizers.Adam(args.lr)),
                  loss="binary_crossentropy")
    return model


def deepctr_model(name, args):
    from deepctr import models as dm  # pylint: disable=import-outside-toplevel
    from deepctr.feature_column import SparseFeat  # pylint: disable=import-outside-toplevel

    cls_name, extra = DEEPCTR[name]
    columns = [SparseFeat(f, vocabulary_size=VOCAB, embedding_dim=args.dim, dtype="int64")
               for f in FRAPPE_FIELD_RANGES]
    cls = getattr(dm, cls_name)
    positional = [columns] if cls_name == "PNN" else [columns, columns]
    model = cls(*positional, dnn_hidden_units=tuple(args.dnn), seed=args.seed, **extra)
    model.compile(optimizer=keras.optimizers.Adam(args.lr), loss="binary_crossentropy")
    return model


def column_inputs(features, label):
    """DeepCTR wants [B, 1] inputs."""
    return {k: v[:, None] for k, v in features.items()}, label


def param_counts(model, kind):
    """(dense parameters, embedding parameters held)."""
    if kind == "kv":
        tables = model_tables.kv_tables(model).values()
        return model.count_params(), sum(int(kv.size()) * kv.dim for kv in tables)
    embedding = sum(int(np.prod(w.shape)) for layer in model.layers for w in layer.weights
                    if isinstance(layer, keras.layers.Embedding))
    return model.count_params() - embedding, embedding


def run(name, kind, args, schema, data):
    train, test, labels, rows = data
    tf.keras.utils.set_random_seed(args.seed)
    if kind == "kv":
        model = zoo_model(name, args, schema)
    else:
        model = deepctr_model(name, args)
        train, test = train.map(column_inputs), test.map(column_inputs)
    start = time.perf_counter()
    model.fit(train.shuffle(64, seed=args.seed), epochs=args.epochs, verbose=0)
    seconds = time.perf_counter() - start
    predictions = np.clip(model.predict(test, verbose=0)[:, 0].astype(np.float64), 1e-7, 1 - 1e-7)
    logloss = -np.mean(labels * np.log(predictions) + (1 - labels) * np.log(1 - predictions))
    dense, embedding = param_counts(model, kind)
    return {"auc": roc_auc(labels, predictions), "logloss": logloss, "dense": dense,
            "embedding": embedding, "eps": rows * args.epochs / seconds}


def deepctr_available():
    try:
        import deepctr.models  # noqa: F401  pylint: disable=import-outside-toplevel,unused-import
        return True
    except Exception:  # pylint: disable=broad-except
        return False


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--data", default=DATA)
    parser.add_argument("--models", default="all",
                        help="comma-separated zoo names (default all: " + ",".join(models.MODELS)
                        + ")")
    parser.add_argument("--epochs", type=int, default=10)
    parser.add_argument("--batch-size", type=int, default=1024)
    parser.add_argument("--dim", type=int, default=10)
    parser.add_argument("--dnn", type=int, nargs="*", default=[400, 400, 400])
    parser.add_argument("--lr", type=float, default=1e-3)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--kv-optimizer", choices=["adam", "adagrad"], default="adam",
                        help="sparse optimizer of the KV tables (lazy Adam at --lr, or Adagrad)")
    parser.add_argument("--kv-lr", type=float, default=0.05, help="learning rate of Adagrad")
    parser.add_argument("--no-deepctr", action="store_true", help="skip DeepCTR even if installed")
    args = parser.parse_args()
    names = list(models.MODELS) if args.models == "all" else args.models.split(",")
    for name in names:
        models.get(name)  # unknown names fail before any training
    with_deepctr = not args.no_deepctr and deepctr_available()
    schema = frappe_schema()
    data = load(args, schema)

    print(f"frappe: {data[3]} train rows, {len(data[2])} test rows; dim {args.dim}, "
          f"epochs {args.epochs}, batch {args.batch_size}, DNN {args.dnn}; deepctr "
          f"{'on' if with_deepctr else 'not importable / off'}")
    header = (f"{'model':>11} {'impl':>8} {'AUC':>7} {'logloss':>8} {'dense params':>13} "
              f"{'emb params':>11} {'examples/s':>11}")
    print(header, flush=True)
    results, failed = {}, []
    for name in names:
        kinds = ["kv"] + (["deepctr"] if with_deepctr and name in DEEPCTR else [])
        for kind in kinds:
            try:
                r = run(name, kind, args, schema, data)
            except Exception:  # pylint: disable=broad-except
                traceback.print_exc()
                print(f"{name:>11} {kind:>8} FAILED", flush=True)
                if kind == "kv":
                    failed.append(name)
                continue
            results[name, kind] = r
            print(f"{name:>11} {kind:>8} {r['auc']:>7.4f} {r['logloss']:>8.4f} {r['dense']:>13,} "
                  f"{r['embedding']:>11,} {r['eps']:>11,.0f}", flush=True)

    zoo = {n: r["auc"] for (n, k), r in results.items() if k == "kv"}
    ref = {n: r["auc"] for (n, k), r in results.items() if k == "deepctr"}
    worse = [n for n in ref if n not in zoo or zoo[n] < ref[n] - MARGIN]
    if worse:
        print("more than 0.003 AUC below DeepCTR: " + ", ".join(worse))
    if failed:
        print("failed: " + ", ".join(failed))
    best = f"{max(zoo.values()):.4f}" if zoo else "n/a"
    best_ref = f"{max(ref.values()):.4f}" if ref else "n/a"
    print(f"model_zoo: models={len(names)} trained={len(zoo)} best_auc={best} "
          f"deepctr_best_auc={best_ref} worse_than_deepctr={len(worse)}")


if __name__ == "__main__":
    main()
