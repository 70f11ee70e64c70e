"""Incremental warm start: move an old model's parameters into a new model graph.

    report = warm_start(new_model, "ckpt/day1")      # a deeprec_lite.training.checkpoints dir, a
                                                     # Keras SavedModel, an embeddings
                                                     # export (tables only), or a model
    print(report)                                    # migrated / partial / new / unused

Parameters are matched by name: KV tables by table name, dense variables (and the
dense optimizer's slot variables) by Keras variable name, after an optional
`rename` map (old name -> new name) and `include` / `exclude` regexes on the new
names. KV records are migrated with keys, values, freqs, versions and (unless
migrate_slots=False) their optimizer slots, filtered by min_freq / max_staleness; a KV table
whose dim changed (allow_dim_change) keeps the common columns and initializes the
rest as the new table would. A dense variable whose shape changed
(allow_shape_change) gets the overlapping block copied and keeps its fresh
initial values elsewhere. Everything else in the new model stays freshly
initialized. With an unchanged architecture and slots migrated, training goes
on exactly as from the old checkpoint (same global step).
"""
import dataclasses
import json
import os
import re
from typing import Dict, Mapping, Optional, Sequence

import numpy as np
from absl import logging

from deeprec_lite._checks import check_int
from deeprec_lite._files import write_text_atomically
from deeprec_lite.compat import keras, tf
from deeprec_lite.kv import policies, snapshots
from deeprec_lite.kv.variable import KVVariable, bloom_counts_of_shard
from deeprec_lite.training import checkpoints
from deeprec_lite.training.model_tables import kv_tables

MIGRATED, PARTIAL, NEW, UNUSED = "migrated", "partially migrated", "new", "unused in source"
STATUSES = (MIGRATED, PARTIAL, NEW, UNUSED)


@dataclasses.dataclass
class WarmStartReport:
    """What happened to every parameter: {name: (status, detail)}."""

    entries: Dict[str, tuple] = dataclasses.field(default_factory=dict)

    def add(self, name, status, detail=""):
        self.entries[name] = (status, detail)

    def names(self, status):
        return sorted(n for n, (s, _) in self.entries.items() if s == status)

    def kind_counts(self):
        """{kind: {status: count}} for the kinds "KV tables", "optimizer state" and "dense
        weights" (every other variable)."""
        counts = {}
        for name, (status, _) in self.entries.items():
            kind = ("KV tables" if name.startswith("table:") else
                    "optimizer state" if name.startswith("optimizer/") else "dense weights")
            by_status = counts.setdefault(kind, {})
            by_status[status] = by_status.get(status, 0) + 1
        return counts

    def summary(self):
        """One line per kind of parameter, e.g. ``KV tables: 51 migrated, 1 new``."""
        return "\n".join(
            f"{kind}: " + ", ".join(f"{by_status[s]} {s}" for s in STATUSES if s in by_status)
            for kind, by_status in sorted(self.kind_counts().items()))

    def write_json(self, path):
        """Writes every parameter's status and detail (and the summary counts) to `path`."""
        write_text_atomically(path, json.dumps({
            "counts": self.kind_counts(),
            "parameters": {name: {"status": status, "detail": detail}
                           for name, (status, detail) in sorted(self.entries.items())}},
            indent=1))

    def __str__(self):
        width = max([len(n) for n in self.entries] + [9])
        lines = [f"{'parameter':<{width}}  {'status':<18}  detail"]
        for name in sorted(self.entries):
            status, detail = self.entries[name]
            lines.append(f"{name:<{width}}  {status:<18}  {detail}")
        counts = ", ".join(f"{len(self.names(s))} {s}" for s in STATUSES)
        return "\n".join(lines + [counts])


def _tables_from_export(export):
    """The tables of an embeddings export as snapshots (one chunk each; no slots)."""
    out = {}
    for name, summary in export.manifest["tables"].items():
        keys, values, freqs, versions = export.numpy(name)
        string = summary["key_dtype"] == "string"
        keys = np.array([k.encode() if isinstance(k, str) else k for k in keys], object) \
            if string else keys.astype(np.int64)
        dim = summary["dim"]
        chunk = snapshots.RecordChunk(
            keys, values, np.zeros((len(keys), 0, dim), np.float32), freqs, versions,
            keys[:0], np.zeros(0, np.int64), np.zeros(0, np.int64))
        out[name] = snapshots.TableSnapshot(
            name, summary["key_dtype"], dim, export.manifest["global_step"], (), (),
            lambda with_slots=True, c=chunk: iter([c]), lambda: np.zeros(0, np.int32), len(keys))
    return out


