"""Streaming snapshots of KV tables: the one way export and warm start read records.

A snapshot is a table's records as a stream of chunks: from a live table, the records of
one of its 32 internal shards (about 1/32 of the table, or of one partition of a
partitioned variable) copied under that shard's lock, so every record is consistent
(value, slots, freq and version from the same update); from a checkpoint, the chunks
it stores (at most 2**20 records each, of one shard). It reads a live table
(DrlKvShardRecords) or a checkpoint on disk (the chunks that
deeprec_lite.kv.checkpointing wrote, each tensor's checksum verified as it is read), so
a reader holds one chunk at a time beside the table, never a second copy of it.

`keep_mask` is the one frequency / staleness rule of export and warm start (the
table's own eviction applies the same rule in C++).
"""
import dataclasses
from typing import Callable, Iterator, NamedTuple, Optional, Tuple

import numpy as np
import tensorflow as tf

from deeprec_lite.kv import checkpointing, op_library, policies
from deeprec_lite.kv.partitioned_variable import PartitionedKVVariable

NUM_SHARDS = 32  # a table's internal shards (ops/kv_table.h kNumShards)


class RecordChunk(NamedTuple):
    """Records of one chunk of a table, as numpy arrays. Admitted records: keys [n]
    (int64, or object arrays of bytes), values [n, dim] float32, slots
    [n, num_slots, dim] float32, freqs [n] and versions [n] int64. Keys counted but
    not admitted yet (counter admission): pending_keys, pending_freqs,
    pending_versions [m]."""

    keys: np.ndarray
    values: np.ndarray
    slots: np.ndarray
    freqs: np.ndarray
    versions: np.ndarray
    pending_keys: np.ndarray
    pending_freqs: np.ndarray
    pending_versions: np.ndarray


@dataclasses.dataclass
class TableSnapshot:
    """A table's records as a stream of RecordChunks (`chunks()` starts a new pass;
    `chunks(with_slots=False)` leaves their slots out, as None),
    with what describes the table. key_dtype: "int64" or "string"; step: the table's
    step clock; default_value: what lookups of absent keys return (dim floats, None
    when unknown); bloom_counts(): the counting Bloom filter's counters of each
    partition one after another (empty without one); admission: the table's admission
    policy (None when unknown or none)."""

    name: str
    key_dtype: str
    dim: int
    step: int
    slot_names: Tuple[str, ...]
    slot_inits: Tuple[float, ...]
    chunks: Callable[[], Iterator[RecordChunk]]
    bloom_counts: Callable[[], np.ndarray]
    num_records: int
    default_value: Optional[Tuple[float, ...]] = None
    admission: Optional[policies.Admission] = None


def keep_mask(freqs, versions, global_step, min_freq=None, max_staleness=None):
    """Which records pass: freq >= min_freq and global_step - version <= max_staleness
    (None: no such filter), exactly for any int64 versions (no wraparound)."""
    keep = np.ones(len(freqs), bool)
    if min_freq is not None:
        keep &= np.asarray(freqs) >= min_freq
    if max_staleness is not None:
        # step - version <= max_staleness as version >= step - max_staleness, in Python
        # ints (int64 step - version can wrap).
        oldest_kept = int(global_step) - int(max_staleness)
        if oldest_kept > np.iinfo(np.int64).min:
            keep &= np.asarray(versions, np.int64) >= oldest_kept
    return keep


def _parts(kv):
    return list(kv.shards) if isinstance(kv, PartitionedKVVariable) else [kv]


def of_variable(kv, name=None) -> TableSnapshot:
    """A live KVVariable or PartitionedKVVariable's snapshot: each chunk is copied from
    the table when the stream reaches it (training may go on in between)."""
    ops = op_library.load()

    def chunks(with_slots=True):
        for part in _parts(kv):
            for shard in range(NUM_SHARDS):
                out = ops.drl_kv_shard_records(part.resource_handle, tf.constant(shard, tf.int32),
                                               key_dtype=kv.key_dtype)
                chunk = RecordChunk(*(t.numpy() for t in out))
                yield chunk if with_slots else chunk._replace(slots=None)

    def bloom_counts():
        return kv.bloom_counts().numpy()

    default = kv.default_value
    stats = kv.stats()
    return TableSnapshot(name or kv.name, kv.key_dtype.name, kv.dim, int(kv.step.numpy()),
                         tuple(kv.slot_names), tuple(kv.slot_initial_values), chunks,
                         bloom_counts, int(stats["admitted"]) + int(stats["pending"]),
                         tuple(default * kv.dim if len(default) == 1 else default), kv.admission)


def of_checkpoint(reader, object_name, name, step) -> TableSnapshot:
    """The snapshot of the table saved as `object_name` in a checkpoint.
    reader: a tf.train.load_checkpoint reader of it; step: the table's step clock."""
    shapes = reader.get_variable_to_shape_map()
    dtypes = reader.get_variable_to_dtype_map()
    shards = checkpointing.stored_chunk_dirs(shapes, object_name)
    if not shards:
        raise ValueError(f"the checkpoint holds no records of table '{object_name}'")
    first = shards[0]
    root = object_name + checkpointing.TABLE_DIR
    slot_names = tuple(n.decode() for n in reader.get_tensor(root + "slot_names"))
    slot_inits = tuple(float(v) for v in reader.get_tensor(root + "slot_inits"))

    def chunks(with_slots=True):
        for shard in shards:
            yield RecordChunk(*(reader.get_tensor(shard + f) if with_slots or f != "slots"
                                else None for f in RecordChunk._fields))

    def bloom_counts():
        return np.concatenate([reader.get_tensor(d + "bloom_counts")
                               for d in checkpointing.stored_part_dirs(shapes, object_name)])

    num_records = sum(shapes[s + "keys"][0] + shapes[s + "pending_keys"][0] for s in shards)
    key_dtype = "string" if dtypes[first + "keys"] == tf.string else "int64"
    return TableSnapshot(name, key_dtype, int(shapes[first + "values"][1]), int(step),
                         slot_names, slot_inits, chunks, bloom_counts, int(num_records))


def collect(snapshot) -> RecordChunk:
    """Every record of a snapshot in one RecordChunk (a whole copy of the table: for
    small tables, tests and tools; streaming readers go through `chunks()`)."""
    chunks = list(snapshot.chunks())
    return RecordChunk(*(np.concatenate(field) for field in zip(*chunks)))
