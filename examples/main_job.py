"""The main job, end to end on built-in synthetic data; everything it writes goes to --out-dir.

1. train: a DeepFM on KV embeddings trained with model.fit, day after day on a
   Criteo-like synthetic stream (new ids every day, counter admission, scheduled
   staleness eviction), validated each day on the next one. The day-1 model leaves
   the data's last categorical field out. Saved to <out-dir>/day1.
2. restore: the model rebuilt from the checkpoint alone; every table record and every
   prediction must be identical.
3. export: the tables filtered by frequency and staleness, as Parquet and as a serving
   SavedModel with stock TensorFlow tables, which is loaded back with tf.saved_model.load;
   its predictions must equal the model's on rows whose keys were all kept.
4. warm start: a day-2 model with one more feature (the held-out field) starts from the
   day-1 checkpoint (tables, dense weights, optimizer state; the new table fresh) and
   trains on the next day. The report of every parameter goes to a JSON file.

It ends with a table of the stages (AUC, keys, files, seconds) and the line
`main_job: auc=<a> true_probability_auc=<b> lift_ratio=<(a-0.5)/(b-0.5)> seconds=<s>`,
where b is the AUC of the generator's own click probabilities on the same validation rows.
Any `deeprec-lite train` flag can be passed, e.g. `--days 3 --rows-per-day 200000`.
"""
import time

START = time.perf_counter()

import argparse  # noqa: E402
import os  # noqa: E402
import sys  # noqa: E402

import numpy as np  # noqa: E402

from deeprec_lite import cli  # noqa: E402  (first: it quiets TensorFlow's start-up logging)
from deeprec_lite import export  # noqa: E402
from deeprec_lite.compat import tf  # noqa: E402
from deeprec_lite.data.auc import roc_auc  # noqa: E402
from deeprec_lite.training import checkpoints, model_tables  # noqa: E402


class Stages:
    """Rows of the closing table: one per stage, timed from the end of the one before."""

    def __init__(self):
        self.rows, self._last = [], time.perf_counter()

    def done(self, name, auc, keys, files):
        now = time.perf_counter()
        self.rows.append((name, auc, keys, files, now - self._last))
        self._last = now

    def table(self):
        lines = [f"{'stage':<11} {'AUC':>7} {'keys':>18} {'files':>6} {'seconds':>8}"]
        for name, auc, keys, files, seconds in self.rows:
            lines.append(f"{name:<11} {auc:>7.4f} {keys:>18} {files:>6} {seconds:>8.1f}")
        return "\n".join(lines)


def file_count(path):
    return sum(len(files) for _, _, files in os.walk(path))


def check_batch(generator, model, rows, day):
    """(features the model takes, labels) of `rows` rows of `day`, as one batch."""
    features, labels = next(iter(cli.model_inputs(model, generator.dataset(rows, rows, day=day))))
    return {k: v.numpy() for k, v in features.items()}, labels.numpy()


def check_restore(model, checkpoint_dir, batch, labels):
    """Rebuilds the model from its checkpoint; records and predictions must be identical."""
    restored = checkpoints.load(checkpoint_dir)
    predictions = restored(batch, training=False).numpy()
    np.testing.assert_array_equal(predictions, model(batch, training=False).numpy())
    tables, restored_tables = model_tables.kv_tables(model), model_tables.kv_tables(restored)
    for name, kv in tables.items():
        a, b = kv.export(), restored_tables[name].export()
        order_a, order_b = np.argsort(a.keys.numpy()), np.argsort(b.keys.numpy())
        for field in ("keys", "values", "freqs", "versions", "slots", "admitted"):
            np.testing.assert_array_equal(getattr(a, field).numpy()[order_a],
                                          getattr(b, field).numpy()[order_b])
    keys = sum(int(kv.size()) for kv in tables.values())
    print(f"model rebuilt from {checkpoint_dir}: {len(tables)} tables ({keys:,} keys) and every "
          f"prediction identical")
    return roc_auc(labels, predictions), keys


def kept_key_rows(model, kept_keys, features):
    """Mask of the rows whose every id is kept in every table it is looked up in."""
    mask = np.ones(len(next(iter(features.values()))), bool)
    for name in model_tables.kv_tables(model):
        field = name.split("_", 1)[1]
        if field in features:
            mask &= np.isin(features[field], kept_keys[name])
    return mask