def _load_source(source):
    """(tables {name: TableSnapshot}, dense {path: [variables]}) of the source. A
    checkpoint's tables are read from its files chunk by chunk, never restored whole."""
    if isinstance(source, keras.Model):
        model = source
    elif not isinstance(source, (str, os.PathLike)) or not os.path.isdir(source):
        raise ValueError(f"source must be a keras.Model or an existing directory, got {source!r}")
    elif checkpoints.is_checkpoint(source):
        from deeprec_lite.export import sources  # the checkpoint's tables, by name
        model = checkpoints.load(source, restore_tables=False)
        admission = {name: kv.admission for name, kv in kv_tables(model).items()}
        tables = {name: dataclasses.replace(t, admission=admission.get(name))
                  for name, t in sources.from_checkpoint(source).tables.items()}
        return tables, _dense_variables(model)
    elif os.path.isfile(os.path.join(source, "keras_metadata.pb")):
        import deeprec_lite.models  # noqa: F401  (registers the zoo's layers)
        model = keras.models.load_model(source)
    elif os.path.isfile(os.path.join(source, "manifest.json")):
        from deeprec_lite.export import read_embeddings
        return _tables_from_export(read_embeddings(source)), {}
    else:
        raise ValueError(f"source {source!r} is neither a deeprec-lite checkpoint directory (with "
                         f"{checkpoints.MODEL_FILE}), a Keras SavedModel (with keras_metadata.pb) "
                         "nor an embeddings export (with manifest.json)")
    tables = {name: snapshots.of_variable(kv) for name, kv in kv_tables(model).items()}
    return tables, _dense_variables(model)


def _patterns(patterns, name):
    """Compiled regular expressions of `patterns` (a string, a list of strings or None)."""
    patterns = [patterns] if isinstance(patterns, str) else list(patterns or [])
    try:
        return [re.compile(p) for p in patterns]
    except (re.error, TypeError) as e:
        raise ValueError(f"{name} must be regular expressions, got {patterns!r} ({e})") from None


class _Selector:
    """New name <- old name under `rename`, filtered by `include` / `exclude`."""

    def __init__(self, rename, include, exclude):
        rename = {} if rename is None else rename
        if not isinstance(rename, Mapping) or not all(
                isinstance(k, str) and isinstance(v, str) for k, v in rename.items()):
            raise ValueError(f"rename must be a mapping of old name to new name (strings), got "
                             f"{rename!r}")
        self.rename = dict(rename)
        self.include = _patterns(include, "include")
        self.exclude = _patterns(exclude, "exclude")

    def renamed(self, by_old_name, kind):
        """{new name: value} of {old name: value}; two old names may not take one name."""
        out, old_of = {}, {}
        for old, value in by_old_name.items():
            new = self.rename.get(old, old)
            if new in out:
                raise ValueError(f"rename: the source's {kind} {old_of[new]!r} and {old!r} "
                                 f"would both become {new!r}; rename the other one too")
            out[new], old_of[new] = value, old
        return out

    def wanted(self, new_name):
        if self.include and not any(p.search(new_name) for p in self.include):
            return False
        return not any(p.search(new_name) for p in self.exclude)


def _overlap(old, new):
    """Copies the overlapping block of `old` into a copy of `new`."""
    out = np.array(new, copy=True)
    block = tuple(slice(0, min(a, b)) for a, b in zip(old.shape, new.shape))
    out[block] = old[block]
    return out


def _initial_values(new_kv, keys):
    """[len(keys), dim] values the new table gives these keys when it creates them (from
    a scratch table: the new one may not admit them yet)."""
    scratch = KVVariable(new_kv.dim, key_dtype=new_kv.key_dtype, initializer=new_kv.initializer,
                         seed=new_kv.seed)
    return scratch.lookup_or_insert(keys)[0].numpy().reshape(len(keys), new_kv.dim)


def _bloom_counts(src, new_kv):
    """The Bloom filter counters the new table takes from the source (None: it keeps its
    own), and a note for the report."""
    old, new = src.admission, new_kv.admission
    if isinstance(new, policies.BloomFilter) and isinstance(old, policies.BloomFilter) and \
            (old.num_counters, old.num_hashes) == (new.num_counters, new.num_hashes):
        shards = getattr(new_kv, "num_shards", 1)
        saved = tf.constant(src.bloom_counts(), tf.int32)
        return tf.concat([bloom_counts_of_shard(saved, new.num_counters, shards, i)
                          for i in range(shards)], 0), "Bloom filter counts"
    return None, None


