"""KVVariable: a growing hash table of embeddings keyed by raw int64 or string ids.

Per key it keeps the value (dim float32), freq (occurrences in counted training
lookups; see policies.FREQ_COUNTING), version (global
step of the last update) and optimizer slot rows, all in the C++ table of ops/.
It is a tf.Module-style trackable resource with no Keras in it: it works eagerly
and inside tf.function, and tf.train.Checkpoint / tf.saved_model save and restore
every record bit-exactly (slots and not-yet-admitted counts included), streaming
them through deeprec_lite.kv.checkpointing.
"""
import collections
import numbers
from typing import Mapping, Optional, Sequence, Union

import numpy as np
import tensorflow as tf

from deeprec_lite._checks import check_int, check_number
from deeprec_lite.kv import initializers, op_library, policies

KVRecords = collections.namedtuple(
    "KVRecords", ["keys", "values", "freqs", "versions", "slots", "admitted", "bloom_counts"])
KVRecords.__doc__ = """Every record of a KVVariable, as written by `KVVariable.export()`.

keys [N]; values [N, dim]; freqs [N] int64; versions [N] int64;
slots [N, num_slots, dim]; admitted [N] bool (False: counted but not admitted,
value and slots zero); bloom_counts [M] int32 (the counting Bloom filter, M = 0
without one).
"""

_BLOOM_COUNTER_MAX = 0xFFFF  # the table's Bloom filter counters are uint16

# The most bytes a row (value and slots, 4 * dim * (1 + num_slots)) may take.
_MAX_ROW_BYTES = 2 ** 31

_KEY_DTYPES = {"int64": tf.int64, "string": tf.string}


def _key_dtype(key_dtype):
    if isinstance(key_dtype, tf.dtypes.DType) and key_dtype in (tf.int64, tf.string):
        return key_dtype
    if isinstance(key_dtype, str) and key_dtype in _KEY_DTYPES:
        return _KEY_DTYPES[key_dtype]
    raise ValueError(f"key_dtype must be 'int64' or 'string', got {key_dtype!r}")


def _integer_tensor(value, name):
    """`value` as an int64 tensor; ValueError when it does not hold integers (a cast
    would truncate floats silently)."""
    tensor = tf.convert_to_tensor(value)
    if not tensor.dtype.is_integer:
        raise ValueError(f"{name} must hold integers, got dtype {tensor.dtype.name}")
    return tf.cast(tensor, tf.int64)


def as_step(global_step):
    """A global step (what versions are stamped with) as an int64 tensor. Steps are
    in [0, 2**63 - 1]: a Python or numpy number is checked here, a tensor by the op
    that takes it."""
    if isinstance(global_step, (numbers.Number, np.generic)):
        return tf.constant(check_int(global_step, "global_step", minimum=0), tf.int64)
    return _integer_tensor(global_step, "global_step")


def step_or_clock(clock, global_step):
    """global_step as an int64 tensor, or the value of the `clock` variable when it is None."""
    return clock.value() if global_step is None else as_step(global_step)


def _check_row_bytes(dim, num_slots, variable):
    row_bytes = 4 * dim * (1 + num_slots)
    if row_bytes > _MAX_ROW_BYTES:
        raise ValueError(f"dim={dim} with {num_slots} slot(s) gives variable '{variable}' rows of "
                         f"{row_bytes} bytes (4 * dim * (1 + num_slots)); a row may take at "
                         f"most 2**31 bytes")


