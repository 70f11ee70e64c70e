"""Delta exports: the records that changed since an earlier export, and tombstones.

`export_embeddings(model, out, since=base_dir)` writes, per table, the records that the
same filters keep now and that were touched since the base export's step (inserted,
counted or updated, deeprec_lite.kv.deltas), and the keys that left since then
(tombstones: removed from the table, dropped by the staleness filter as time went on, or
touched and no longer kept). A table whose change stamps do not reach back to the base
(read from a checkpoint, or restored, imported or created anew since) is compared with
the base's records instead: its kept records that the base does not hold bit for bit,
and the base's keys it no longer keeps. The two sets are disjoint. Applying a delta to
its base (`apply_delta`, `read_chain`) deletes the tombstones and puts the records in,
which gives exactly the full export those filters would write at the delta's step.

Every export has an `export_id`; a delta's manifest names its base's id and step and the
table timelines it was computed on, so a chain applied in the wrong order, with a link
missing or onto the wrong base is refused.
"""
import os

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from deeprec_lite.export import arrow_tables, manifest
from deeprec_lite.export.filtering import TableFilter
from deeprec_lite.kv import deltas as kv_deltas
from deeprec_lite.kv.snapshots import RecordChunk, keep_mask

TOMBSTONES = "tombstones.parquet"


def check_base(base_dir, base, names, step, min_freq, max_staleness, variables):
    """Checks that the export `base` (its manifest, read from base_dir) can be the base
    of a delta of tables `names` at `step` with these filters; returns (its step, the
    names of the tables whose change stamps reach back to it: live `variables` on the
    timelines the base recorded)."""
    where = f"since: the base export {os.fspath(base_dir)!r}"
    if "export_id" not in base:
        raise ValueError(f"{where} has no export_id (written by an earlier release); write a "
                         "full export first")
    filters = {"min_freq": min_freq, "max_staleness": max_staleness}
    if base["filters"] != filters:
        raise ValueError(f"{where} was filtered with {base['filters']}, this export with "
                         f"{filters}: a delta keeps the base's filters")
    base_step = int(base["global_step"])
    if step < base_step:
        raise ValueError(f"{where} is of step {base_step}, later than this export's step {step}")
    if sorted(names) != sorted(base["tables"]):
        raise ValueError(f"{where} holds tables {sorted(base['tables'])}, this export "
                         f"{sorted(names)}: a delta covers the tables of its base")
    points = base.get("change_points", {})
    return base_step, {name for name in names if name in variables and name in points and
                       points[name]["timelines"]
                       == kv_deltas.change_point(variables[name])["timelines"]}


def base_records(chain, name):
    """The base's records of table `name` (an Arrow table of the export schema): `chain`
    (the base's full export, then its deltas in order) applied."""
    try:
        return read_chain(chain, [name]).tables[name]
    except ValueError as e:
        raise ValueError(
            f"since: table {name!r} has no change stamps since the base (read from a "
            "checkpoint, or restored, imported or created anew since), so its delta compares "
            "with the base's records, which since must give: the base's full export, then its "
            f"deltas in order ({e})") from None


def table_delta(kv, since, base_step, step, min_freq, max_staleness):
    """(records, tombstone keys) of one live table: its records touched at or after
    step `since` (the base's change_step, kv.deltas.change_point) that pass the filters at
    `step`, as a RecordChunk without slots, and the keys the base export (filtered at
    base_step) may have held that are not kept now (also some it never held: deleting
    an absent key is a no-op)."""
    expired = None
    if max_staleness is not None:  # kept at base_step, stale at step, untouched since
        expired = (base_step - max_staleness, step - max_staleness)
    changes = kv_deltas.changes(kv, since, expired=expired, with_slots=False)
    records = changes.records
    keep = keep_mask(records.freqs, records.versions, step, min_freq=min_freq,
                     max_staleness=max_staleness)
    kept = records._replace(**{f: getattr(records, f)[keep]
                               for f in ("keys", "values", "slots", "freqs", "versions")})
    # Every touched key that is not kept now may have been in the base, whatever its
    # freq: a key removed (or evicted) and seen again starts counting anew, admitted or
    # pending, and its earlier record may be the base's.
    # Distinct keys (kv.deltas.TableChanges), none of them kept.
    return kept, np.concatenate([records.keys[~keep], records.pending_keys,
                                 changes.removed_keys, changes.expired_keys])


