"""Streaming checkpoints of KV tables.

`tf.train.Checkpoint` (and so `tf.train.CheckpointManager`, `model.save_weights` /
`load_weights` and `BackupAndRestore`) saves and restores every KVVariable and
PartitionedKVVariable through the C++ ops DrlKvSave / DrlKvRestore
(ops/kv_checkpoint.cc), registered here as a checkpoint saver: records move between
the table and the checkpoint's files one internal shard (about 1/32 of a table) at
a time, never as a second copy of the table. Each record is copied under its
shard's lock, so its value, slots, freq and version come from the same update even
while training goes on.

The checkpoint is TensorFlow's own V2 format (an index and data files, merged with
the model's other variables): under a table's object name, `.KV_TABLE/slot_names`
and `slot_inits`, and per part (a partition of a PartitionedKVVariable, or the one
part of a KVVariable) the records of each shard in chunks of at most 2**20 records, with
a crc32c checksum per tensor (see ops/kv_checkpoint.cc). A checkpoint holds one logical table, so it restores
into any number of partitions, a plain variable included: keys are routed again by
the stable hash of DrlKvShardIndex. A SavedModel's variables are such a checkpoint
too, each table stored once; `tf.saved_model.load` restores them into the tables
it revives. Checkpoints of earlier releases (one tensor per field) restore as well.
"""
import contextlib
import re
import threading

import tensorflow as tf
from tensorflow.python.saved_model.registration import registration
from tensorflow.python.trackable.resource import RestoredResource

from deeprec_lite.kv import op_library
from deeprec_lite.kv.partitioned_variable import PartitionedKVVariable
from deeprec_lite.kv.variable import KVVariable

SAVER_PACKAGE = "deeprec_lite"
SAVER_NAME = "KVTable"
# The saver's name as checkpoints record it (TrackableObjectGraph registered_saver.name).
REGISTERED_NAME = f"{SAVER_PACKAGE}.{SAVER_NAME}"
# Where a table's entries start under its object name (ops/kv_checkpoint.cc).
TABLE_DIR = "/.KV_TABLE/"
# Threads (and bundles) that write the tables of one device: writing into the page
# cache is a memory copy that one core does not saturate. Each holds one internal
# shard's copy (1/32 of a table) at a time.
_WRITERS = 2
# The most records (admitted, and as many pending) of one stored chunk: what a restore
# holds beside the table, twice (one chunk read while another is inserted).
CHUNK_RECORDS = 1 << 20
# Entries of the format before streaming checkpoints: <object>/.ATTRIBUTES/<field>.
_LEGACY_DIR = "/.ATTRIBUTES/"
_LEGACY_FIELDS = (("keys", None), ("values", tf.float32), ("freqs", tf.int64),
                  ("versions", tf.int64), ("slots", tf.float32), ("admitted", tf.bool),
                  ("bloom_counts", tf.int32), ("slot_names", tf.string),
                  ("slot_inits", tf.float32))


def _is_revived_table(trackable):
    """Whether `trackable` is a table that tf.saved_model.load revived (a generic
    RestoredResource, created by the saved DrlKvTable op)."""
    if not isinstance(trackable, RestoredResource):
        return False
    creator = getattr(trackable, "_create_resource", None)
    return any(op.type == "DrlKvTable" for f in getattr(creator, "concrete_functions", ())
               for op in f.graph.get_operations())


def _is_table(trackable):
    if isinstance(trackable, KVVariable):
        return not trackable.is_partition  # a partition is saved with its variable
    if isinstance(trackable, PartitionedKVVariable) or _is_revived_table(trackable):
        return True
    # A PartitionedKVVariable revived by tf.saved_model.load: an object with its shards.
    shards = getattr(trackable, "_shards", None)
    return bool(shards) and all(_is_revived_table(s) for s in shards)


def _parts(table):
    """The table handles holding the records of `table`, partition by partition."""
    shards = getattr(table, "_shards", None)
    # A KVVariable's own eager handle (see KVVariable.__init__), a revived table's handle.
    return [p._checkpoint_handle if hasattr(p, "_checkpoint_handle") else p.resource_handle
            for p in (list(shards) if shards is not None else [table])]


def _save(trackables, file_prefix):
    """Writes every table, one bundle per device of their tables (where the DrlKvSave
    op runs), plus one bundle of the slot layouts. Returns the bundles' prefixes."""
    ops = op_library.load()
    by_device, spec_names, spec_values = {}, [], []
    leaving = getattr(_LEAVING_TABLES, "active", False)
    for name, table in sorted(trackables.items()):
        parts = _parts(table)
        for i, handle in enumerate(parts):
            if not leaving:
                by_device.setdefault(handle.device, []).append((name, i, len(parts), handle))
        names, inits = _slot_layout(table)
        spec_names += [name + TABLE_DIR + "slot_names", name + TABLE_DIR + "slot_inits"]
        spec_values += [tf.constant(names, tf.string, shape=[len(names)]),
                        tf.constant(inits, tf.float32, shape=[len(inits)])]
    # A directory of their own, which MergeV2Checkpoints removes once it has moved the
    # files into the checkpoint: a save killed before that leaves no file that a
    # checkpoint could be taken for.
    temp = tf.strings.join([file_prefix, "_temp/"])
    prefixes = []
    for n, (device, parts) in enumerate(sorted(by_device.items())):
        with tf.device(device):
            bundles = [tf.strings.join([temp, f"tables-{n}-{w}"]) for w in range(_WRITERS)]
            saved = ops.drl_kv_save([h for *_, h in parts], tf.stack(bundles),
                                    tf.constant([name for name, *_ in parts]),
                                    tf.constant([i for _, i, _, _ in parts], tf.int64),
                                    tf.constant([k for _, _, k, _ in parts], tf.int64),
                                    chunk_records=CHUNK_RECORDS)
            with tf.control_dependencies([saved]):
                prefixes += [tf.identity(b) for b in bundles]
    with tf.device("CPU:0"):
        prefix = tf.strings.join([temp, "slot_layouts"])
        saved = tf.raw_ops.SaveV2(prefix=prefix, tensor_names=spec_names,
                                  shape_and_slices=[""] * len(spec_names), tensors=spec_values)
        with tf.control_dependencies([saved]):
            prefixes.append(tf.identity(prefix))
    return prefixes


