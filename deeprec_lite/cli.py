"""`deeprec-lite` command line: train (and list the model zoo), warm-start, export, and
rebuild a serving model from a serving delta.

    deeprec-lite train --model deepfm --days 2 --rows-per-day 100000 --checkpoint-dir ckpt
    deeprec-lite train --list-models
    deeprec-lite warm-start --from ckpt --model dcnv2 --start-day 2 --days 1
    deeprec-lite export --checkpoint ckpt --out emb --min-freq 2 --max-staleness 1000
    deeprec-lite export --checkpoint ckpt --out emb_delta --since emb --min-freq 2 \
        --max-staleness 1000
    deeprec-lite export --checkpoint ckpt --out serving --format saved_model --model deepfm
    deeprec-lite serving apply-delta --base serving --delta serving_delta --out serving2
"""
import argparse
import dataclasses
import os
import sys

from deeprec_lite._quiet_start import import_tensorflow_quietly

import_tensorflow_quietly()  # before anything of the package imports TensorFlow
from deeprec_lite.compat import keras, tf  # noqa: E402
from deeprec_lite.data.synthetic.generator import SyntheticCTR, SyntheticConfig  # noqa: E402
from deeprec_lite.kv import sparse_optimizers  # noqa: E402
from deeprec_lite.kv.policies import CounterFilter, StalenessEviction  # noqa: E402
from deeprec_lite.kv.table_config import TableConfig  # noqa: E402
from deeprec_lite.training import callbacks, checkpoints, model_tables, optimizers  # noqa: E402


def int_at_least(minimum):
    """An argparse type: an integer >= `minimum`, else argparse's one-line error naming the flag."""
    def parse(text):
        try:
            value = int(text)
        except ValueError:
            value = None
        if value is None or value < minimum:
            raise argparse.ArgumentTypeError(f"must be an integer >= {minimum}, got {text!r}")
        return value

    parse.__name__ = f"integer >= {minimum}"
    return parse


def table_totals(model):
    """Sums over every KV table: tables, admitted, pending (counted but not admitted),
    evicted, bytes and gradient rows skipped for NaN / Inf."""
    tables = model_tables.kv_tables(model).values()
    totals = {"tables": len(tables), "admitted": 0, "pending": 0, "evicted": 0, "bytes": 0,
              "nonfinite_skipped": 0}
    for kv in tables:
        stats = kv.stats()
        for key in ("admitted", "pending", "bytes", "nonfinite_skipped"):
            totals[key] += int(stats[key])
        totals["evicted"] += int(kv.evicted)
    return totals


def table_summary(model):
    """One line over every KV table: keys admitted, counted but not admitted, evicted, MiB."""
    t = table_totals(model)
    skipped = t["nonfinite_skipped"]
    return (f"{t['tables']} KV tables: {t['admitted']:,} keys admitted, {t['pending']:,} counted "
            f"but not admitted yet, {t['evicted']:,} evicted, {t['bytes'] / 2 ** 20:.1f} MiB"
            + (f", {skipped:,} gradient rows with NaN / Inf skipped" if skipped else ""))


def table_report(model):
    """A text table of every KV table's statistics."""
    lines = [f"{'table':>22} {'admitted':>9} {'not admitted':>13} {'evicted':>8} {'MiB':>7}"]
    for name, kv in model_tables.kv_tables(model).items():
        s = {k: int(v) for k, v in kv.stats().items()}
        lines.append(f"{name:>22} {s['admitted']:>9} {s['pending']:>13} {int(kv.evicted):>8} "
                     f"{s['bytes'] / 2 ** 20:>7.2f}")
    return "\n".join(lines)


# Adagrad on the KV tables: 0.5 learns the synthetic planted model's first-order
# weights much further than 0.05 in one pass over each day (main job lift 0.49 -> 0.57).
SPARSE_LEARNING_RATE = 0.5

# The demo's data (`deeprec-lite train`, the main job): the generator's Criteo-like stream with
# ids more concentrated on popular ones (Zipf exponent 1.3 instead of 1.1), a smaller share of
# the planted pairwise interaction of per-id vectors (which no model learns for rare ids from a
# few hundred thousand rows) and a larger one of the numeric features, so that what a model
# can learn from the demo's rows is most of what the true probabilities know; new ids still
# arrive every day, many are never admitted and faded ones are evicted.
DEMO_DATA = dict(zipf_exponent=1.3, interaction_scale=0.3, numeric_scale=1.0)


