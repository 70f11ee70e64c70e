"""export_saved_model: a serving SavedModel whose embedding tables are stock TensorFlow.

The model's inference call is traced with a `ServingTable` attached to every
KVEmbedding layer (see `KVEmbedding.set_serving_table`), so the traced graph
looks ids up with core hash-table ops instead of the KV op. The saved
`tf.Module` tracks only what that graph captures: the dense weights and the
serving tables. Kept keys get their exported rows bit-exactly; filtered and
unseen keys get the table's default value.
"""
import contextlib
import json
import os

import numpy as np

from deeprec_lite.compat import tf
from deeprec_lite.data.formats.id_hashing import hash_string_ids
from deeprec_lite.export import atomic, manifest, serving_signature, sources, validation
from deeprec_lite.export.filtering import TableFilter
from deeprec_lite.export.serving_table import ServingTable
from deeprec_lite.kv import deltas, snapshots


class ServingModule(tf.Module):
    """The saved object: `serve(inputs)` (`spec`: the model's own input structure,
    ragged included, with the raw string ids of `hashed_id_inputs`), the
    `serving_default` signature (flat tensors, see serving_signature), `tables`
    {name: ServingTable}, the dense weights and the `served_batches` counter."""

    def __init__(self, model, tables, spec, hashed_id_inputs=()):
        super().__init__(name="deeprec_lite_serving")
        self.tables = tables
        self.served_batches = tf.Variable(0, dtype=tf.int64, trainable=False)
        self.serve = tf.function(_serving_call(model, self.served_batches, hashed_id_inputs),
                                 input_signature=[spec])
        flat = serving_signature.flat_signature(spec)

        def serve_flat(**arguments):
            return serving_signature.named_outputs(
                self.serve(serving_signature.unflatten(spec, arguments)))

        self.serve_flat = tf.function(serve_flat, input_signature=None)
        self.signature = self.serve_flat.get_concrete_function(**flat)
        table_vars = {t.values.ref() for t in tables.values()} | {self.served_batches.ref()}
        # Only what inference reads: KV tables, gradient anchors and clocks stay behind.
        self.dense_variables = [v for v in self.serve.get_concrete_function().variables
                                if v.ref() not in table_vars]


def _raw_id_spec(spec, hashed_id_inputs):
    """The model's input spec with the inputs named in `hashed_id_inputs` (int64 ids of
    a dict input) as the raw string ids that serving hashes."""
    names = list(hashed_id_inputs or ())
    if not names:
        return spec
    if not isinstance(spec, dict):
        raise ValueError(f"hashed_id_inputs={names!r} needs a model with a dict input, got an "
                         f"input spec {spec}")
    unknown = sorted(set(names) - set(spec))
    if unknown:
        raise ValueError(f"hashed_id_inputs: {unknown} are not inputs of the model (inputs: "
                         f"{sorted(spec)})")
    raw = dict(spec)
    for name in names:
        s = spec[name]
        if s.dtype != tf.int64:
            raise ValueError(f"hashed_id_inputs: input {name!r} has dtype {s.dtype.name}, but "
                             "hashed ids are int64")
        raw[name] = (tf.RaggedTensorSpec(s.shape, tf.string, s.ragged_rank, s.row_splits_dtype)
                     if isinstance(s, tf.RaggedTensorSpec)
                     else tf.TensorSpec(s.shape, tf.string, name=s.name))
    return raw


def _serving_call(model, served_batches, hashed_id_inputs=()):
    """The served computation: the model's inference call (after hashing the raw ids
    of `hashed_id_inputs`), whose outputs are control inputs of the `served_batches`
    counter's update (like Keras' predict step)."""
    hashed = set(hashed_id_inputs or ())

    def serve(inputs):
        if hashed:
            inputs = {k: hash_string_ids(v) if k in hashed else v for k, v in inputs.items()}
        outputs = model(inputs, training=False)
        with tf.control_dependencies(tf.nest.flatten(outputs, expand_composites=True)[:1]):
            served_batches.assign_add(1)
        return outputs
    return serve


def predict_as_served(model, inputs, input_signature=None, hashed_id_inputs=()):
    """The model's outputs on `inputs` (one batch, the model's input structure)
    computed with its live KV tables in the graph that a serving SavedModel runs, traced
    for the same input signature (export_saved_model's `input_signature`, by default
    the model's own with any batch size), so that on every key the export kept they
    equal `loaded.serve(inputs)` bit for bit.

    With `hashed_id_inputs` (as given to export_saved_model) those inputs are raw string
    ids, hashed as the SavedModel hashes them.

    Use it to check an export: an eager `model(inputs)`, `model.predict` or a function
    traced for this batch's shapes run other graphs, where grappler and oneDNN may fuse
    the dense layers into kernels whose float sums differ in the last bit depending on
    the CPU.

    Example:
        export_saved_model(model, "serving/", min_freq=2)
        served = tf.saved_model.load("serving/").serve(batch)
        assert np.array_equal(served, predict_as_served(model, batch))  # all keys kept
    """
    counter = tf.Variable(0, dtype=tf.int64, trainable=False)
    spec = _raw_id_spec(serving_signature.model_input_spec(model, input_signature),
                       hashed_id_inputs)
    _check_batch(spec, inputs)
    return tf.function(_serving_call(model, counter, hashed_id_inputs),
                       input_signature=[spec])(inputs)