def _migrate_table(src, new_kv, *, slots, min_freq, max_staleness, allow_dim_change):
    """Moves the records of `src` (a TableSnapshot) that pass the filters into `new_kv`,
    one chunk at a time."""
    if src.key_dtype != new_kv.key_dtype.name:
        raise ValueError(f"table '{new_kv.name}' has {new_kv.key_dtype.name} keys but the "
                         f"source table '{src.name}' has {src.key_dtype} keys")
    if src.dim != new_kv.dim and not allow_dim_change:
        raise ValueError(f"table '{new_kv.name}' has dim {new_kv.dim} but the source has dim "
                         f"{src.dim}; pass allow_dim_change=True to migrate the common part")
    compatible = src.slot_names == new_kv.slot_names or not new_kv.slot_names
    carry = slots and bool(src.slot_names) and compatible
    if carry:
        new_kv.ensure_slots(dict(zip(src.slot_names, src.slot_inits)))
    inits = np.asarray(new_kv.slot_initial_values, np.float32)
    takes_pending = isinstance(new_kv.admission, policies.CounterFilter)
    bloom, bloom_note = _bloom_counts(src, new_kv)
    if bloom is None and new_kv.bloom_filter_size:  # the new table keeps its own counts
        bloom = new_kv.bloom_counts()
    new_kv.clear(src.num_records)
    admitted = kept = pending_kept = pending_lost = 0
    for chunk in src.chunks():
        keep = snapshots.keep_mask(chunk.freqs, chunk.versions, src.step, min_freq,
                                   max_staleness)
        keep_pending = snapshots.keep_mask(chunk.pending_freqs, chunk.pending_versions,
                                           src.step, min_freq, max_staleness)
        keys, values = chunk.keys[keep], chunk.values[keep]
        if src.dim != new_kv.dim:
            # The new table's own initial values for these keys, then the common columns.
            values = _overlap(values, _initial_values(new_kv, keys))
        fresh = np.broadcast_to(inits[None, :, None], (len(keys), len(inits), new_kv.dim))
        # a changed dim keeps the common columns, as the values do
        slot_rows = _overlap(chunk.slots[keep], fresh) if carry else fresh.copy()
        if not takes_pending:
            pending_lost += int(keep_pending.sum())
            keep_pending[:] = False
        new_kv.insert_records(snapshots.RecordChunk(
            keys, values, slot_rows, chunk.freqs[keep], chunk.versions[keep],
            chunk.pending_keys[keep_pending], chunk.pending_freqs[keep_pending],
            chunk.pending_versions[keep_pending]))
        admitted += len(chunk.keys)
        kept += len(keys)
        pending_kept += int(keep_pending.sum())
    if bloom is not None:
        new_kv.set_bloom_counts(bloom)
    new_kv.step.assign(src.step)
    details = [f"{kept} of {admitted} keys"]
    if src.dim != new_kv.dim:
        details.append(f"dim {src.dim} -> {new_kv.dim}")
    if carry:
        details.append(f"optimizer slots {list(src.slot_names)} carried")
    elif src.slot_names:
        details.append("optimizer slots reset" + (
            "" if slots else " (migrate_slots=False)" if compatible else
            f": the new table has slots {list(new_kv.slot_names)}"))
    if pending_kept:
        details.append(f"{pending_kept} keys not admitted yet")
    if bloom_note:
        details.append(bloom_note)
    lost = pending_lost > 0 or (bloom_note is None and isinstance(
        src.admission, policies.BloomFilter) and src.bloom_counts().any())
    if lost:
        details.append(f"counts of keys not admitted yet not migrated (source: "
                       f"{src.admission!r}, here: {new_kv.admission!r})")
    partial = src.dim != new_kv.dim or kept != admitted or lost
    return (PARTIAL if partial else MIGRATED), ", ".join(details)


def _short_name(variable):
    return variable.name.split(":")[0].split("/")[-1]


def _layer_paths(layer, prefix, out):
    """Adds {layer path/weight: variable} for the layer's own weights and its sublayers'.

    Paths come from Keras layer names (unique within a model), not from tf variable
    names, which differ between a model built in code and one rebuilt from its config.
    """
    for v in layer._trainable_weights + layer._non_trainable_weights:
        if getattr(v, "_drl_kv_embedding", None) is None:  # not a KV gradient anchor
            out.setdefault(f"{prefix}{_short_name(v)}", []).append(v)
    for sub in layer._flatten_layers(include_self=False, recursive=False):
        _layer_paths(sub, f"{prefix}{sub.name}/", out)