def compared_delta(snapshot, base_table, step, min_freq, max_staleness):
    """(records, tombstone keys) of a table whose change stamps cannot say what changed
    since the base (a kv.snapshots.TableSnapshot read from a checkpoint, or of a table
    restored since): the records the filters keep at `step` that the base's records
    `base_table` (an Arrow table of the export schema) do not hold bit for bit (value,
    freq and version), as a RecordChunk without slots, and the base's keys that are not
    kept now. Holds the table's kept records beside the base's."""
    table_filter = TableFilter(snapshot, step, min_freq, max_staleness)
    kept = [table_filter.apply(chunk) for chunk in snapshot.chunks(with_slots=False)]
    dim = snapshot.dim
    base_keys = base_table.column("key").combine_chunks()
    string_keys = snapshot.key_dtype != "int64"
    if string_keys:
        base_keys = base_keys.cast(pa.binary())
    keys = np.concatenate([k.keys for k in kept] or [np.zeros(0, object if string_keys
                                                             else np.int64)])
    key_array = pa.chunked_array([k.key_array.cast(base_keys.type) for k in kept],
                                 base_keys.type).combine_chunks()
    values = np.concatenate([k.values for k in kept] or [np.zeros((0, dim), np.float32)])
    freqs, versions = (np.concatenate([getattr(k, f) for k in kept] or [np.zeros(0, np.int64)])
                       for f in ("freqs", "versions"))
    # Each kept key's row in the base (-1: new), by a hash join on Arrow's threads.
    joined = pa.table({"key": key_array, "row": np.arange(len(keys))}).join(
        pa.table({"key": base_keys, "base_row": np.arange(len(base_keys))}), "key",
        join_type="left outer")
    base_row = pc.fill_null(joined.column("base_row"), -1).to_numpy()
    found = base_row >= 0
    at, rows = joined.column("row").to_numpy()[found], base_row[found]
    base_values = arrow_tables.value_matrix(base_table)
    base_freqs, base_versions = (base_table.column(f).to_numpy() for f in ("freq", "version"))
    same = ((base_freqs[rows] == freqs[at]) & (base_versions[rows] == versions[at])
            & np.all(base_values[rows].view(np.uint32) == values[at].view(np.uint32), axis=1))
    changed = np.ones(len(keys), bool)
    changed[at[same]] = False
    kept_in_base = np.zeros(len(base_keys), bool)
    kept_in_base[rows] = True
    gone = base_keys.filter(~kept_in_base)
    records = RecordChunk(keys[changed], values[changed],
                          np.zeros((np.count_nonzero(changed), 0, dim), np.float32),
                          freqs[changed], versions[changed], keys[:0], freqs[:0], versions[:0])
    return records, gone.to_numpy(zero_copy_only=False)


def write_tombstones(folder, keys, key_type):
    """tombstones.parquet (one column, key) of a table; returns its manifest file entry."""
    array = arrow_tables.key_array(keys) if len(keys) else pa.array([], key_type)
    if len(keys) and array.type != key_type and not pa.types.is_binary(array.type):
        array = array.cast(key_type)  # a key that is not UTF-8 keeps the tombstones binary
    path = os.path.join(folder, TOMBSTONES)
    pq.write_table(pa.table({"key": array}), path)
    return path


def read_tombstones(directory, entry, verify):
    """The tombstone keys (an Arrow array) of a table of a delta export."""
    path = manifest.verify_file(directory, entry) if verify else os.path.join(directory,
                                                                             entry["path"])
    return pq.read_table(path).column("key").combine_chunks()


def apply_delta(base, delta):
    """The EmbeddingExport that `delta` (an EmbeddingExport of a delta) makes of `base`
    (a full export or an earlier chain applied): tombstones deleted, records put in.
    ValueError unless delta's base is exactly `base`."""
    from deeprec_lite.export.reader import EmbeddingExport  # noqa: PLC0415 (reader imports this)

    info = delta.manifest.get("delta")
    if info is None:
        raise ValueError("apply_delta: the second export is a full export, not a delta")
    if info["base_export_id"] != base.manifest["export_id"]:
        raise ValueError(f"apply_delta: the delta of step {delta.manifest['global_step']} "
                         f"applies to export {info['base_export_id']} (step {info['base_step']}), "
                         f"not to export {base.manifest['export_id']} (step "
                         f"{base.manifest['global_step']}): a link of the chain is missing or "
                         "out of order")
    tables = {}
    for name, table in base.tables.items():
        records = delta.tables[name]
        tombstones, keys = delta.tombstones[name], records.column("key").combine_chunks()
        if tombstones.type != keys.type:  # string keys beside binary ones (not UTF-8)
            tombstones, keys = tombstones.cast(pa.binary()), keys.cast(pa.binary())
        gone = pa.chunked_array([tombstones, keys])
        if table.schema.field("key").type != gone.type:
            table = table.cast(arrow_tables.schema(gone.type, table.schema.field("value")
                                                   .type.list_size))
        survivors = table.filter(pc.invert(pc.is_in(table.column("key"), value_set=gone)))
        tables[name] = pa.concat_tables([survivors, records.cast(survivors.schema)])
    return EmbeddingExport(dict(delta.manifest), tables)


def chain_of(directories, name):
    """The export directories of a chain, as a list of str: `directories` is one path (a
    chain of one export) or a non-empty list of them. ValueError naming `name` else."""
    chain = [directories] if isinstance(directories, (str, os.PathLike)) else directories
    if (not isinstance(chain, (list, tuple)) or not chain
            or not all(isinstance(d, (str, os.PathLike)) for d in chain)):
        raise ValueError(f"{name} must be an export directory or a non-empty list of them "
                         f"(the full export first, then its deltas), got {directories!r}")
    return [os.fspath(d) for d in chain]


def read_chain(directories, tables=None, verify=True):
    """Reads a full export and the deltas after it (in order) and applies them: the
    EmbeddingExport of the last one's step. `directories`: their list, or one path (a
    full export alone). ValueError naming the broken link."""
    from deeprec_lite.export.reader import read_embeddings  # noqa: PLC0415 (as above)

    directories = chain_of(directories, "read_chain: directories")
    state = read_embeddings(directories[0], tables, verify)
    if "delta" in state.manifest:
        raise ValueError(f"read_chain: {directories[0]!r} is a delta; a chain starts with a "
                         "full export")
    for directory in directories[1:]:
        delta = read_embeddings(directory, tables, verify)
        try:
            state = apply_delta(state, delta)
        except ValueError as e:
            raise ValueError(f"read_chain: {directory!r}: {e}") from None
    return state
