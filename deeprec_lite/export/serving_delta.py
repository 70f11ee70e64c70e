"""Serving from deltas: a serving SavedModel of a later step, rebuilt from the serving
SavedModel of an earlier step and a serving delta, without the training job.

- `export_serving_delta(model, out_dir, since=serving_dir)` (training side): the delta
  export of the model's tables since the serving model `since` (export_embeddings
  with since=, same filters), in `embeddings/`, and the values of the model's dense
  variables by name, in `dense_variables.npz`: everything the served computation reads
  that may have changed.
- `apply_serving_delta(base_dir, delta_dir, out_dir)` (serving side): loads the base
  SavedModel (stock TensorFlow, no deeprec_lite op), deletes the tombstones from its
  tables and puts the delta's records in, sets its dense variables, and saves it again
  as a serving SavedModel of the delta's step. Its tables map every key to exactly the
  row that export_saved_model of the live model would write, and it runs the same
  traced functions, so it serves the same outputs bit for bit. Its manifest starts a new link:
  a later delta can be taken since it.

Both refuse a delta of another base, and write their output atomically.
"""
import os

import numpy as np
import pyarrow as pa

from deeprec_lite.compat import tf
from deeprec_lite.export import arrow_tables, atomic, manifest, validation
from deeprec_lite.export.parquet_export import export_embeddings
from deeprec_lite.export.reader import read_embeddings
from deeprec_lite.export.serving import write_serving_manifest

DENSE_FILE = "dense_variables.npz"
EMBEDDINGS = "embeddings"


def _serving_manifest(directory, what):
    meta = manifest.read(directory)
    if meta.get("kind") != "saved_model":
        raise ValueError(f"{what}: {os.fspath(directory)!r} is a {meta.get('kind')!r} export, "
                         "not a serving SavedModel of export_saved_model")
    return meta


def export_serving_delta(model, out_dir, since, overwrite=False, global_step=None):
    """Writes the serving delta of a Keras model since the serving SavedModel `since`
    (written by export_saved_model or apply_serving_delta from this model's tables, which
    were neither restored nor re-created since). Returns the delta's manifest."""
    base = _serving_manifest(since, "since")
    target = validation.check_out_dir(out_dir)
    atomic.check_target(target, overwrite)
    dense = {}
    for variable in model.variables:
        dense.setdefault(variable.name, []).append(variable)
    with atomic.atomic_directory(target, overwrite) as tmp:
        out = export_embeddings(model, os.path.join(tmp, EMBEDDINGS), since=since,
                                global_step=global_step, **base["filters"])
        out["kind"] = "serving_delta"
        # variables whose name is not unique are left out: serving asks for them by name
        np.savez(os.path.join(tmp, DENSE_FILE),
                 **{name: vs[0].numpy() for name, vs in dense.items() if len(vs) == 1})
        out["dense_variables"] = manifest.file_entry(tmp, os.path.join(tmp, DENSE_FILE))
        manifest.write(tmp, out)
    return out


def apply_serving_delta(base_dir, delta_dir, out_dir, overwrite=False):
    """Builds the serving SavedModel of the delta's step in out_dir from the serving
    SavedModel base_dir and the serving delta delta_dir. Returns its manifest."""
    base = _serving_manifest(base_dir, "base_dir")
    delta = manifest.read(delta_dir)
    if delta.get("kind") != "serving_delta":
        raise ValueError(f"delta_dir: {os.fspath(delta_dir)!r} is a {delta.get('kind')!r} "
                         "export, not a serving delta of export_serving_delta")
    if delta["delta"]["base_export_id"] != base["export_id"]:
        raise ValueError(f"delta_dir: {os.fspath(delta_dir)!r} is the delta of export "
                         f"{delta['delta']['base_export_id']} (step {delta['delta']['base_step']}"
                         f"), not of {os.fspath(base_dir)!r} (export {base['export_id']}, step "
                         f"{base['global_step']})")
    target = validation.check_out_dir(out_dir)
    atomic.check_target(target, overwrite)
    records = read_embeddings(os.path.join(delta_dir, EMBEDDINGS))
    dense_path = manifest.verify_file(delta_dir, delta["dense_variables"])
    with np.load(dense_path) as stored:
        dense = dict(stored)
    loaded = tf.saved_model.load(os.fspath(base_dir))
    for name in base["tables"]:
        _apply_to_table(loaded.tables[name], records.tables[name], records.tombstones[name])
    for variable in loaded.dense_variables:
        if variable.name not in dense:
            raise ValueError(f"delta_dir: {os.fspath(delta_dir)!r} has no value of the dense "
                             f"variable {variable.name!r} that the base model serves with")
        variable.assign(dense[variable.name])
    out = dict(delta, kind="saved_model", export_id=manifest.new_export_id())
    del out["delta"], out["dense_variables"]
    with atomic.atomic_directory(target, overwrite) as tmp:
        tf.saved_model.save(loaded, tmp,
                            signatures={"serving_default": loaded.signatures["serving_default"]})
        out["files"] = [manifest.file_entry(tmp, os.path.join(root, f))
                        for root, _, files in sorted(os.walk(tmp)) for f in sorted(files)]
        write_serving_manifest(tmp, out)
    return out


def _apply_to_table(table, records, tombstones):
    """Applies a delta to a loaded ServingTable in place: the tombstones leave its hash
    table, the delta's keys already there get their rows overwritten, new keys get new
    rows (row 0 stays the default). Rows nothing points to any more are dropped (the
    table rebuilt compactly) once they outnumber the live ones."""
    handle = table.index.resource_handle
    key_dtype = tf.int64 if pa.types.is_integer(tombstones.type) else tf.string
    keys = _as_key_array(records.column("key").combine_chunks(), key_dtype)
    values = table.values.numpy()
    new_values = arrow_tables.value_matrix(records)
    tf.raw_ops.LookupTableRemoveV2(table_handle=handle,
                                   keys=tf.constant(_as_key_array(tombstones, key_dtype),
                                                    key_dtype))
    rows = tf.raw_ops.LookupTableFindV2(table_handle=handle, keys=tf.constant(keys, key_dtype),
                                        default_value=tf.constant(0, tf.int64)).numpy()
    present = rows > 0
    values[rows[present]] = new_values[present]
    added = np.arange(len(values), len(values) + np.count_nonzero(~present), dtype=np.int64)
    tf.raw_ops.LookupTableInsertV2(table_handle=handle,
                                   keys=tf.constant(keys[~present], key_dtype), values=added)
    values = np.concatenate([values, new_values[~present]])
    live = int(tf.raw_ops.LookupTableSizeV2(table_handle=handle))
    if len(values) - 1 - live > live:
        all_keys, all_rows = tf.raw_ops.LookupTableExportV2(table_handle=handle, Tkeys=key_dtype,
                                                            Tvalues=tf.int64)
        values = np.concatenate([values[:1], values[all_rows.numpy()]])
        tf.raw_ops.LookupTableInsertV2(table_handle=handle, keys=all_keys,
                                       values=tf.range(1, live + 1, dtype=tf.int64))
    table.values.assign(values)


def _as_key_array(arrow_keys, key_dtype):
    """numpy keys as the serving table holds them: int64, or bytes for string keys."""
    if key_dtype == tf.int64:
        return arrow_keys.to_numpy(zero_copy_only=False).astype(np.int64)
    return arrow_keys.cast(pa.binary()).to_numpy(zero_copy_only=False)