def demo_generator(args) -> SyntheticCTR:
    """The synthetic data of the train command's flags (fields, seed) and DEMO_DATA."""
    return SyntheticCTR(SyntheticConfig(num_categorical=args.categorical_fields,
                                        num_numeric=args.numeric_fields, seed=args.seed,
                                        **DEMO_DATA))


def build_model(name, schema, embedding_dim, min_count, max_staleness, evict_every,
                freq_counting="first_epoch", steps_per_execution=1, grouped=True):
    """A compiled zoo model whose tables admit ids seen `min_count` times (in the data,
    with the default freq_counting) and evict those not updated for `max_staleness` steps;
    `fit` runs `steps_per_execution` steps per call of its function; `grouped`: see
    TableConfig."""
    from deeprec_lite import models  # the zoo, installed as deeprec_lite.models

    table = TableConfig(embedding_dim,
                        admission=CounterFilter(min_count) if min_count > 1 else None,
                        eviction=StalenessEviction(max_staleness, every_n_steps=evict_every),
                        freq_counting=freq_counting, grouped=grouped)
    model = models.get(name)(schema, table=table)
    model.compile(
        optimizer=optimizers.KVOptimizer(sparse=sparse_optimizers.Adagrad(SPARSE_LEARNING_RATE),
                                         dense=keras.optimizers.Adam(1e-3)),
        loss="binary_crossentropy",
        metrics=[keras.metrics.AUC(name="auc"), keras.metrics.BinaryCrossentropy(name="logloss")],
        steps_per_execution=steps_per_execution)
    return model


def model_schema(generator, hold_out_fields):
    """The generator's schema without its last `hold_out_fields` categorical fields."""
    schema = generator.schema
    if not 0 <= hold_out_fields < len(schema.categorical):
        raise ValueError(f"--hold-out-fields must be in [0, {len(schema.categorical) - 1}], got "
                         f"{hold_out_fields}")
    keep = len(schema.categorical) - hold_out_fields
    return dataclasses.replace(schema, categorical=schema.categorical[:keep])


def model_inputs(model, dataset):
    """The (features, label) batches with only the features the model takes."""
    names = set(model.input_names)
    return dataset.map(lambda features, label: (
        {k: v for k, v in features.items() if k in names}, label))


def check_writable_dir(path, flag):
    """ValueError naming `flag` when `path`, or the nearest of its parents that exists, is
    not a directory: the directory could not be made (checked before training, not after)."""
    existing = os.path.abspath(path)
    while not os.path.exists(existing):
        existing = os.path.dirname(existing)
    if not os.path.isdir(existing):
        where = "" if existing == os.path.abspath(path) else f": {existing!r}"
        raise ValueError(f"{flag} {path!r}{where} exists and is not a directory")


def check_writable_file(path, flag):
    """ValueError naming `flag` when `path` is a directory or its directory could not be
    made (check_writable_dir)."""
    if os.path.isdir(path):
        raise ValueError(f"{flag} {path!r} is a directory, not a file")
    check_writable_dir(os.path.dirname(os.path.abspath(path)), flag)


