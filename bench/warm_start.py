"""Warm-start scenario: how much of the gain of retraining on all history does a
warm-started model recover, and at what compute?

Model A (DeepFM) trains on periods 1..k. Model B has one new feature and one
changed layer (another DNN width). Evaluated on period k+2 after training on k+1:
  (i)   B from scratch on period k+1
  (ii)  B warm-started from A's checkpoint (the optimizer's state carried, the default),
        then period k+1; and (ii') the same with the optimizer's state reset
  (iii) B from scratch on periods 1..k+1 (the upper bound)
gain recovered = (ii - i) / (iii - i); compute ratio = train time (ii) / (iii).

Scenarios: the synthetic stream with daily drift (new ids every day), the same with B's
embedding dim doubled, and ../shared/data/movielens_100k split by month (label rating
>= 4; read in place, skipped where absent).
Last line: warm_start: auc_gain_recovered=<mean> min_scenario_gain=<lowest>
reset_gain=<mean with the optimizer state reset> compute_ratio=<mean>
"""
import argparse
import dataclasses
import os
import tempfile
import time

import numpy as np
import pyarrow.csv as pacsv

from deeprec_lite.compat import keras, tf
from deeprec_lite.data import CategoricalField, LabelField, Schema, roc_auc
from deeprec_lite.data.synthetic.generator import SyntheticCTR, SyntheticConfig
from deeprec_lite.kv import TableConfig, sparse_optimizers
from deeprec_lite.migration import warm_start
from deeprec_lite.models import DeepFM
from deeprec_lite.training import checkpoints, optimizers

MOVIELENS = os.path.join(os.path.dirname(__file__), "..", "..", "shared", "data",
                         "movielens_100k")


def build(schema, dnn, seed, dim=8):
    tf.keras.utils.set_random_seed(seed)
    model = DeepFM(schema, table=TableConfig(dim, initializer="uniform", seed=seed), dnn=dnn)
    model.compile(optimizer=optimizers.KVOptimizer(sparse_optimizers.Adagrad(0.05),
                                                   keras.optimizers.Adam(1e-3)),
                  loss="binary_crossentropy")
    return model


def fit(model, periods, epochs):
    start = time.perf_counter()
    for data in periods:
        model.fit(data, epochs=epochs, verbose=0)
    return time.perf_counter() - start


def auc(model, data):
    labels = np.concatenate([y.numpy() for _, y in data])
    return roc_auc(labels, model.predict(data, verbose=0)[:, 0])


def scenario(periods_for, schema_a, schema_b, k, epochs, seed=0, dim_b=8):
    """periods_for(schema, i) -> dataset of period i (0-based). Returns the test AUCs of
    scratch, warm (state carried), warm (state reset), full, and the compute ratio."""
    test = periods_for(schema_b, k + 1)
    model_a = build(schema_a, (64, 32), seed)
    fit(model_a, [periods_for(schema_a, i) for i in range(k)], epochs)
    with tempfile.TemporaryDirectory() as tmp:
        checkpoints.save(model_a, tmp)
        scratch = build(schema_b, (64,), seed, dim_b)
        fit(scratch, [periods_for(schema_b, k)], epochs)
        warm = {}
        for carry in (True, False):
            model = build(schema_b, (64,), seed, dim_b)
            model.optimizer.build(model.trainable_variables)
            report = warm_start(model, tmp, migrate_slots=carry, allow_shape_change=True,
                                allow_dim_change=dim_b != 8)
            warm[carry] = model, fit(model, [periods_for(schema_b, k)], epochs)
            print(f"  warm start ({'state carried' if carry else 'state reset'}): "
                  + "; ".join(report.summary().splitlines()))
    full = build(schema_b, (64,), seed, dim_b)
    full_time = fit(full, [periods_for(schema_b, i) for i in range(k + 1)], epochs)
    return (auc(scratch, test), auc(warm[True][0], test), auc(warm[False][0], test),
            auc(full, test), warm[True][1] / full_time)