def _optimizer_slots(model, model_paths):
    """{optimizer/<slot>/<model path>: slot variable} of the model's tf_keras optimizer."""
    out = {}
    optimizer = getattr(model, "optimizer", None)
    dense = getattr(optimizer, "dense", optimizer)  # KVOptimizer keeps a tf_keras one inside
    if dense is None:
        return out
    out["optimizer/iterations"] = [dense.iterations]
    if isinstance(dense, keras.optimizers.Optimizer) and not hasattr(dense, "_index_dict"):
        optimizer.build(model.trainable_variables)  # so that its slots exist
    index = getattr(dense, "_index_dict", None)
    if index is None:  # legacy OptimizerV2
        for path, (v,) in model_paths.items():
            for slot in dense.get_slot_names():
                try:
                    out[f"optimizer/{slot}/{path}"] = [dense.get_slot(v, slot)]
                except KeyError:
                    pass
        return out
    slot_lists = {name.strip("_"): value for name, value in vars(dense).items()
                  if isinstance(value, list) and value and len(value) == len(index)
                  and all(isinstance(x, tf.Variable) for x in value)}
    for path, (v,) in model_paths.items():
        position = index.get(dense._var_key(v))
        if position is not None:
            for slot, variables in slot_lists.items():
                out[f"optimizer/{slot}/{path}"] = [variables[position]]
    return out


def _dense_variables(model):
    """{path: [variables]} of the model's non-KV weights and its optimizer's slots (a path
    with more than one variable is ambiguous and is not migrated)."""
    paths = {}
    _layer_paths(model, "", paths)
    unique = {p: vs for p, vs in paths.items() if len(vs) == 1}
    paths.update(_optimizer_slots(model, unique))
    return paths


def warm_start(new_model, source, *, rename: Optional[Mapping[str, str]] = None,
               include: Optional[Sequence[str]] = None, exclude: Optional[Sequence[str]] = None,
               migrate_slots: bool = True, min_freq: Optional[int] = None,
               max_staleness: Optional[int] = None, allow_dim_change: bool = False,
               allow_shape_change: bool = False) -> WarmStartReport:
    """Migrates `source` (a checkpoint directory, a Keras SavedModel, an embeddings export
    of deeprec_lite.export, or a model) into
    `new_model`, which must be built (and, to migrate optimizer state, compiled with
    its optimizer built). Returns and logs a WarmStartReport.

    By default (`migrate_slots=True`) the optimizer's state goes on where it can: the KV
    slots of migrated rows (a changed dim keeps their common columns, like the values),
    the dense optimizer's moments (with the weights' partial-copy rule) and its step count,
    so bias corrections and learning-rate schedules continue; new rows and new tables
    start fresh. `migrate_slots=False` resets all of it; the report says, per table and
    variable, what was carried and what was reset."""
    for arg, value in (("min_freq", min_freq), ("max_staleness", max_staleness)):
        check_int(value, arg, minimum=0, none_ok=True)
    source_tables, source_dense = _load_source(source)
    select = _Selector(rename, include, exclude)
    report = WarmStartReport()

    old_tables = select.renamed(source_tables, "tables")
    new_tables = kv_tables(new_model)
    for name, kv in new_tables.items():
        if name in old_tables and select.wanted(name):
            status, detail = _migrate_table(
                old_tables[name], kv, slots=migrate_slots, min_freq=min_freq,
                max_staleness=max_staleness, allow_dim_change=allow_dim_change)
            report.add(f"table:{name}", status, detail)
        else:
            report.add(f"table:{name}", NEW)
    for name in sorted(set(old_tables) - set(new_tables)):
        report.add(f"table:{name}", UNUSED)

    old_vars = select.renamed(source_dense, "variables")
    new_vars = _dense_variables(new_model)
    for name, variables in new_vars.items():
        old = old_vars.get(name)
        if old is not None and select.wanted(name) and name.startswith("optimizer/") \
                and not migrate_slots:
            report.add(name, NEW, "reset (migrate_slots=False)")
        elif old is None or not select.wanted(name):
            report.add(name, NEW)
        elif len(old) > 1 or len(variables) > 1:
            report.add(name, NEW, "ambiguous: several variables share this path")
        elif old[0].shape == variables[0].shape:
            variables[0].assign(old[0])
            report.add(name, MIGRATED)
        elif allow_shape_change and old[0].shape.rank == variables[0].shape.rank:
            variables[0].assign(_overlap(old[0].numpy(), variables[0].numpy()))
            report.add(name, PARTIAL, f"shape {old[0].shape.as_list()} -> "
                                      f"{variables[0].shape.as_list()}, overlapping block copied")
        else:
            report.add(name, NEW, f"shape {old[0].shape.as_list()} != "
                                  f"{variables[0].shape.as_list()}")
    for name in sorted(set(old_vars) - set(new_vars)):
        report.add(name, UNUSED)
    logging.info("warm start from %s:\n%s", source if isinstance(source, str) else "model", report)
    return report


__all__ = ["WarmStartReport", "warm_start", "MIGRATED", "PARTIAL", "NEW", "UNUSED"]
