"""PartitionedKVVariable: a KV variable split into shards, each a table on its own device.

A key belongs to the shard `DrlKvShardIndex` gives it: a stable hash of the key
alone, so the same key goes to the same shard on every machine and release, and
records can be routed again when a checkpoint is restored into another number of
shards. Under `tf.distribute.ParameterServerStrategy` the shards are placed on
the parameter-server tasks round-robin; their lookups and updates run there and
only the batch's keys and rows travel. Every batch is split by shard with
`tf.dynamic_partition` and the results put back in input order with
`tf.dynamic_stitch`.

The API is KVVariable's. A key's initial value depends only on (key, seed), so a
partitioned variable holds exactly what an unpartitioned one would. A checkpoint
holds one logical table (the shards' records concatenated), the format
KVVariable writes, so checkpoints move freely between partitioned and plain
variables and between shard counts.
"""
import copy
from typing import Mapping, Optional, Sequence, Union

import numpy as np
import tensorflow as tf

from deeprec_lite._checks import check_positive_int
from deeprec_lite.kv import op_library, policies
from deeprec_lite.kv.device_transfers import PARAMETER_SERVER_JOB
from deeprec_lite.kv.variable import (KVRecords, KVVariable, bloom_counts_of_shard,
                                       step_or_clock)


def parameter_server_devices():
    """The CPU devices of the ps tasks of the ParameterServerStrategy in scope, else None."""
    if not tf.distribute.has_strategy():
        return None
    if not isinstance(tf.distribute.get_strategy(), tf.distribute.ParameterServerStrategy):
        return None
    # The strategy connected this process to the cluster: its devices are listed.
    devices = [tf.DeviceSpec.from_string(d.name) for d in tf.config.list_logical_devices("CPU")]
    return [d.to_string() for d in sorted((d for d in devices if d.job == PARAMETER_SERVER_JOB),
                                          key=lambda d: d.task)]