def synthetic(args, dim_b=8):
    generator = SyntheticCTR(SyntheticConfig(num_categorical=10, num_numeric=2,
                                             new_id_rate=0.1, seed=args.seed))
    full = generator.schema
    schema_a = dataclasses.replace(full, categorical=full.categorical[:9])

    def period(schema, day):
        names = [f.name for f in schema.categorical] + [f.name for f in schema.numeric]
        return generator.dataset(args.rows_per_day, 1024, day=day).map(
            lambda x, y: ({n: x[n] for n in names}, y))

    return scenario(period, schema_a, full, args.days, args.epochs, args.seed, dim_b)


def movielens(args):
    read = pacsv.ReadOptions(encoding="latin-1")
    parse = pacsv.ParseOptions(delimiter="\t")
    inter = pacsv.read_csv(os.path.join(args.movielens, "ml-100k.inter"), read, parse)
    users = pacsv.read_csv(os.path.join(args.movielens, "ml-100k.user"), read, parse,
                           pacsv.ConvertOptions(column_types={"zip_code:token": "string"}))
    user_index = {u: i for i, u in enumerate(users["user_id:token"].to_numpy())}
    rows = np.array([user_index[u] for u in inter["user_id:token"].to_numpy()])
    columns = {
        "user": inter["user_id:token"].to_numpy().astype(np.int64),
        "item": inter["item_id:token"].to_numpy().astype(np.int64),
        "gender": users["gender:token"].to_numpy(zero_copy_only=False).astype(str)[rows],
        "occupation": users["occupation:token"].to_numpy(zero_copy_only=False).astype(str)[rows],
        "age": users["age:token"].to_numpy().astype(np.int64)[rows],
    }
    label = (inter["rating:float"].to_numpy() >= 4).astype(np.float32)
    month = inter["timestamp:float"].to_numpy().astype("datetime64[s]").astype("datetime64[M]")
    months = np.unique(month)
    fields = [CategoricalField("user"), CategoricalField("item"),
              CategoricalField("gender", dtype="string"),
              CategoricalField("occupation", dtype="string"), CategoricalField("age")]
    schema_b = Schema(labels=[LabelField("label")], categorical=fields)
    schema_a = Schema(labels=[LabelField("label")], categorical=fields[:4])

    def period(schema, i):
        mask = month == months[i]
        x = {f.name: columns[f.name][mask] for f in schema.categorical}
        return tf.data.Dataset.from_tensor_slices((x, label[mask])).batch(256)

    k = len(months) - 2  # train A on all months but the last two
    return scenario(period, schema_a, schema_b, k, args.epochs, args.seed)


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--days", type=int, default=4, help="synthetic: k")
    parser.add_argument("--rows-per-day", type=int, default=50_000)
    parser.add_argument("--epochs", type=int, default=2)
    parser.add_argument("--movielens", default=MOVIELENS)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    results = {}
    runs = (("synthetic", synthetic), ("synthetic, dim 8 -> 16", lambda a: synthetic(a, 16)),
            ("movielens_100k", movielens))
    for name, run in runs:
        if name == "movielens_100k" and not os.path.isdir(args.movielens):
            print(f"{name}: {args.movielens} not found, skipped")
            continue
        print(f"{name}:")
        scratch, warm, reset, full, ratio = run(args)
        gain, reset_gain = ((w - scratch) / (full - scratch) for w in (warm, reset))
        results[name] = (gain, reset_gain, ratio)
        print(f"  test AUC: (i) scratch {scratch:.4f}  (ii) warm start {warm:.4f} (state "
              f"reset: {reset:.4f})  (iii) all history {full:.4f}; gain recovered {gain:.2f} "
              f"(reset {reset_gain:.2f}), compute ratio {ratio:.2f}", flush=True)
    gains, reset_gains, ratios = zip(*results.values())
    print(f"warm_start: auc_gain_recovered={np.mean(gains):.2f} "
          f"min_scenario_gain={min(gains):.2f} reset_gain={np.mean(reset_gains):.2f} "
          f"compute_ratio={np.mean(ratios):.2f}")


if __name__ == "__main__":
    main()