def train(args):
    """Trains a zoo model on synthetic data day after day (from --start-day), evaluating
    on the next day; optionally warm-started from a checkpoint first."""
    from deeprec_lite.migration import warm_start

    for path, flag in ((args.checkpoint_dir, "--checkpoint-dir"), (args.log_dir, "--log-dir")):
        if path:
            check_writable_dir(path, flag)
    if args.warm_start_report:
        if not args.warm_start_from:
            raise ValueError("--warm-start-report needs --warm-start-from (it reports what the "
                             "warm start carried)")
        check_writable_file(args.warm_start_report, "--warm-start-report")
    generator = demo_generator(args)
    model = build_model(args.model, model_schema(generator, args.hold_out_fields),
                        args.embedding_dim, args.min_count, args.max_staleness, args.evict_every)
    if args.warm_start_from:
        model.optimizer.build(model.trainable_variables)
        report = warm_start(model, args.warm_start_from,
                            migrate_slots=not args.reset_optimizer_state,
                            allow_dim_change=True, allow_shape_change=True)
        print(f"\nwarm start from {args.warm_start_from}:\n{report.summary()}")
        if args.warm_start_report:
            os.makedirs(os.path.dirname(os.path.abspath(args.warm_start_report)), exist_ok=True)
            report.write_json(args.warm_start_report)
            print(f"every parameter's status: {args.warm_start_report}")
    stats = [callbacks.KVTableStats(args.log_dir)] if args.log_dir else []
    for day in range(args.start_day, args.start_day + args.days):
        test_rows = max(args.rows_per_day // 4, args.batch_size)
        print(f"\n== day {day}: train on {args.rows_per_day} rows, test on {test_rows} rows of "
              f"day {day + 1} (best achievable AUC "
              f"{generator.bayes_auc(test_rows, day=day + 1):.4f})")
        train_data = generator.dataset(args.rows_per_day, args.batch_size, day=day)
        test_data = generator.dataset(test_rows, args.batch_size, day=day + 1)
        model.fit(model_inputs(model, train_data), validation_data=model_inputs(model, test_data),
                  epochs=args.epochs, verbose=args.verbose, callbacks=stats)
        print(table_report(model) if args.table_report else table_summary(model))
    if args.checkpoint_dir:
        print(f"checkpoint: {checkpoints.save(model, args.checkpoint_dir)}")
    return model


def add_model_arguments(parser):
    """The flags that build a zoo model on the synthetic schema (train, and export's
    rebuild of a model from a plain TensorFlow checkpoint)."""
    from deeprec_lite import models

    parser.add_argument("--model", default="deepfm", choices=sorted(models.MODELS))
    parser.add_argument("--embedding-dim", type=int_at_least(1), default=16)
    parser.add_argument("--categorical-fields", type=int_at_least(1), default=26)
    parser.add_argument("--numeric-fields", type=int_at_least(0), default=13)
    parser.add_argument("--min-count", type=int_at_least(1), default=2,
                        help="admit ids once seen this often in the data (1: at once)")
    parser.add_argument("--seed", type=int_at_least(0), default=0)


def add_train_arguments(parser):
    add_model_arguments(parser)
    parser.add_argument("--list-models", action="store_true", help="list the zoo and exit")
    parser.add_argument("--days", type=int_at_least(1), default=2)
    parser.add_argument("--start-day", type=int_at_least(0), default=0,
                        help="first day of data to train on")
    parser.add_argument("--hold-out-fields", type=int_at_least(0), default=0,
                        help="leave the last N categorical fields of the data out of the model")
    parser.add_argument("--warm-start-from", default=None,
                        help="checkpoint directory (or Keras SavedModel) to warm-start from")
    parser.add_argument("--reset-optimizer-state", action="store_true",
                        help="warm start: start the optimizer afresh (slots, moments, step "
                             "count) instead of carrying its state")
    parser.add_argument("--warm-start-report", default=None,
                        help="warm start: write every parameter's status to this JSON file")
    parser.add_argument("--table-report", action="store_true",
                        help="print every KV table's statistics after each day")
    parser.add_argument("--rows-per-day", type=int_at_least(1), default=100_000)
    parser.add_argument("--batch-size", type=int_at_least(1), default=1024)
    parser.add_argument("--epochs", type=int_at_least(1), default=1)
    parser.add_argument("--max-staleness", type=int_at_least(0), default=1000)
    parser.add_argument("--evict-every", type=int_at_least(1), default=100,
                        help="steps between evictions")
    parser.add_argument("--checkpoint-dir", default=None)
    parser.add_argument("--log-dir", default=None, help="TensorBoard directory")
    parser.add_argument("--verbose", type=int, choices=(0, 1, 2), default=1,
                        help="Keras progress: 0, 1 or 2")


def restore_model(args, checkpoint):
    """The model of a checkpoint: rebuilt from the config it carries (a deeprec-lite
    checkpoint directory), or else from the train flags, then restored."""
    from deeprec_lite.export.sources import resolve_checkpoint

    prefix, directory = resolve_checkpoint(checkpoint)
    if checkpoints.is_checkpoint(directory) and prefix == tf.train.latest_checkpoint(directory):
        return checkpoints.load(directory, compile=False)
    generator = demo_generator(args)
    model = build_model(args.model, generator.schema, args.embedding_dim, args.min_count,
                        1000, 100)
    try:
        status = tf.train.Checkpoint(model=model).restore(prefix)
        status.expect_partial().assert_existing_objects_matched()
    except (AssertionError, ValueError, tf.errors.OpError) as e:
        raise ValueError(f"checkpoint {checkpoint!r} does not match --model {args.model} with "
                         f"--embedding-dim {args.embedding_dim}, --categorical-fields "
                         f"{args.categorical_fields}, --numeric-fields {args.numeric_fields}: "
                         f"{str(e).splitlines()[0]}") from None
    return model


def export(args):
    """Exports a training checkpoint: Parquet embeddings or a serving SavedModel."""
    from deeprec_lite import export as exporter
    from deeprec_lite.export import sources, validation

    tables = args.tables.split(",") if args.tables else None
    if args.format == "parquet":
        manifest = exporter.export_embeddings(
            args.checkpoint, args.out, min_freq=args.min_freq, max_staleness=args.max_staleness,
            tables=tables, overwrite=args.overwrite, since=args.since)
        files = [f for t in manifest["tables"].values() for f in t["files"]]
    else:
        if args.since is not None:
            raise ValueError("--since: from a checkpoint, deltas are Parquet (--format parquet); "
                             "serving deltas come from the training job (export_serving_delta)")
        if tables is not None:
            raise ValueError(f"--tables {args.tables!r}: a serving SavedModel needs every table")
        validation.check_thresholds(args.min_freq, args.max_staleness)
        validation.check_out_dir(args.out, sources.resolve_checkpoint(args.checkpoint)[1])
        model = restore_model(args, args.checkpoint)
        manifest = exporter.export_saved_model(model, args.out, min_freq=args.min_freq,
                                               max_staleness=args.max_staleness,
                                               overwrite=args.overwrite)
        files = manifest["files"]
    print(exporter.format_report(manifest))
    print(f"{args.format} export: {args.out} ({len(files)} files, "
          f"{sum(f['bytes'] for f in files) / 2 ** 20:.3f} MiB on disk)")
    if "delta" in manifest:
        print(f"delta since step {manifest['delta']['base_step']}: "
              f"{sum(t['tombstones']['rows'] for t in manifest['tables'].values()):,} keys deleted")
    return manifest


def apply_delta(args):
    """Builds the serving SavedModel of a serving delta's step from its base."""
    from deeprec_lite.export.serving_delta import apply_serving_delta

    manifest = apply_serving_delta(args.base, args.delta, args.out, overwrite=args.overwrite)
    print(f"serving SavedModel of step {manifest['global_step']}: {args.out} "
          f"({sum(t['kept'] for t in manifest['tables'].values()):,} keys changed or added, "
          f"{sum(t['tombstones']['rows'] for t in manifest['tables'].values()):,} deleted)")
    return manifest


def add_export_arguments(parser):
    parser.add_argument("--checkpoint", required=True, help="checkpoint directory or prefix")
    parser.add_argument("--out", required=True, help="export directory (written atomically)")
    parser.add_argument("--min-freq", type=int_at_least(0), default=0,
                        help="keep keys with freq >= N")
    parser.add_argument("--max-staleness", type=int_at_least(0), default=None,
                        help="keep keys updated within the last N steps (default: no limit)")
    parser.add_argument("--format", choices=("parquet", "saved_model"), default="parquet")
    parser.add_argument("--tables", default=None, help="comma-separated table names (parquet)")
    parser.add_argument("--overwrite", action="store_true", help="replace an existing export")
    parser.add_argument("--since", nargs="+", default=None, metavar="EXPORT",
                        help="write a delta since an earlier export of the same filters: its "
                             "chain, the full export first, then its deltas in order")
    add_model_arguments(parser.add_argument_group(
        "saved_model: the train flags that rebuild the model"))


def main(argv=None):
    parser = argparse.ArgumentParser(prog="deeprec-lite")
    commands = parser.add_subparsers(dest="command", required=True)
    add_train_arguments(commands.add_parser("train", help="train a zoo model"))
    warm = commands.add_parser("warm-start", help="warm-start a zoo model from a checkpoint, "
                               "then train it (the train flags apply)")
    add_train_arguments(warm)
    warm.add_argument("--from", dest="source", required=True,
                      help="checkpoint directory (deeprec-lite train --checkpoint-dir) or Keras "
                           "SavedModel")
    add_export_arguments(commands.add_parser(
        "export", help="export a checkpoint's filtered embeddings (Parquet or serving SavedModel)"))
    serving = commands.add_parser("serving", help="serving models without the training job")
    apply = serving.add_subparsers(dest="serving_command", required=True).add_parser(
        "apply-delta", help="build the serving SavedModel of a later step from a serving "
                            "SavedModel and a serving delta (export_serving_delta)")
    apply.add_argument("--base", required=True, help="the serving SavedModel the delta is of")
    apply.add_argument("--delta", required=True, help="the serving delta directory")
    apply.add_argument("--out", required=True, help="the new SavedModel (written atomically)")
    apply.add_argument("--overwrite", action="store_true", help="replace an existing --out")
    args = parser.parse_args(argv)
    if args.command == "warm-start":
        args.warm_start_from = args.source
    if getattr(args, "list_models", False):
        from deeprec_lite import models
        print("\n".join(sorted(models.MODELS)))
        return 0
    try:
        {"export": export, "serving": apply_delta}.get(args.command, train)(args)
    except ValueError as e:
        print(f"deeprec-lite {args.command}: error: {e}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
