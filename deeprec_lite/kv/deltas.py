"""Deltas of live KV tables: what changed since a step, and applying it to a table.

Every record carries the step of its last change of any kind (inserted, counted by a
training lookup, updated by an optimizer), and each table logs the keys it removes
(eviction, `remove`) with their step, so the records changed since step S and the keys
removed since then come straight from the table in one pass, without reading what was
saved or exported at S (ops/kv_table.h, KvTableBase::Changes). Incremental checkpoints
(deeprec_lite.training.incremental) and delta exports (export_embeddings(since=))
are built on it.

A delta is only meaningful between two states of one table history: each table has a
`timeline` id, new when it is created, restored or imported, and a delta since a state
of another timeline is refused by the callers. The removal log keeps at least the last
16,384 removals of each internal shard, or half its records if more; a delta reaching
further back raises tf.errors.FailedPreconditionError (write a full one).
"""
from typing import List, NamedTuple

import numpy as np
import tensorflow as tf

from deeprec_lite.kv import op_library
from deeprec_lite.kv.partitioned_variable import PartitionedKVVariable
from deeprec_lite.kv.snapshots import RecordChunk

_NEVER = np.iinfo(np.int64).min  # an empty [expired_from, expired_before) range


class TableChanges(NamedTuple):
    """Changes of a table since a step: `records` (a RecordChunk of the records
    touched since then; its slots empty [n, 0, dim] when read without slots),
    `removed_keys` (removed since then and not in the table now, each once) and
    `expired_keys` (admitted, untouched since then, with a version in the asked
    range). The three hold distinct keys."""

    records: RecordChunk
    removed_keys: np.ndarray
    expired_keys: np.ndarray


def _parts(kv):
    return list(kv.shards) if isinstance(kv, PartitionedKVVariable) else [kv]


class ChangeState(NamedTuple):
    """Of one table (partition): its timeline id, the step from which it remembers the
    keys it removed, and the largest step of a change so far."""

    timeline: int
    removals_since: int
    clock: int


def change_state(kv) -> List[ChangeState]:
    """The ChangeState of each partition of a KVVariable or PartitionedKVVariable (one
    for a KVVariable)."""
    ops = op_library.load()
    return [ChangeState(*(int(t.numpy()) for t in ops.drl_kv_change_state(part.resource_handle)))
            for part in _parts(kv)]


def change_point(kv):
    """What a save or export of a live table records so that a later delta can start
    from it: {"timelines": the timeline id of each partition, "change_step": the
    earliest of their change clocks} (see change_state). Read before the
    table's records are: changes made while they are read go into the next delta too."""
    states = change_state(kv)
    return {"timelines": [s.timeline for s in states],
            "change_step": min(s.clock for s in states)}

def changes(kv, since, expired=None, with_slots=True) -> TableChanges:
    """The changes of a table (all partitions) since step `since` (records touched at a
    step >= since). expired: (from, before): also the admitted keys untouched since
    then whose version is in [from, before) (None: none)."""
    ops = op_library.load()
    low, high = expired if expired is not None else (_NEVER, _NEVER)
    parts = []
    for part in _parts(kv):
        out = ops.drl_kv_changes(part.resource_handle, tf.constant(int(since), tf.int64),
                                 tf.constant(int(low), tf.int64), tf.constant(int(high), tf.int64),
                                 key_dtype=kv.key_dtype, with_slots=with_slots)
        parts.append([t.numpy() for t in out])
    fields = [np.concatenate(f) for f in zip(*parts)]
    return TableChanges(RecordChunk(*fields[:8]), fields[8], fields[9])


def apply(kv, records: RecordChunk, removed_keys):
    """Applies a delta to a table: removes `removed_keys` (those present), then puts
    `records` in, replacing the records of keys already there. What it puts in and
    takes out counts as restored, not as a change (kv.deltas.changes leaves it out)."""
    if len(removed_keys):
        kv.remove(removed_keys, log=False)
    kv.insert_records(records, replace=True)