def bloom_counts_of_shard(bloom_counts, filter_size: int, num_shards: int, shard: int):
    """The counting Bloom filter of shard `shard` of `num_shards`, restored from saved
    counters: the filters of one or more shards of `filter_size` counters each, one
    after another (a checkpoint holds one logical table however it was sharded).

    With as many filters as shards, each shard gets its own counters back. With
    another number, every shard gets the element-wise sum of the saved filters
    (saturating at the 16-bit counter's maximum): a counting Bloom filter of all the
    keys, which never under-counts a key; holding more keys, it has a higher false
    positive rate until the pending keys are admitted or forgotten.
    """
    if filter_size == 0:  # no Bloom filter: the import checks that none was saved
        return bloom_counts
    size = tf.size(bloom_counts, out_type=tf.int64)
    with tf.control_dependencies([tf.debugging.assert_equal(
            size % filter_size, tf.constant(0, tf.int64),
            message=f"saved Bloom filter counters are not a whole number of filters of "
                    f"{filter_size} counters (this variable's admission policy)")]):
        saved_shards = size // filter_size
    per_shard = tf.reshape(bloom_counts, tf.stack([saved_shards, filter_size]))
    return tf.cond(tf.equal(saved_shards, num_shards),
                   lambda: per_shard[shard],
                   lambda: tf.minimum(tf.reduce_sum(per_shard, 0), _BLOOM_COUNTER_MAX))


def _default_value(default_value, dim):
    """The row of keys not admitted: one float for every column, or dim floats."""
    if isinstance(default_value, (str, bytes)) or not isinstance(default_value,
                                                                 (Sequence, np.ndarray)):
        return (check_number(default_value, "default_value"),)
    values = tuple(check_number(v, f"default_value[{i}]") for i, v in enumerate(default_value))
    if len(values) not in (1, dim):
        raise ValueError(f"default_value must be a float or {dim} floats (dim), got "
                         f"{len(values)} values")
    return values


def _slot_spec(slots):
    """(names, initial values) from a {name: initial value} mapping or a list of names."""
    if isinstance(slots, Mapping):
        names = list(slots.keys())
        inits = [check_number(v, f"slots[{k!r}]") for k, v in slots.items()]
    elif isinstance(slots, (list, tuple)):
        names, inits = list(slots), [0.0] * len(slots)
    else:
        raise ValueError(f"slots must be a mapping of name to initial value or a list of names, "
                         f"got {slots!r}")
    for name in names:
        if not isinstance(name, str) or not name:
            raise ValueError(f"slot names must be non-empty strings, got {name!r} in {slots!r}")
    if len(set(names)) != len(names):
        raise ValueError(f"slot names must be unique, got {names!r}")
    return tuple(names), tuple(inits)


