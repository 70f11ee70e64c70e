"""The main job, end to end on built-in synthetic data.

1. Trains a DeepFM on KV embeddings with model.fit, day after day on a
   Criteo-like synthetic stream (new ids every day, counter admission, scheduled
   staleness eviction), testing each day on the next one and printing AUC /
   logloss per epoch and the statistics of every table.
   The day-1 model leaves the data's last categorical field out.
2. Saves a checkpoint (with the model's config), rebuilds the model from it alone
   and checks that every table record and every prediction is identical.
3. Exports the tables filtered by frequency and staleness, as Parquet and as a
   serving SavedModel with stock TensorFlow tables, loads the SavedModel with
   tf.saved_model.load and checks its predictions equal the model's on a batch
   whose keys were all kept.

4. Warm start: a day-2 model with one more feature (the held-out field) starts
   from the day-1 checkpoint (tables, dense weights and optimizer slots where they
   still exist, the new table fresh), prints the migration report and trains on
   the next day.

Any `deeprec-lite train` flag can be passed, e.g. `--days 3 --rows-per-day 200000`.
"""
import argparse
import sys
import tempfile

import numpy as np

from deeprec_lite import cli, export
from deeprec_lite.compat import tf
from deeprec_lite.training import checkpoints, model_tables


def check_restore(model, checkpoint_dir, dataset):
    restored = checkpoints.load(checkpoint_dir)
    np.testing.assert_array_equal(restored.predict(dataset, verbose=0),
                                  model.predict(dataset, verbose=0))
    tables, restored_tables = model_tables.kv_tables(model), model_tables.kv_tables(restored)
    for name, kv in tables.items():
        a, b = kv.export(), restored_tables[name].export()
        order_a, order_b = np.argsort(a.keys.numpy()), np.argsort(b.keys.numpy())
        for field in ("keys", "values", "freqs", "versions", "slots", "admitted"):
            np.testing.assert_array_equal(getattr(a, field).numpy()[order_a],
                                          getattr(b, field).numpy()[order_b])
    print(f"\ncheckpoint {checkpoint_dir}: model rebuilt from it, {len(tables)} tables and all "
          "predictions identical")


def kept_key_rows(model, kept_keys, features):
    """Mask of the rows whose every id is kept in every table it is looked up in."""
    tables = model_tables.kv_tables(model)
    mask = None
    for name in tables:
        field = name.split("_", 1)[1]
        if field not in features:
            continue
        ok = np.isin(features[field], kept_keys[name])
        mask = ok if mask is None else mask & ok
    return mask


def check_export(model, args, dataset):
    """Parquet + serving SavedModel export; the SavedModel predicts like the model."""
    with tempfile.TemporaryDirectory() as tmp:
        filters = dict(min_freq=args.export_min_freq, max_staleness=args.max_staleness)
        manifest = export.export_embeddings(model, f"{tmp}/embeddings", **filters)
        print(f"\nexport (min_freq={args.export_min_freq}, max_staleness={args.max_staleness}):")
        print(export.format_report(manifest))
        export.export_saved_model(model, f"{tmp}/serving", **filters)
        embeddings = export.read_embeddings(f"{tmp}/embeddings")
        kept = {name: embeddings.numpy(name)[0] for name in embeddings.tables}
        features, _ = next(iter(dataset))
        features = {k: v.numpy() for k, v in features.items()}
        rows = kept_key_rows(model, kept, features)
        batch = {k: v[rows] for k, v in features.items() if k in model.input_names}
        assert rows.sum() > 0, "no row of the check batch has only kept keys"
        loaded = tf.saved_model.load(f"{tmp}/serving")  # stock TensorFlow only
        served = loaded.serve(batch).numpy()
        # the model called on the batch whole, as served: predict's compiled function may fuse
        # the dense layers into other oneDNN kernels, whose sums differ in the last bit
        np.testing.assert_array_equal(served, model(batch, training=False))
    print(f"serving SavedModel (stock TF tables): predictions identical to the model on "
          f"{rows.sum()} of {len(rows)} rows whose keys were all kept")


def main(argv):
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    cli.add_train_arguments(parser)
    parser.add_argument("--export-min-freq", type=cli.int_at_least(0), default=3,
                        help="export keys looked up at least this often")
    parser.set_defaults(days=3, rows_per_day=100_000, verbose=2, hold_out_fields=1)
    args = parser.parse_args(argv)
    generator = cli.SyntheticCTR(cli.SyntheticConfig(
        num_categorical=args.categorical_fields, num_numeric=args.numeric_fields, seed=args.seed))
    with tempfile.TemporaryDirectory() as tmp:
        day1 = args.checkpoint_dir or f"{tmp}/day1"
        model = cli.train(argparse.Namespace(**{**vars(args), "checkpoint_dir": day1}))
        check_restore(model, day1, generator.dataset(10_000, args.batch_size, day=args.days))
        check_export(model, args, generator.dataset(20_000, 20_000, day=args.days - 1))
        print("\n== warm start: the day-2 model adds the held-out field")
        cli.train(argparse.Namespace(**{
            **vars(args), "hold_out_fields": 0, "start_day": args.start_day + args.days,
            "days": 1, "warm_start_from": day1, "migrate_slots": True, "checkpoint_dir": None}))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