def _check_batch(spec, inputs):
    """Names the inputs a batch lacks, and refuses float values for integer or string
    inputs: the signature would cast them, and a float id rounds to another key."""
    if isinstance(spec, dict):
        if not isinstance(inputs, dict):
            raise ValueError(f"inputs must be a dict with the keys {sorted(spec)}, got "
                             f"{type(inputs).__name__}")
        missing = sorted(set(spec) - set(inputs))
        if missing:
            raise ValueError(f"inputs: the batch has no {missing} (the model takes "
                             f"{sorted(spec)})")
        pairs = [(name, s, inputs[name]) for name, s in spec.items()]
    else:
        pairs = [("inputs", spec, inputs)]
    for name, s, value in pairs:
        dtype = getattr(value, "dtype", None)
        is_float = (dtype.is_floating if isinstance(dtype, tf.dtypes.DType)
                    else dtype is not None and np.issubdtype(dtype, np.floating))
        if is_float and not getattr(s, "dtype", tf.float32).is_floating:
            raise ValueError(f"inputs[{name!r}] must be {s.dtype.name}, got {dtype.name} values "
                             "(a cast would round ids to other keys)")


@contextlib.contextmanager
def _attached(model, tables_by_kv):
    from deeprec_lite.layers.embeddings.kv_embedding import KVEmbedding

    layers = [m for m in model.submodules if isinstance(m, KVEmbedding)]
    try:
        for layer in layers:
            layer.set_serving_table(tables_by_kv[id(layer.kv)])
        yield
    finally:
        for layer in layers:
            layer.set_serving_table(None)


def _serving_tables(kvs, global_step, min_freq, max_staleness, out):
    tables, by_kv = {}, {}
    out["change_points"] = {}  # a serving delta can start from this model (serving_delta)
    for name, kv in kvs.items():
        out["change_points"][name] = deltas.change_point(kv)
        snapshot = snapshots.of_variable(kv, name)
        table_filter = TableFilter(snapshot, global_step, min_freq, max_staleness)
        kept = [table_filter.apply(chunk) for chunk in snapshot.chunks(with_slots=False)]
        out["tables"][name] = table_filter.summary()
        keys = np.concatenate([k.keys for k in kept])
        values = np.concatenate([k.values for k in kept])
        tables[name] = ServingTable(keys, values, snapshot.default_value,
                                    name=f"serving_{name}")
        by_kv[id(kv)] = tables[name]
    return tables, by_kv


def export_saved_model(model, out_dir, min_freq=0, max_staleness=None, overwrite=False,
                       global_step=None, input_signature=None, hashed_id_inputs=()):
    """Writes a serving SavedModel of a Keras model with KV embeddings.

    It loads with `tf.saved_model.load` (and TF Serving) without deeprec_lite or
    its op library: `loaded.signatures["serving_default"](**flat_inputs)` (a
    ragged input `x` is passed as `x_values` and `x_row_lengths`) returns
    {"prediction": ...}; `loaded.serve(inputs)` takes the model's own inputs;
    `loaded.tables[name].lookup(keys)` returns a table's rows.

    Args:
      model: a built tf_keras model (functional, Sequential or subclassed and
        called once) whose embeddings are KVEmbedding layers.
      out_dir: the SavedModel directory (written atomically). Its
        assets.extra/deeprec_lite_export.json holds the filter counts.
      min_freq, max_staleness, global_step: as in `export_embeddings`.
      overwrite: replace an existing directory (atomically); otherwise refuse.
      input_signature: the spec of the model's input, when the model has none.
      hashed_id_inputs: names of int64 id inputs (of a dict input) that the SavedModel
        takes as raw string ids and hashes with `deeprec_lite.data.hash_string_ids`, a
        stock TensorFlow op, before the model: the fields of a schema read with
        `hash_to_int64=True` (`[f.name for f in schema.categorical if f.hash_to_int64]`).

    Returns the manifest (a dict).
    """
    validation.check_thresholds(min_freq, max_staleness)
    if isinstance(model, (str, os.PathLike)):
        raise ValueError(f"model must be a Keras model, got the path {os.fspath(model)!r}; "
                         "build the model and restore the checkpoint into it first (the "
                         "`deeprec-lite export --format saved_model --model NAME` command does)")
    kvs = sources.kv_variables(model)
    if not kvs:
        raise ValueError(f"model {getattr(model, 'name', model)!r} has no KV embedding tables")
    # bad hashed_id_inputs fail before anything is written
    spec = _raw_id_spec(serving_signature.model_input_spec(model, input_signature),
                        hashed_id_inputs)
    target = validation.check_out_dir(out_dir)
    atomic.check_target(target, overwrite)
    source = sources.Source({}, f"{type(model).__name__} {getattr(model, 'name', '')} in memory")
    step = validation.check_global_step(
        max(int(kv.step.numpy()) for kv in kvs.values()) if global_step is None
        else global_step)
    out = manifest.new_manifest(source, step, min_freq, max_staleness, kind="saved_model")
    tables, by_kv = _serving_tables(kvs, step, min_freq, max_staleness, out)
    with atomic.atomic_directory(target, overwrite) as tmp, _attached(model, by_kv):
        module = ServingModule(model, tables, spec, hashed_id_inputs)
        tf.saved_model.save(module, tmp, signatures={"serving_default": module.signature})
        out["files"] = [manifest.file_entry(tmp, os.path.join(root, f))
                        for root, _, files in sorted(os.walk(tmp)) for f in sorted(files)]
        write_serving_manifest(tmp, out)
    return out


def write_serving_manifest(directory, out):
    """Writes a serving SavedModel's manifest (manifest.SERVING_MANIFEST)."""
    os.makedirs(os.path.join(directory, "assets.extra"), exist_ok=True)
    with open(os.path.join(directory, manifest.SERVING_MANIFEST), "w") as f:
        json.dump(out, f, indent=1, sort_keys=True)