def check_export(model, args, out_dir, batch, labels):
    """Parquet + serving SavedModel export; the SavedModel predicts like the model on the
    rows whose keys were all kept. Returns (AUC served on the whole batch, keys kept)."""
    filters = dict(min_freq=args.export_min_freq, max_staleness=args.max_staleness,
                   overwrite=True)
    manifest = export.export_embeddings(model, f"{out_dir}/embeddings", **filters)
    kept = sum(t["kept"] for t in manifest["tables"].values())
    before = sum(t["keys_before"] for t in manifest["tables"].values())
    print(f"Parquet export (min_freq={args.export_min_freq}, max_staleness={args.max_staleness}):"
          f" {kept:,} of {before:,} keys counted kept -> {out_dir}/embeddings")
    export.export_saved_model(model, f"{out_dir}/serving", **filters)
    embeddings = export.read_embeddings(f"{out_dir}/embeddings")
    rows = kept_key_rows(model, {t: embeddings.numpy(t)[0] for t in embeddings.tables}, batch)
    assert rows.sum() > 0, "no row of the check batch has only kept keys"
    serving = tf.saved_model.load(f"{out_dir}/serving")  # stock TensorFlow only
    kept_batch = {k: v[rows] for k, v in batch.items()}
    np.testing.assert_array_equal(serving.serve(kept_batch).numpy(),
                                  export.predict_as_served(model, kept_batch).numpy())
    print(f"serving SavedModel (stock TF tables) -> {out_dir}/serving: predictions identical "
          f"to the model on the {rows.sum():,} of {len(rows):,} rows whose keys were all kept")
    return roc_auc(labels, serving.serve(batch).numpy()), f"{kept:,} of {before:,}"


def main(argv):
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    cli.add_train_arguments(parser)
    parser.add_argument("--export-min-freq", type=cli.int_at_least(0), default=3,
                        help="export keys seen at least this often in the data")
    parser.add_argument("--out-dir", default="main_job_output",
                        help="where the checkpoints, exports and reports go")
    # two epochs a day (392 steps, 196 batches each); max_staleness 450 steps: ids not
    # trained for more than about a day (faded generations) are evicted
    parser.set_defaults(days=3, rows_per_day=200_000, epochs=2, verbose=2, hold_out_fields=1,
                        max_staleness=450)
    args = parser.parse_args(argv)
    out = args.out_dir
    os.makedirs(out, exist_ok=True)
    generator = cli.demo_generator(args)
    stages = Stages()

    print(f"== 1. train: {args.days} days of {args.rows_per_day:,} rows, the last field held out")
    day1 = f"{out}/day1"
    model = cli.train(argparse.Namespace(**{**vars(args), "checkpoint_dir": day1}))
    stages.done("train", model.history.history["val_auc"][-1],
                f"{cli.table_totals(model)['admitted']:,}", file_count(day1))

    print("\n== 2. restore the model from its checkpoint alone")
    batch, labels = check_batch(generator, model, 20_000, args.start_day + args.days)
    auc, keys = check_restore(model, day1, batch, labels)
    stages.done("restore", auc, f"{keys:,}", 0)

    print("\n== 3. export filtered embeddings and a serving SavedModel")
    auc, kept = check_export(model, args, out, batch, labels)
    stages.done("export", auc, kept, file_count(f"{out}/embeddings") + file_count(f"{out}/serving"))

    print("\n== 4. warm start: the day-2 model adds the held-out field")
    report = f"{out}/warm_start_report.json"
    warm = cli.train(argparse.Namespace(**{
        **vars(args), "hold_out_fields": 0, "start_day": args.start_day + args.days, "days": 1,
        "warm_start_from": day1, "warm_start_report": report,
        "checkpoint_dir": f"{out}/day2"}))
    auc = warm.history.history["val_auc"][-1]
    stages.done("warm start", auc, f"{cli.table_totals(warm)['admitted']:,}",
                file_count(f"{out}/day2") + 1)  # + the report

    test_rows = max(args.rows_per_day // 4, args.batch_size)
    true_auc = generator.bayes_auc(test_rows, day=args.start_day + args.days + 1)
    seconds = time.perf_counter() - START
    print(f"\n{stages.table()}\nall files: {out}/ ({file_count(out)} files)")
    print(f"main_job: auc={auc:.4f} true_probability_auc={true_auc:.4f} "
          f"lift_ratio={(auc - 0.5) / (true_auc - 0.5):.3f} seconds={seconds:.0f}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