class PartitionedKVVariable(tf.__internal__.tracking.AutoTrackable):
    """A KV embedding variable split into `num_shards` tables.

    Args:
      dim, key_dtype, initializer, seed, slots, default_value, admission, eviction,
        freq_counting, name: as for KVVariable; every shard gets them (a BloomFilter
        admission is sized per shard).
      num_shards: number of shards, a positive int.
      devices: devices of the shards, used round-robin; None: the parameter servers
        of the ParameterServerStrategy in scope, else the surrounding device scope.
    """

    def __init__(self, dim: int, num_shards: int, key_dtype="int64",
                 initializer="truncated_normal", seed: int = 0,
                 slots: Union[Mapping[str, float], Sequence[str]] = (),
                 default_value: Union[float, Sequence[float]] = 0.0,
                 admission: policies.Admission = None, eviction=None,
                 freq_counting: str = "every_epoch",
                 name: str = "kv_variable", devices: Optional[Sequence[str]] = None):
        num_shards = check_positive_int(num_shards, "num_shards")
        if devices is None:
            devices = parameter_server_devices() or [""]
        if isinstance(devices, str) or not devices or not all(isinstance(d, str) for d in devices):
            raise ValueError(f"devices must be a non-empty list of device strings, got {devices!r}")
        self._name = name
        self._ops = op_library.load()
        self._shards = [
            KVVariable(dim, key_dtype=key_dtype, initializer=initializer, seed=seed, slots=slots,
                       default_value=default_value, admission=admission, eviction=eviction,
                       freq_counting=freq_counting, name=f"{name}_part_{i}",
                       device=devices[i % len(devices)])
            for i in range(num_shards)]
        for shard in self._shards:
            shard._is_partition = True
        with tf.init_scope():
            self._step = tf.Variable(0, dtype=tf.int64, trainable=False, name=f"{name}_step")
            self._evicted = tf.Variable(0, dtype=tf.int64, trainable=False,
                                        name=f"{name}_evicted")

    def _trackable_children(self, save_type="checkpoint", **kwargs):
        children = super()._trackable_children(save_type, **kwargs)
        if save_type == "checkpoint":
            # The variable saves one logical table (kv.checkpointing), so the
            # checkpoint does not depend on the number of shards.
            children.pop("_shards", None)
        return children

    def _deserialization_dependencies(self, children):
        # A SavedModel exports (and loads) the shards before this variable.
        return {f"shard_{i}": shard for i, shard in enumerate(self._shards)}

    def _export_to_saved_model_graph(self, object_map, tensor_map, options, **kwargs):
        # A SavedModel serializes this variable in its exported graph, where the
        # shards are copies with their own table handles: read through those.
        exported = copy.copy(self)
        object.__setattr__(exported, "_shards", [object_map[s] for s in self._shards])
        object_map[self] = exported
        return []

    # ----- configuration (the shards share it) ---------------------------------

    @property
    def name(self):
        return self._name

    @property
    def shards(self):
        """The shards, KVVariables; shard i holds the keys DrlKvShardIndex maps to i."""
        return tuple(self._shards)

    @property
    def num_shards(self):
        return len(self._shards)

    @property
    def dim(self):
        return self._shards[0].dim

    @property
    def key_dtype(self):
        return self._shards[0].key_dtype

    @property
    def initializer(self):
        return self._shards[0].initializer

    @property
    def seed(self):
        return self._shards[0].seed

    @property
    def slot_names(self):
        return self._shards[0].slot_names

    @property
    def slot_initial_values(self):
        return self._shards[0].slot_initial_values

    @property
    def default_value(self):
        return self._shards[0].default_value

    @property
    def admission(self):
        return self._shards[0].admission

    @property
    def eviction(self):
        return self._shards[0].eviction

    @property
    def bloom_filter_size(self):
        """Counters of each shard's counting Bloom filter (0 without one)."""
        return self._shards[0].bloom_filter_size

    @property
    def freq_counting(self):
        return self._shards[0].freq_counting

    @property
    def counting_driven(self):
        return self._shards[0].counting_driven

    def set_freq_counting(self, counting: bool):
        """See KVVariable.set_freq_counting; every shard."""
        for shard in self._shards:
            shard.set_freq_counting(counting)

    @property
    def step(self):
        """int64 tf.Variable: the global step of the last optimizer update."""
        return self._step

    @property
    def evicted(self):
        """int64 tf.Variable: keys removed by eviction so far."""
        return self._evicted

    def ensure_slots(self, slots):
        """See KVVariable.ensure_slots; applies to every shard."""
        for shard in self._shards:
            shard.ensure_slots(slots)

    # ----- routing -------------------------------------------------------------

    def _keys(self, keys, name="keys"):
        return self._shards[0]._keys(keys, name)

    def _split(self, flat_keys, *per_key):
        """(positions of each shard's keys in the batch, [keys and each per-key
        tensor split by shard])."""
        shard_of = self._ops.drl_kv_shard_index(flat_keys, num_shards=self.num_shards)
        positions = tf.dynamic_partition(tf.range(tf.size(flat_keys)), shard_of, self.num_shards)
        parts = [tf.dynamic_partition(t, shard_of, self.num_shards) for t in (flat_keys,) + per_key]
        return positions, parts

    def _per_key(self, name, tensor, keys, dtype, row_shape=()):
        """`tensor` of shape keys.shape + row_shape as [N, *row_shape]; a clear error
        naming the argument otherwise."""
        tensor = tf.cast(tensor, dtype)
        want = keys.shape.concatenate(list(row_shape))
        message = f"{name} must have shape keys.shape + {list(row_shape)}"
        if not tensor.shape.is_compatible_with(want):
            raise ValueError(f"{message} = {want}, got {tensor.shape}")
        with tf.control_dependencies([tf.debugging.assert_equal(
                tf.shape(tensor), tf.concat([tf.shape(keys), list(row_shape)], 0),
                message=message)]):
            return tf.reshape(tensor, [-1] + list(row_shape))

    def _stitch(self, keys, positions, parts, row_shape=()):
        """Per-shard results back in input order, shaped keys.shape + row_shape."""
        out = tf.dynamic_stitch(positions, parts)
        out = tf.reshape(out, tf.concat([tf.shape(keys), list(row_shape)], 0))
        out.set_shape(keys.shape.concatenate(list(row_shape)))
        return out

    # ----- lookups and updates -------------------------------------------------

    def lookup(self, keys):
        """See KVVariable.lookup."""
        keys = self._keys(keys)
        positions, (key_parts,) = self._split(tf.reshape(keys, [-1]))
        rows = [shard.lookup(k) for shard, k in zip(self._shards, key_parts)]
        return self._stitch(keys, positions, rows, [self.dim])

    def lookup_or_insert(self, keys, counts=None, global_step=None):
        """See KVVariable.lookup_or_insert."""
        keys = self._keys(keys)
        step = step_or_clock(self._step, global_step)
        flat = tf.reshape(keys, [-1])
        if counts is None:
            positions, (key_parts,) = self._split(flat)
            count_parts = [None] * self.num_shards
        else:
            positions, (key_parts, count_parts) = self._split(
                flat, self._per_key("counts", counts, keys, tf.int64))
        results = [shard.lookup_or_insert(k, c, step)
                   for shard, k, c in zip(self._shards, key_parts, count_parts)]
        values = self._stitch(keys, positions, [v for v, _ in results], [self.dim])
        admitted = self._stitch(keys, positions, [a for _, a in results])
        return values, admitted

    def update(self, keys, values, slots=None, global_step=None):
        """See KVVariable.update."""
        keys = self._keys(keys)
        step = step_or_clock(self._step, global_step)
        per_key = [self._per_key("values", values, keys, tf.float32, [self.dim])]
        if slots is not None:
            per_key.append(self._per_key("slots", slots, keys, tf.float32,
                                         [len(self.slot_names), self.dim]))
        _, parts = self._split(tf.reshape(keys, [-1]), *per_key)
        slot_parts = parts[2] if slots is not None else [None] * self.num_shards
        return tf.add_n([shard.update(k, v, s, step) for shard, k, v, s in
                         zip(self._shards, parts[0], parts[1], slot_parts)])

    def apply_kernel(self, kernel, keys, grads, index=None, nonfinite_gradients="error"):
        """See KVVariable.apply_kernel; runs the kernel on every shard's keys (rows with an
        index are summed first). With "error", the whole batch is checked first (the
        error names this variable), so a row holding NaN or Inf leaves every shard
        unchanged; with "skip" each shard skips and counts its own."""
        if index is not None:
            num_keys = tf.size(keys, out_type=tf.int64)
            index = tf.convert_to_tensor(index, tf.int64)
            message = f"variable '{self._name}': index must be in [0, number of keys)"
            with tf.control_dependencies([
                    tf.debugging.assert_non_negative(index, message=message),
                    tf.debugging.assert_less(index, num_keys, message=message)]):
                grads = tf.math.unsorted_segment_sum(grads, index, num_keys)
        if nonfinite_gradients == "error":
            grads = self._ops.drl_check_finite_gradients(grads, table_name=self._name)
        _, (key_parts, grad_parts) = self._split(keys, grads)
        return tf.add_n([shard.apply_kernel(kernel, k, g, None, nonfinite_gradients)
                         for shard, k, g in zip(self._shards, key_parts, grad_parts)])

    def remove(self, keys, log=True):
        """See KVVariable.remove."""
        keys = self._keys(keys)
        _, (key_parts,) = self._split(tf.reshape(keys, [-1]))
        return tf.add_n([shard.remove(k, log) for shard, k in zip(self._shards, key_parts)])

    # ----- eviction ------------------------------------------------------------

    def _count_evicted(self, removed):
        with tf.control_dependencies([self._evicted.assign_add(removed)]):
            return tf.identity(removed)

    def evict(self, global_step, max_staleness: Optional[int] = None,
              min_freq: Optional[int] = None):
        """See KVVariable.evict."""
        return self._count_evicted(tf.add_n(
            [shard.evict(global_step, max_staleness, min_freq) for shard in self._shards]))

    def maybe_evict(self, global_step):
        """See KVVariable.maybe_evict."""
        if all(policy.every_n_steps is None for policy in self.eviction):
            return tf.constant(0, tf.int64)  # nothing scheduled: no update of the count
        return self._count_evicted(tf.add_n(
            [shard.maybe_evict(global_step) for shard in self._shards]))

    # ----- inspection, export, import ------------------------------------------

    def stats(self):
        """See KVVariable.stats; summed over the shards."""
        per_shard = [shard.stats() for shard in self._shards]
        return {k: tf.add_n([s[k] for s in per_shard]) for k in per_shard[0]}

    def size(self):
        """Number of admitted keys."""
        return tf.add_n([shard.size() for shard in self._shards])

    def export(self) -> KVRecords:
        """Every record of every shard (each shard one consistent snapshot); the
        bloom_counts are the shards' filters one after another."""
        exports = [shard.export() for shard in self._shards]
        return KVRecords(*[tf.concat(list(field), 0) for field in zip(*exports)])

    def _shard_records(self, records: KVRecords, bloom_of_shard):
        """[(shard, KVRecords of its keys)] of records routed by key."""
        keys = tf.convert_to_tensor(records.keys)
        if keys.dtype != self.key_dtype:
            raise ValueError(f"cannot import {keys.dtype.name} keys into variable "
                             f"'{self._name}' with {self.key_dtype.name} keys")
        _, parts = self._split(keys, *[tf.convert_to_tensor(t) for t in records[1:6]])
        return [(shard, KVRecords(*[p[i] for p in parts], bloom_of_shard(i)))
                for i, shard in enumerate(self._shards)]

    def import_records(self, records: KVRecords):
        """Replaces the contents with `records` (as this variable's `export` returns
        them), each key going to its shard."""
        bloom = tf.reshape(tf.convert_to_tensor(records.bloom_counts, tf.int32),
                           [self.num_shards, -1])
        return tf.group([shard.import_records(r)
                         for shard, r in self._shard_records(records, lambda i: bloom[i])])

    # ----- filling a table in parts (warm start) --------------------------------

    def clear(self, expected_records: int = 0):
        """See KVVariable.clear."""
        for shard in self._shards:
            shard.clear(expected_records // self.num_shards)

    def insert_records(self, chunk, replace=False):
        """See KVVariable.insert_records; each key goes to its shard."""
        admitted = self._shard_index(chunk[0])
        pending = self._shard_index(chunk[5])
        for i, shard in enumerate(self._shards):
            a, p = admitted == i, pending == i
            shard.insert_records(tuple(f[a] for f in chunk[:5]) + tuple(f[p] for f in chunk[5:]),
                                 replace)

    def bloom_counts(self):
        """The shards' Bloom filter counters, one filter after another."""
        return tf.concat([shard.bloom_counts() for shard in self._shards], 0)

    def set_bloom_counts(self, counts):
        """See KVVariable.set_bloom_counts: the shards' filters one after another."""
        counts = np.asarray(counts, np.int32)
        if counts.shape != (self.num_shards * self.bloom_filter_size,):
            raise ValueError(f"variable '{self._name}': counts must hold {self.num_shards} "
                             f"shards x {self.bloom_filter_size} Bloom filter counters, got "
                             f"shape {counts.shape}")
        for shard, part in zip(self._shards, np.split(counts, self.num_shards)):
            shard.set_bloom_counts(part)

    def _shard_index(self, keys):
        return self._ops.drl_kv_shard_index(tf.constant(keys, self.key_dtype),
                                            num_shards=self.num_shards).numpy()

    # ----- checkpointing: one logical table (deeprec_lite.kv.checkpointing) -----

    def _restore_legacy_tensors(self, restored_tensors):
        """See KVVariable._restore_legacy_tensors: one logical table, routed by key."""
        restored = dict(restored_tensors)
        spec = {k: restored.pop(k) for k in ("slot_names", "slot_inits")}
        records = KVRecords(**restored)
        filter_size = self.bloom_filter_size

        def bloom_of_shard(i):
            return bloom_counts_of_shard(records.bloom_counts, filter_size, self.num_shards, i)

        return tf.group([shard._restore_legacy_tensors(dict(r._asdict(), **spec))
                         for shard, r in self._shard_records(records, bloom_of_shard)])

    def __repr__(self):
        return (f"PartitionedKVVariable(name={self._name!r}, dim={self.dim}, "
                f"num_shards={self.num_shards}, key_dtype={self.key_dtype.name}, "
                f"slots={list(self.slot_names)})")


#: The KV variable types: what layers, optimizers, export and warm start accept.
KV_VARIABLES = (KVVariable, PartitionedKVVariable)