class KVVariable(tf.saved_model.experimental.TrackableResource):
    """A KV embedding variable.

    Args:
      dim: embedding width, a positive int; a row (value and slots) takes
        4 * dim * (1 + number of slots) bytes, at most 2**31. A table whose row
        does not fit in the memory of its machine fails to create with
        tf.errors.ResourceExhaustedError.
      key_dtype: "int64" or "string" (or the tf dtype).
      initializer: a name (zeros, constant, uniform, normal, truncated_normal) or a
        `initializers.KVInitializer`. New keys are initialized from (key, seed).
      seed: int seed of the initializer.
      slots: optimizer slot rows kept with each key: {name: initial value} or names.
      default_value: what lookups return for keys without a row: a float or dim floats.
      admission: None, `CounterFilter` or `BloomFilter`.
      eviction: None, or one or a list of `StalenessEviction` / `FrequencyEviction`.
      freq_counting: "every_epoch" or "first_epoch": what freq counts (see
        policies.FREQ_COUNTING); a training loop applies it with
        `set_freq_counting` (model.fit with callbacks.FreqCounting does).
      name: a name for the variable (checkpoint keys come from the attribute path).
      device: where the table lives (e.g. "/job:ps/task:0/device:CPU:0"); its ops run
        there. "" places it by the surrounding device scope.
    """

    def __init__(self, dim: int, key_dtype="int64", initializer="truncated_normal", seed: int = 0,
                 slots: Union[Mapping[str, float], Sequence[str]] = (),
                 default_value: Union[float, Sequence[float]] = 0.0,
                 admission: policies.Admission = None, eviction=None,
                 freq_counting: str = "every_epoch",
                 name: str = "kv_variable", device: str = ""):
        dim = check_int(dim, "dim", minimum=1)
        seed = check_int(seed, "seed")
        self._dim = dim
        self._key_dtype = _key_dtype(key_dtype)
        self._initializer = initializers.get(initializer)
        self._seed = seed
        self._slot_names, self._slot_inits = _slot_spec(slots)
        _check_row_bytes(dim, len(self._slot_names), name)
        self._default_value = _default_value(default_value, dim)
        self._admission = policies.check_admission(admission)
        self._eviction = policies.normalize_eviction(eviction)
        self._freq_counting = policies.check_freq_counting(freq_counting)
        self._counting_driven = False
        self._name = name
        self._is_partition = False
        self._ops = op_library.load()
        super().__init__(device=device)
        with tf.init_scope(), tf.device(device):
            # The table's clock: the global step of the last optimizer update. Training
            # lookups stamp new keys with it unless given a step.
            self._step = tf.Variable(0, dtype=tf.int64, trainable=False, name=f"{name}_step")
            # Keys removed by eviction so far (for monitoring).
            self._evicted = tf.Variable(0, dtype=tf.int64, trainable=False,
                                        name=f"{name}_evicted")
            # The table, created now, outside any function. Checkpoint saves capture
            # this eager handle: the copy of the variable that a SavedModel exports
            # keeps it, and the SavedModel maps it to the copy's table.
            self._checkpoint_handle = self.resource_handle
        self._track_trackable(self._step, name="_step")
        self._track_trackable(self._evicted, name="_evicted")

    # ----- configuration -------------------------------------------------------

    @property
    def name(self):
        return self._name

    @property
    def device(self):
        """The device the table lives on (its ops run there)."""
        return self._checkpoint_handle.device

    @property
    def dim(self):
        return self._dim

    @property
    def key_dtype(self):
        return self._key_dtype

    @property
    def initializer(self):
        """The initializers.KVInitializer of new keys."""
        return self._initializer

    @property
    def seed(self):
        return self._seed

    @property
    def slot_names(self):
        return self._slot_names

    @property
    def default_value(self):
        """What lookups return for keys without a row: a tuple of 1 or dim floats."""
        return self._default_value

    @property
    def evicted(self):
        """int64 tf.Variable: keys removed by eviction so far."""
        return self._evicted

    @property
    def slot_initial_values(self):
        return self._slot_inits

    @property
    def step(self):
        """int64 tf.Variable: the global step of the last optimizer update."""
        return self._step

    def ensure_slots(self, slots: Union[Mapping[str, float], Sequence[str]]):
        """Gives the table these optimizer slots, if it has none yet.

        A table created without slots gets them (every key's slot rows start at the
        initial values); a table that has exactly these slots is left as it is.
        Asking for other slots than the table has is an error.
        """
        names, inits = _slot_spec(slots)
        if names == self._slot_names and inits == self._slot_inits:
            return
        if self._slot_names and names != self._slot_names:
            raise ValueError(f"variable '{self._name}' has slots {list(self._slot_names)}, "
                             f"cannot switch to slots {list(names)}")
        _check_row_bytes(self._dim, len(names), self._name)
        self._ops.drl_kv_set_slots(self.resource_handle, tf.constant(inits, tf.float32))
        self._slot_names, self._slot_inits = names, inits

    @property
    def admission(self):
        return self._admission

    @property
    def bloom_filter_size(self):
        """Counters of the table's counting Bloom filter (0 without one)."""
        if isinstance(self._admission, policies.BloomFilter):
            return self._admission.num_counters
        return 0

    @property
    def eviction(self):
        return self._eviction

    @property
    def freq_counting(self):
        """What freq counts: "every_epoch" or "first_epoch" (policies.FREQ_COUNTING)."""
        return self._freq_counting

    @property
    def counting_driven(self):
        """True once `set_freq_counting` was called (a training loop applies
        freq_counting); a "first_epoch" table trains only then (KVEmbedding checks)."""
        return self._counting_driven

    def set_freq_counting(self, counting: bool):
        """Turns the counting of training lookups on (True) or off: while off,
        `lookup_or_insert` adds nothing to freq or to admission counts, and inserts,
        stamps and returns as usual. On when the table is created or restored."""
        if not isinstance(counting, bool):
            raise ValueError(f"counting must be a bool, got {counting!r}")
        self._ops.drl_kv_set_counting(self.resource_handle, tf.constant(counting))
        self._counting_driven = True

    def _create_resource(self):
        attrs = {"key_dtype": self._key_dtype, "table_name": self._name, "dim": self._dim,
                 "num_slots": len(self._slot_names), "slot_init": list(self._slot_inits),
                 "seed": self._seed, "default_value": list(self._default_value)}
        attrs.update(self._initializer.table_attrs())
        if self._admission is not None:
            attrs.update(self._admission.table_attrs())
        return self._ops.drl_kv_table(**attrs)

    # ----- lookups and updates -------------------------------------------------

    def _keys(self, keys, name="keys"):
        if isinstance(keys, (tf.RaggedTensor, tf.SparseTensor)):
            raise ValueError(f"{name} must be a dense tensor; pass .values of a "
                             f"{type(keys).__name__}")
        if self._key_dtype == tf.int64:
            keys = tf.convert_to_tensor(keys)
            if keys.dtype in (tf.int32, tf.int16, tf.int8, tf.uint8, tf.uint16, tf.uint32):
                keys = tf.cast(keys, tf.int64)
            elif keys.dtype != tf.int64:
                raise ValueError(f"{name} must be int64 for this table, got dtype {keys.dtype.name}")
        else:
            keys = tf.convert_to_tensor(keys)
            if keys.dtype != tf.string:
                raise ValueError(f"{name} must be string for this table, got dtype "
                                 f"{keys.dtype.name}")
        if keys.shape.rank is not None and keys.shape.rank > 2:
            raise ValueError(f"{name} must have rank 0, 1 or 2, got shape {keys.shape}")
        return keys

    def _with_dim(self, keys, values):
        if not values.shape.is_fully_defined():  # in a graph; an eager result is exact
            values.set_shape(keys.shape.concatenate([self._dim]))
        return values

    def lookup(self, keys):
        """Inference lookup: values [*keys.shape, dim]; never inserts, never counts.

        Keys without a row (unknown or not admitted) get the default value.
        """
        keys = self._keys(keys)
        return self._with_dim(keys, self._ops.drl_kv_find(self.resource_handle, keys))

    def lookup_or_insert(self, keys, counts=None, global_step=None):
        """Training lookup. Returns (values [*keys.shape, dim], admitted [*keys.shape] bool).

        Adds counts (one per key, default 1; none while counting is off, see
        `set_freq_counting`) to each key's freq, applies admission,
        and creates admitted new keys from the initializer with version =
        global_step (default: `self.step`). Keys not admitted get the default value.
        """
        keys = self._keys(keys)
        counts = tf.constant([], tf.int64) if counts is None else _integer_tensor(counts, "counts")
        values, admitted = self._ops.drl_kv_find_or_insert(
            self.resource_handle, keys, counts,
            step_or_clock(self._step, global_step))
        return self._with_dim(keys, values), admitted

    def update(self, keys, values, slots=None, global_step=None):
        """Assigns values [*keys.shape, dim] (and slots [*keys.shape, num_slots, dim]) of
        admitted keys and stamps their version with global_step (default:
        `self.step`); other keys are skipped. Returns the number of rows written."""
        keys = self._keys(keys)
        slots = tf.constant([], tf.float32) if slots is None else tf.cast(slots, tf.float32)
        return self._ops.drl_kv_update(self.resource_handle, keys, tf.cast(values, tf.float32),
                                       slots, step_or_clock(self._step, global_step))

    def apply_kernel(self, kernel, keys, grads, index=None, nonfinite_gradients="error"):
        """kernel(table handle, keys, grads, index, nonfinite_gradients) -> int64 rows
        updated: runs a sparse optimizer's kernel on the table (partitioned variables
        run it per shard). keys [N] and grads [N, dim], or with index [n] the
        distinct keys [N] and grads [n, dim] of n rows, index[j] the position of row
        j's key (the kernel sums each key's rows). The kernel checks the (summed) rows
        for NaN or Inf before it changes anything, and fails ('error') or skips them
        ('skip')."""
        return kernel(self.resource_handle, keys, grads, index, nonfinite_gradients)

    def remove(self, keys, log=True):
        """Removes keys with all their slots; returns how many were present. Unless
        `log` is False the table remembers them as removed (deltas: kv.deltas)."""
        return self._ops.drl_kv_remove(self.resource_handle, self._keys(keys), log=log)

    # ----- eviction ------------------------------------------------------------

    def _policy(self, kind):
        return next((p for p in self._eviction if isinstance(p, kind)), None)

    def evict(self, global_step, max_staleness: Optional[int] = None,
              min_freq: Optional[int] = None):
        """Removes keys with global_step - version > max_staleness and admitted keys
        with freq < min_freq. Thresholds default to the variable's eviction
        policies; returns the number of keys removed. global_step and the
        thresholds are integers in [0, 2**63 - 1]; staleness is exact over that
        whole range (no int64 wraparound)."""
        if max_staleness is None and self._policy(policies.StalenessEviction):
            max_staleness = self._policy(policies.StalenessEviction).max_staleness
        if min_freq is None and self._policy(policies.FrequencyEviction):
            min_freq = self._policy(policies.FrequencyEviction).min_freq
        if max_staleness is None and min_freq is None:
            raise ValueError("evict needs max_staleness or min_freq: pass one, or give the "
                             "variable an eviction policy")
        for arg, value in (("max_staleness", max_staleness), ("min_freq", min_freq)):
            if value is not None:
                check_int(value, arg, minimum=0)
        return self._evict(global_step, -1 if max_staleness is None else max_staleness,
                           0 if min_freq is None else min_freq)

    def _evict(self, global_step, max_staleness, min_freq):
        removed = self._ops.drl_kv_evict(self.resource_handle, as_step(global_step),
                                         tf.constant(max_staleness, tf.int64),
                                         tf.constant(min_freq, tf.int64))
        with tf.control_dependencies([self._evicted.assign_add(removed)]):
            return tf.identity(removed)

    def maybe_evict(self, global_step):
        """Runs each eviction policy that has `every_n_steps` when global_step is a
        multiple of it. Returns the number of keys removed (works in tf.function)."""
        step = as_step(global_step)
        removed = tf.constant(0, tf.int64)
        for policy in self._eviction:
            if policy.every_n_steps is None:
                continue
            if isinstance(policy, policies.StalenessEviction):
                thresholds = (policy.max_staleness, 0)
            else:
                thresholds = (-1, policy.min_freq)
            removed += tf.cond(tf.equal(step % policy.every_n_steps, 0),
                               lambda t=thresholds: self._evict(step, *t),
                               lambda: tf.constant(0, tf.int64))
        return removed

    # ----- inspection, export, import ------------------------------------------

    def stats(self):
        """{'admitted': keys with a row, 'pending': keys counted but not admitted,
        'bytes': memory held by the table, 'nonfinite_skipped': gradient rows holding
        NaN or Inf that sparse optimizers with nonfinite_gradients="skip" left out
        since the table was created} as int64 scalars. 'nonfinite_skipped' is a
        monitoring count of this process: it is not checkpointed."""
        s = self._ops.drl_kv_stats(self.resource_handle)
        return {"admitted": s[0], "pending": s[1], "bytes": s[2], "nonfinite_skipped": s[3]}

    def size(self):
        """Number of admitted keys."""
        return self._ops.drl_kv_stats(self.resource_handle)[0]

    def export(self) -> KVRecords:
        """Every record, from one consistent snapshot of the table."""
        out = self._ops.drl_kv_export(self.resource_handle, key_dtype=self._key_dtype)
        records = KVRecords(*out)
        records.values.set_shape([None, self._dim])
        records.slots.set_shape([None, None, self._dim])
        return records

    def import_records(self, records: KVRecords):
        """Replaces the table's contents with `records` (as `export` returns them)."""
        keys = tf.convert_to_tensor(records.keys)
        if keys.dtype != self._key_dtype:
            raise ValueError(f"cannot import {keys.dtype.name} keys into variable "
                             f"'{self._name}' with {self._key_dtype.name} keys")
        return self._ops.drl_kv_import(
            self.resource_handle, keys, tf.cast(records.values, tf.float32),
            tf.cast(records.freqs, tf.int64), tf.cast(records.versions, tf.int64),
            tf.cast(records.slots, tf.float32), tf.cast(records.admitted, tf.bool),
            tf.cast(records.bloom_counts, tf.int32))

    # ----- filling a table in parts (warm start) --------------------------------

    def clear(self, expected_records: int = 0):
        """Empties the table (records and Bloom filter), sized for about
        `expected_records` records that `insert_records` then adds in parts."""
        expected_records = check_int(expected_records, "expected_records", minimum=0)
        self._ops.drl_kv_clear(self.resource_handle, tf.constant(expected_records, tf.int64))

    def insert_records(self, chunk, replace=False):
        """Adds records: a snapshots.RecordChunk of numpy arrays (keys, values [n, dim], slots
        [n, num_slots, dim], freqs, versions of admitted keys; pending_keys,
        pending_freqs, pending_versions of keys not admitted yet). A key already in the
        table is an error (tf.errors.InvalidArgumentError), or with `replace` its
        record is replaced."""
        keys, values, slots, freqs, versions, pending_keys, pending_freqs, pending_versions = \
            chunk
        self._ops.drl_kv_insert(
            self.resource_handle, tf.constant(keys, self._key_dtype),
            tf.cast(values, tf.float32), tf.cast(slots, tf.float32), tf.cast(freqs, tf.int64),
            tf.cast(versions, tf.int64), tf.constant(pending_keys, self._key_dtype),
            tf.cast(pending_freqs, tf.int64), tf.cast(pending_versions, tf.int64),
            replace=replace)

    def bloom_counts(self):
        """int32 [bloom_filter_size]: the counters of the table's counting Bloom filter."""
        return self._ops.drl_kv_bloom_counts(self.resource_handle)

    def set_bloom_counts(self, counts):
        """Sets the counters of the table's counting Bloom filter (bloom_filter_size
        int32 values; none without one)."""
        self._ops.drl_kv_set_bloom_counts(self.resource_handle, tf.cast(counts, tf.int32))

    # ----- checkpointing (tf.train.Checkpoint and SavedModel) ------------------
    # Checkpoints stream the records through deeprec_lite.kv.checkpointing.

    @property
    def is_partition(self):
        """True for a shard of a PartitionedKVVariable (saved with that variable)."""
        return self._is_partition

    def _restore_legacy_tensors(self, restored_tensors):
        """Restores the tensors of a checkpoint of earlier releases (one tensor per
        field: KVRecords' plus slot_names and slot_inits)."""
        restored = dict(restored_tensors)
        names, inits = restored.pop("slot_names"), restored.pop("slot_inits")
        restored["bloom_counts"] = bloom_counts_of_shard(
            restored["bloom_counts"], self.bloom_filter_size, num_shards=1, shard=0)
        # The table may not have its optimizer's slots yet (restored before training).
        if tf.executing_eagerly():
            self.ensure_slots(dict(zip((n.decode() for n in names.numpy()),
                                       inits.numpy().tolist())))
            return self.import_records(KVRecords(**restored))
        with tf.control_dependencies([self._ops.drl_kv_set_slots(self.resource_handle, inits)]):
            return self.import_records(KVRecords(**restored))

    def __repr__(self):
        return (f"KVVariable(name={self._name!r}, dim={self._dim}, "
                f"key_dtype={self._key_dtype.name}, slots={list(self._slot_names)})")