def _slot_layout(table):
    """(slot names, initial values) of a table; a revived one's come from its table."""
    if isinstance(table, (KVVariable, PartitionedKVVariable)):
        return table.slot_names, table.slot_initial_values
    raise ValueError("a table revived by tf.saved_model.load cannot be saved into a "
                     "checkpoint: rebuild the model (keras.models.load_model) and save that")


def _set_slots(table, names, inits):
    """Gives the table the checkpoint's slots before its records arrive (it may not have
    its optimizer's slots yet when it is restored before training). Returns the ops
    the restore must wait for."""
    if tf.executing_eagerly() and isinstance(table, (KVVariable, PartitionedKVVariable)):
        table.ensure_slots(dict(zip((n.decode() for n in names.numpy()), inits.numpy().tolist())))
        return []
    ops = op_library.load()
    return [ops.drl_kv_set_slots(handle, inits) for handle in _parts(table)]


_LEAVING_TABLES = threading.local()


@contextlib.contextmanager
def tables_left_as_they_are():
    """Saves and restores in this thread, within the block, leave KV tables out: a save
    writes only their slot layouts, a restore leaves them as they are (a warm start
    restores an old model's dense weights and reads its tables from the checkpoint as
    snapshots, chunk by chunk; an incremental checkpoint stores the tables' deltas
    beside such a save of the rest)."""
    _LEAVING_TABLES.active = True
    try:
        yield
    finally:
        _LEAVING_TABLES.active = False


def _restore(trackables, merged_prefix):
    # Returns nothing: the ops run eagerly, or as stateful ops of the tf.function
    # that SavedModels trace this into.
    if getattr(_LEAVING_TABLES, "active", False):
        return
    ops = op_library.load()
    for name, table in sorted(trackables.items()):
        if _LEGACY_DIR in name:  # a checkpoint of the earlier format: one tensor per field
            _restore_legacy(table, merged_prefix, name[:name.index(_LEGACY_DIR) + len(_LEGACY_DIR)])
            continue
        with tf.device("CPU:0"):
            names, inits = tf.raw_ops.RestoreV2(
                prefix=merged_prefix,
                tensor_names=[name + TABLE_DIR + "slot_names", name + TABLE_DIR + "slot_inits"],
                shape_and_slices=["", ""], dtypes=[tf.string, tf.float32])
        parts = _parts(table)
        with tf.control_dependencies(_set_slots(table, names, inits)):
            for i, handle in enumerate(parts):
                with tf.device(handle.device):
                    ops.drl_kv_restore(handle, merged_prefix, name, tf.constant(i, tf.int64),
                                       tf.constant(len(parts), tf.int64))


def _restore_legacy(table, merged_prefix, attributes):
    tensors = tf.raw_ops.RestoreV2(
        prefix=merged_prefix, tensor_names=[attributes + f for f, _ in _LEGACY_FIELDS],
        shape_and_slices=[""] * len(_LEGACY_FIELDS),
        dtypes=[table.key_dtype if d is None else d for _, d in _LEGACY_FIELDS])
    return table._restore_legacy_tensors(dict(zip((f for f, _ in _LEGACY_FIELDS), tensors)))


_CHUNK_DIR = re.compile(r"part-\d{5}-of-\d{5}/chunk-\d{5}/")
_PART_DIR = re.compile(r"part-\d{5}-of-\d{5}/")


def stored_chunk_dirs(names, object_name):
    """The directories ('<object>/.KV_TABLE/part-../chunk-../') of the stored chunks of
    the table saved as `object_name`, in order; names: the checkpoint's tensor names."""
    root = object_name + TABLE_DIR
    return sorted(n[:-len("keys")] for n in names if n.startswith(root) and n.endswith("/keys")
                  and _CHUNK_DIR.fullmatch(n[len(root):-len("keys")]))


def stored_part_dirs(names, object_name):
    """The part directories of the table saved as `object_name` (one per partition)."""
    root = object_name + TABLE_DIR
    return sorted(n[:-len("bloom_counts")] for n in names
                  if n.startswith(root) and n.endswith("/bloom_counts")
                  and _PART_DIR.fullmatch(n[len(root):-len("bloom_counts")]))


registration.register_checkpoint_saver(package=SAVER_PACKAGE, name=SAVER_NAME,
                                       predicate=_is_table, save_fn=_save, restore_fn=_restore)
