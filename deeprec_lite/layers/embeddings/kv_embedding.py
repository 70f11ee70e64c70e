"""KVEmbedding: a tf_keras layer over a KVVariable (raw int64 or string ids, no vocabulary).

How gradients reach the table under any train_step (functional, Sequential,
subclassed and tfrs.Model alike): each training call looks the batch's ids up
once (DrlKvGroupFindOrInsert dedups them in the op, one count and one row per
distinct id, and pools them: combiners, sequence padding), remembers the distinct
keys of the graph it was traced in (of the call, when eager) and ties the output to
a small trainable "gradient anchor" weight through a custom gradient. The anchor's
gradient is an IndexedSlices of the id rows' gradients [n, D] (DrlKvPoolingGrad of
the pooled output's gradient) with, for each id, its key's position among the
distinct keys.
`deeprec_lite.training.optimizers.KVOptimizer` recognizes anchors and applies the
sparse optimizer to the tables in one fused kernel per optimizer (`apply_gradients`
below), which sums each key's rows and updates it once, in the graph of the step;
every other weight goes to an ordinary tf_keras optimizer. `KVEmbeddingGroup` looks
up many layers in one op. Partitioned tables (parameter servers) look up and update
per shard with the same results.
"""
import weakref
from typing import List, NamedTuple, Optional

from deeprec_lite._checks import check_int, is_int
from deeprec_lite.compat import keras, tf
# after compat, which sets up TensorFlow's import
from tensorflow.python.eager import record as _record, tape as _tape  # pylint: disable=C0411
from deeprec_lite.kv import device_transfers, op_library
from deeprec_lite.kv.partitioned_variable import (KV_VARIABLES, PartitionedKVVariable,
                                                  parameter_server_devices)
from deeprec_lite.kv.sparse_optimizers import SparseOptimizer
from deeprec_lite.kv.table_config import TableConfig, as_table_config
from deeprec_lite.kv.variable import KVVariable

_COMBINERS = (None, "sum", "mean", "sqrtn")
# Where a model's KV tables can be saved (streamed shard by shard, every record).
TABLE_FORMATS = ("save the model as a SavedModel directory (model.save(path) without an "
                 ".keras or .h5 suffix), its weights as a TensorFlow checkpoint "
                 "(save_weights(path) without .h5), or with deeprec_lite.checkpoints.save")


@keras.utils.register_keras_serializable(package="deeprec_lite")
class KVEmbedding(keras.layers.Layer):
    """Embeds raw ids (int64 or string, no vocabulary) through a KV embedding table.

    Each id ``x`` owns a row ``T[x]`` of ``dim`` floats, created from ``initializer`` on the
    first training lookup that admits it (``admission``) and possibly evicted later
    (``eviction``). With ids ``x_1 .. x_L`` of one example and weights ``w_l`` (default 1)::

        sum:   e = sum_l w_l T[x_l]
        mean:  e = sum_l w_l T[x_l] / sum_l w_l
        sqrtn: e = sum_l w_l T[x_l] / sqrt(sum_l w_l^2)

    An example without ids gives 0. Ragged or sparse ids with ``combiner=None`` are summed.

    Training calls (training=True) count freq, admit and create keys; inference
    calls never insert or count (an unknown id gets ``default_value``). Several layers can
    share one table (``shared_table=other_layer.kv``), each with its own gradient anchor; a
    layer instance must be called once per training step, and the step's gradients
    applied in the graph (tf.function) of that call, as model.fit and the usual
    custom training loops do.

    Args:
      table: a `deeprec_lite.kv.TableConfig` (dim ``D``, key dtype, initializer, seed,
        default value, admission, eviction, shards), or an int: the dim of a table with
        the defaults.
      combiner: None, "sum", "mean" or "sqrtn" (multi-valued ids).
      sequence: return per-position embeddings and a mask instead of pooling.
      max_length: sequence mode: pad or truncate to this length.
      padding_id: sequence mode with dense ids: the id that marks padding.
      optimizer: a `deeprec_lite.kv.sparse_optimizers` optimizer for this table;
        None uses the KVOptimizer's default.
      shared_table: an existing KVVariable or PartitionedKVVariable to use instead
        of a new table (of the same dim).

    Input shape (B batch, L ids per example): ids ``[B]`` or ``[B, 1]``; with a combiner
    also dense ``[B, L]``, RaggedTensor ``[B, (L)]`` or SparseTensor ``[B, L]``, with
    optional ``weights`` of the same shape; ``sequence=True``: RaggedTensor ``[B, (L)]`` or
    dense ``[B, L]``.
    Output shape: ``[B, D]``; ``sequence=True``: ``[B, max_length or L, D]`` and a Keras
    mask ``[B, max_length or L]`` (ragged: real positions; dense: ``ids != padding_id``
    when ``padding_id`` is set).

    Example:
        >>> from deeprec_lite.layers import KVEmbedding
        >>> import tensorflow as tf
        >>> ids = tf.random.uniform([2, 3], maxval=1000, dtype=tf.int64)  # B=2, L=3
        >>> KVEmbedding(4, combiner="mean")(ids, training=True).shape
        TensorShape([2, 4])
        >>> from deeprec_lite.kv import CounterFilter, TableConfig
        >>> table = TableConfig(4, key_dtype="int64", admission=CounterFilter(2))
        >>> seq = KVEmbedding(table, sequence=True, max_length=5)
        >>> seq(tf.ragged.constant([[3, 7], [42]], dtype=tf.int64)).shape
        TensorShape([2, 5, 4])

    References:
        No single paper. Hash tables of raw ids with frequency-based admission and
        eviction of stale ids are described in Liu et al., "Monolith: Real Time
        Recommendation System With Collisionless Embedding Table", ORSUM workshop at
        RecSys 2022 (arXiv 2209.07663).
    """

    def __init__(self, table, combiner=None, sequence=False, max_length=None, padding_id=None,
                 optimizer=None, shared_table=None, **kwargs):
        super().__init__(**kwargs)
        if combiner not in _COMBINERS:
            raise ValueError(f"combiner must be one of {_COMBINERS}, got {combiner!r}")
        if sequence and combiner is not None:
            raise ValueError(f"sequence=True returns every position; combiner={combiner!r} "
                             "contradicts it")
        check_int(max_length, "max_length", minimum=1, none_ok=True)
        if optimizer is not None and not isinstance(optimizer, SparseOptimizer):
            raise ValueError(f"optimizer must be a deeprec_lite.kv.sparse_optimizers optimizer "
                             f"or None, got {optimizer!r}")
        if shared_table is not None and not isinstance(shared_table, KV_VARIABLES):
            raise ValueError(f"shared_table must be a KVVariable or PartitionedKVVariable, got "
                             f"{shared_table!r}")
        self.table = as_table_config(table)
        self.dim = self.table.dim
        self.key_dtype = self.table.key_dtype
        if padding_id is not None and not (
                is_int(padding_id) if self.key_dtype == "int64" else isinstance(padding_id,
                                                                                (str, bytes))):
            raise ValueError(f"padding_id must be an id of the table's key dtype "
                             f"({self.key_dtype}) or None, got {padding_id!r}")
        self.combiner = combiner
        self.sequence = sequence
        self.max_length = max_length
        self.padding_id = padding_id
        self.sparse_optimizer = optimizer
        self.kv = shared_table or self._new_table()
        if self.kv.dim != self.dim:
            raise ValueError(f"shared_table has dim {self.kv.dim}, but the table config has "
                             f"dim={self.dim}")
        self.supports_masking = sequence
        # (graph or None when eager, unique keys) of the last training call, read by
        # KVOptimizer in the same graph: no shared state, so workers of a
        # parameter-server cluster can train one layer concurrently.
        object.__setattr__(self, "_training_keys", (None, None))
        object.__setattr__(self, "_serving_table", None)  # not tracked: see set_serving_table

    def _new_table(self):
        args = dict(self.table.variable_arguments(), name=self.name)
        if self.table.num_shards is not None:
            return PartitionedKVVariable(num_shards=self.table.num_shards, **args)
        devices = parameter_server_devices() or []
        if len(devices) > 1:
            return PartitionedKVVariable(num_shards=len(devices), **args)
        # one table: in this process, or on the one parameter server
        return KVVariable(device=devices[0] if devices else "", **args)

    def build(self, input_shape):
        self.gradient_anchor = self.add_weight(
            name="kv_gradient_anchor", shape=(1, self.dim), initializer="zeros", trainable=True)
        self.gradient_anchor._drl_kv_embedding = self
        super().build(input_shape)

    def set_serving_table(self, table):
        """Attaches (None: detaches) a serving table, an object whose `lookup(keys)`
        returns rows [N, dim] with stock TensorFlow ops only. While one is attached,
        inference calls look up through it instead of the KV table, so a traced
        inference function needs no custom op (used by `deeprec_lite.export`). The
        table is not tracked by the layer."""
        object.__setattr__(self, "_serving_table", table)

    # ----- the lookup ---------------------------------------------------------

    def _inference_rows(self, unique_keys):
        serving = getattr(self, "_serving_table", None)
        if serving is not None:
            return serving.lookup(unique_keys)
        return self.kv.lookup(unique_keys)

    def _begin_training_lookup(self):
        """Checks that this layer may look up for training now; returns a weak reference
        to the graph of the call (None when eager)."""
        graph = self._check_one_training_call_per_graph()
        if self.kv.freq_counting == "first_epoch" and not self.kv.counting_driven:
            raise ValueError(
                f"{self.name}: table '{self.kv.name}' has freq_counting='first_epoch', which "
                "model.fit applies through callbacks.FreqCounting: train a KVModel (every zoo "
                "model is one), pass FreqCounting() in callbacks, or call "
                "kv.set_freq_counting(epoch == 0) in your own loop")
        return graph

    def _rows_shape(self, pooling):
        """The static shape of the rows the lookup gives: [n, D], or [B, max_length, D]
        for a sequence feature."""
        if pooling is not None and pooling.combiner == "sequence":
            return [None, self.max_length, self.dim]
        return [None, self.dim]

    def _tie(self, graph, rows, keys, pooling):
        """rows [n, D] of the step's ids, or with a pooling their pooled rows, tied to the
        gradient anchor; keys: the _StepKeys of the lookup, which the optimizer reads
        back. The anchor's gradient is IndexedSlices(d loss / d id rows [n, D], each
        id's position among the distinct keys (the index stays where the lookup made
        it, on the table's device); dense_shape [n, D]), or for a table with
        _remote_shards IndexedSlices(the rows summed per distinct id [U, D], range(U),
        [U, D])."""
        object.__setattr__(self, "_training_keys", (graph, keys))
        rows.set_shape(self._rows_shape(pooling))

        def grad(upstream):
            upstream = tf.convert_to_tensor(upstream)
            if pooling is not None:
                upstream = op_library.load().drl_kv_pooling_grad(
                    upstream, pooling.row_splits, pooling.weights, combiner=pooling.combiner)
            upstream.set_shape([None, self.dim])
            if keys.distinct_index is None:
                index = keys.index[0]
            else:  # summed here: each distinct id's gradient row goes to its shard once
                distinct = tf.add_n(keys.shard_sizes)
                upstream = tf.math.unsorted_segment_sum(upstream, keys.distinct_index,
                                                        distinct)
                index = tf.range(distinct)
            count = tf.shape(upstream, out_type=tf.int64)[0]
            return [tf.IndexedSlices(upstream, index, dense_shape=tf.stack(
                [count, tf.constant(self.dim, tf.int64)]))]

        return _tied_to_variable(rows, self.gradient_anchor, grad)

    def _update_entries(self, gradient, check_finite):
        """[(table or shard, distinct keys, index, gradient rows)] of this step's update
        from the anchor's gradient (see _tie); check_finite: fail on NaN or Inf before
        any shard of a partitioned table changes."""
        keys = self._keys_of_step()
        values = gradient.values if isinstance(gradient, tf.IndexedSlices) else gradient
        if keys.distinct_index is None:
            if isinstance(gradient, tf.IndexedSlices):
                index = gradient.indices
            else:  # a dense gradient [distinct keys, D]
                index = tf.range(tf.size(keys.unique[0], out_type=tf.int64))
            return [(self.kv, keys.unique[0], index, values)]
        if check_finite:
            values = op_library.load().drl_check_finite_gradients(values,
                                                                  table_name=self.kv.name)
        shards = _remote_shards(self.kv)
        parts = tf.split(values, keys.shard_sizes, num=len(shards))
        return list(zip(shards, keys.unique, keys.index, parts))

    def _check_one_training_call_per_graph(self):
        """A second training call in one traced step would replace the batch's keys
        that the first call's gradient refers to: refuse it (eager calls are not
        checked). Returns a weak reference to the graph (None when eager)."""
        if tf.executing_eagerly():
            return None
        graph = tf.compat.v1.get_default_graph()
        seen = self._training_keys[0]
        if seen is not None and seen() is graph:
            raise ValueError(f"{self.name}: a KVEmbedding layer can be called once per training "
                             "step; for several features on one table use one layer each, "
                             "sharing the table with shared_table=layer.kv")
        return weakref.ref(graph)

    def _keys_of_step(self):
        """The unique keys of this step's training call: made in the current graph or
        one it is nested in (the optimizer may run in a cond branch), or eagerly."""
        seen, keys = self._training_keys
        if seen is None and keys is not None and tf.executing_eagerly():
            return keys
        graph = None if tf.executing_eagerly() else tf.compat.v1.get_default_graph()
        while graph is not None and seen is not None:
            if seen() is graph:
                return keys
            graph = getattr(graph, "outer_graph", None)
        raise ValueError(f"{self.name}: gradients must be applied in the same step (and "
                         "tf.function) as the layer's training call that produced them")

    def _embed(self, ids, weights, training):
        """The layer's output for ids checked by _ids."""
        if training:
            return lookup_for_training([self], [ids], [weights])[0]
        unique, index = tf.unique(self._flat_ids(ids), out_idx=tf.int64)
        return self._output(ids, weights, tf.gather(self._inference_rows(unique), index))

    def _ids(self, ids):
        if isinstance(ids, tf.SparseTensor):
            ids = tf.RaggedTensor.from_sparse(ids)
        if self.kv.key_dtype == tf.int64 and ids.dtype != tf.int64:
            if not ids.dtype.is_integer:
                raise ValueError(f"{self.name}: ids must be integers for an int64 table, got "
                                 f"dtype {ids.dtype.name}")
            ids = tf.cast(ids, tf.int64)
        elif self.kv.key_dtype == tf.string and ids.dtype != tf.string:
            raise ValueError(f"{self.name}: ids must be strings for a string table, got dtype "
                             f"{ids.dtype.name}")
        return ids

    def call(self, ids, weights=None, training=None):
        training = bool(training) if training is not None else False
        ids = self._ids(ids)
        return self._embed(ids, self._weights(ids, weights), training)

    def _weights(self, ids, weights):
        """`weights` (None, or one per id) checked against `ids` as _ids returned them:
        dense weights of the ids' shape, or ragged (or sparse) weights of the ragged
        ids' row lengths."""
        if weights is None:
            return None
        if self.sequence or (self.combiner is None and not isinstance(ids, tf.RaggedTensor)):
            raise ValueError(f"{self.name}: weights are for pooled ids (a combiner, or ragged or "
                             f"sparse ids), but combiner={self.combiner!r} and "
                             f"sequence={self.sequence}")
        if isinstance(weights, tf.SparseTensor):
            weights = tf.RaggedTensor.from_sparse(weights)
        if not isinstance(weights, tf.RaggedTensor):
            weights = tf.convert_to_tensor(weights)
        if isinstance(weights, tf.RaggedTensor) != isinstance(ids, tf.RaggedTensor):
            raise ValueError(f"{self.name}: weights must be ragged (or sparse) exactly when the "
                             f"ids are, got weights {type(weights).__name__} for ids "
                             f"{type(ids).__name__}")
        message = f"{self.name}: weights must have the shape of the ids"
        if isinstance(ids, tf.RaggedTensor):
            check = _assert_same(weights.row_splits, ids.row_splits, message)
            with tf.control_dependencies([check]):
                return weights.with_flat_values(tf.identity(weights.flat_values))
        if not weights.shape.is_compatible_with(ids.shape):
            raise ValueError(f"{message} {ids.shape}, got {weights.shape}")
        with tf.control_dependencies([_assert_same(tf.shape(weights), tf.shape(ids), message)]):
            return tf.identity(weights)

    def _flat_ids(self, ids):
        """The flat vector [N] of `ids` (checked by _ids) that one lookup embeds."""
        if isinstance(ids, tf.RaggedTensor):
            return ids.flat_values
        if self.sequence:
            if ids.shape.rank != 2:
                raise ValueError(f"{self.name}: sequence ids must be ragged or dense [B, L], "
                                 f"got shape {ids.shape}")
        else:
            if ids.shape.rank not in (1, 2):
                raise ValueError(f"{self.name}: ids must have rank 1 or 2, got shape {ids.shape}")
            if self.combiner is None and ids.shape.rank == 2 and ids.shape[1] != 1:
                raise ValueError(f"{self.name}: ids of shape {ids.shape} need a combiner "
                                 "(or sequence=True)")
        return tf.reshape(ids, [-1])

    def _pooling(self, ids, weights):
        """How the training lookup op pools this layer's rows (the arithmetic of
        _output), or None where _output only reshapes them, or pools them after the
        gather of the distinct ids' rows (_remote_shards)."""
        if _remote_shards(self.kv) is not None:
            return None
        if isinstance(ids, tf.RaggedTensor):
            row_splits = tf.cast(ids.row_splits, tf.int64)
        elif ids.shape.rank == 1 or (self.combiner is None and not self.sequence) or (
                self.sequence and self.max_length is None):
            return None
        else:  # dense [B, L]
            shape = tf.shape(ids, out_type=tf.int64)
            row_splits = tf.range(shape[0] + 1) * shape[1]
        no_weights = tf.zeros([0], tf.float32)
        if self.sequence:
            max_length = -1 if self.max_length is None else self.max_length
            return _Pooling("sequence", row_splits, no_weights, max_length)
        w = no_weights if weights is None else _flat_weights(weights)
        return _Pooling(self.combiner or "sum", row_splits, w, -1)

    def _output(self, ids, weights, emb):
        """The layer's output from emb [N, D], the embeddings of _flat_ids(ids)."""
        if self.sequence:
            return self._sequence(ids, emb)
        if isinstance(ids, tf.RaggedTensor):
            return self._pool(emb, ids.value_rowids(), ids.nrows(), weights)
        if ids.shape.rank == 1 or self.combiner is None:
            return tf.reshape(emb, [-1, self.dim])
        batch = tf.shape(ids, out_type=tf.int64)[0]
        width = tf.shape(ids, out_type=tf.int64)[1]
        return self._pool(emb, tf.repeat(tf.range(batch), width), batch, weights)

    def _pool(self, emb, row_ids, num_rows, weights):
        w = tf.ones_like(row_ids, tf.float32) if weights is None else _flat_weights(weights)
        total = tf.math.unsorted_segment_sum(emb * w[:, None], row_ids, num_rows)
        if self.combiner in (None, "sum"):
            return total
        if self.combiner == "mean":
            norm = tf.math.unsorted_segment_sum(w, row_ids, num_rows)
        else:
            norm = tf.sqrt(tf.math.unsorted_segment_sum(w * w, row_ids, num_rows))
        return tf.math.divide_no_nan(total, norm[:, None])

    def _sequence(self, ids, emb):
        if isinstance(ids, tf.RaggedTensor):
            return ids.with_flat_values(emb).to_tensor(shape=[None, self.max_length, self.dim])
        out = tf.reshape(emb, tf.concat([tf.shape(ids), [self.dim]], 0))
        if self.max_length is not None:
            out = out[:, :self.max_length]
            pad = tf.maximum(self.max_length - tf.shape(out)[1], 0)
            out = tf.pad(out, [[0, 0], [0, pad], [0, 0]])
        return out

    def save_own_variables(self, store):
        """Keras calls this for .keras and .weights.h5 files, whose stores hold one
        in-memory array per weight: not a KV table (it refuses them; a KVModel refuses
        before anything is written)."""
        raise ValueError(f"{self.name}: a KV table cannot be saved to a .keras or "
                         f".weights.h5 file; {TABLE_FORMATS}")

    def load_own_variables(self, store):
        raise ValueError(f"{self.name}: a KV table cannot be loaded from a .keras or "
                         f".weights.h5 file; {TABLE_FORMATS}")

    def compute_mask(self, ids, mask=None):
        if not self.sequence:
            return None
        if isinstance(ids, tf.SparseTensor):
            ids = tf.RaggedTensor.from_sparse(ids)
        if isinstance(ids, tf.RaggedTensor):
            lengths = ids.row_lengths()
            width = self.max_length if self.max_length is not None else tf.reduce_max(lengths)
            return tf.sequence_mask(lengths, width)
        if self.padding_id is None:
            return None
        m = tf.not_equal(ids, tf.constant(self.padding_id, ids.dtype))
        if self.max_length is not None:
            m = m[:, :self.max_length]
            m = tf.pad(m, [[0, 0], [0, tf.maximum(self.max_length - tf.shape(m)[1], 0)]])
        return m

    def get_config(self):
        config = super().get_config()
        config.update({
            "table": self.table.get_config(),
            "combiner": self.combiner, "sequence": self.sequence,
            "max_length": self.max_length, "padding_id": self.padding_id,
            "optimizer": None if self.sparse_optimizer is None else {
                "class_name": type(self.sparse_optimizer).__name__,
                "config": self.sparse_optimizer.get_config()},
        })
        return config

    @classmethod
    def from_config(cls, config):
        from deeprec_lite.kv import sparse_optimizers
        config = dict(config)
        config["table"] = TableConfig.from_config(config["table"])
        if config.get("optimizer") is not None:
            opt = config["optimizer"]
            config["optimizer"] = getattr(sparse_optimizers, opt["class_name"])(**opt["config"])
        return cls(**config)


def _assert_same(a, b, message):
    """An op that fails with `message` unless tensors a and b have the same shape and
    values (shapes first: comparing values of other shapes would fail unnamed)."""
    shapes = tf.debugging.assert_equal(tf.shape(a, out_type=tf.int64),
                                       tf.shape(b, out_type=tf.int64), message=message)
    with tf.control_dependencies([shapes]):
        return tf.debugging.assert_equal(a, tf.cast(b, a.dtype), message=message)


def _flat_weights(weights):
    """The float32 vector of the weights (as KVEmbedding._weights returned them) of a
    layer's flat ids."""
    w = weights.flat_values if isinstance(weights, tf.RaggedTensor) else weights
    return tf.cast(tf.reshape(w, [-1]), tf.float32)


class _Pooling(NamedTuple):
    """How the training lookup op pools a layer's rows: combiner ("sum", "mean",
    "sqrtn" or "sequence"), row_splits [B + 1] of the examples over the flat ids,
    weights [n] (empty: all 1) and the sequence width max_length (-1: the longest)."""
    combiner: str
    row_splits: tf.Tensor
    weights: tf.Tensor
    max_length: int


class _StepKeys(NamedTuple):
    """What a training lookup of one layer found, per shard (one for an unpartitioned
    table): unique, the distinct keys the shard's lookup got; index, the position in
    them of each key it got. The _remote_shards of a table get the layer's distinct ids
    (DrlKvGroupRoute) with their counts: distinct_index, each id's position among them
    in shard order, and shard_sizes, how many each shard got (both None for other
    tables)."""
    unique: List[tf.Tensor]
    index: List[tf.Tensor]
    distinct_index: Optional[tf.Tensor] = None
    shard_sizes: Optional[List[tf.Tensor]] = None


def _tied_to_variable(tensor, variable, grad):
    """A copy of `tensor` whose gradient, on every GradientTape recording, flows to
    `variable` as grad(upstream) -> [gradient of the variable]. Unlike
    tf.custom_gradient, nothing reads the variable: on a parameter-server cluster the
    step makes no remote read of it."""
    tied = tf.identity(tensor)
    _tape.variable_accessed(variable)  # what a read would tell the tapes
    _record.record_operation("DrlKvTie", [tied], [variable.handle], grad)
    return tied


class _Routed(NamedTuple):
    """A layer's ids as its lookup ops get them: parts, [(table or shard, its ids, their
    counts or None: 1 each)]; distinct_index: for a table with _remote_shards, each id's
    position among the distinct ids of its shards' parts in order (else None)."""
    parts: List[tuple]
    distinct_index: Optional[tf.Tensor]


def _remote_shards(kv):
    """The shards (the table itself when unpartitioned) of a table whose lookups send
    each distinct id once: a partitioned table, or one on a parameter server; else None
    (the lookup op gets the ids as they are and pools their rows)."""
    if not isinstance(kv, KVVariable):
        return kv.shards
    return [kv] if device_transfers.on_parameter_server(kv.device) else None


def _route(layers, flat):
    """The _Routed ids of each layer from its flat ids: those of the tables with
    _remote_shards routed to them by one DrlKvGroupRoute per key dtype."""
    shards = [_remote_shards(layer.kv) for layer in layers]
    routed = [_Routed([(layer.kv, ids, None)], None) if s is None else None
              for layer, ids, s in zip(layers, flat, shards)]
    by_dtype = {}
    for l, r in enumerate(routed):
        if r is None:
            by_dtype.setdefault(layers[l].kv.key_dtype, []).append(l)
    for members in by_dtype.values():
        num_shards = [len(shards[l]) for l in members]
        out = op_library.load().drl_kv_group_route(
            [flat[l] for l in members], M=sum(num_shards), num_shards=num_shards)
        first = 0
        for l, n, index in zip(members, num_shards, out.index):
            parts = zip(shards[l], out.keys[first:first + n], out.counts[first:first + n])
            routed[l] = _Routed(list(parts), index)
            first += n
    return routed


def _group_inputs(device, ids, counts, poolings):
    """(ids, counts, row_splits, weights) of a group lookup op on `device` from the
    members' ids, counts (None: 1 each) and _Poolings (None: rows of their own); empty
    tensors where None. To a parameter server each kind is sent as one tensor
    (device_transfers), int64 ids with the counts."""
    pooled = [i for i, p in enumerate(poolings) if p is not None]
    counted = [i for i, c in enumerate(counts) if c is not None]
    row_splits = [poolings[i].row_splits for i in pooled]
    weights = [poolings[i].weights for i in pooled]
    counts = [counts[i] for i in counted]
    ids = list(ids)
    if device_transfers.on_parameter_server(device):
        if ids[0].dtype == tf.int64:
            moved = device_transfers.move_together(ids + counts, device)
            ids, counts = moved[:len(ids)], moved[len(ids):]
        else:
            ids, counts = (device_transfers.move_together(t, device) for t in (ids, counts))
        row_splits, weights = (device_transfers.move_together(t, device)
                               for t in (row_splits, weights))
    with tf.device(device):
        all_counts = [tf.zeros([0], tf.int64)] * len(ids)
        all_splits = [tf.zeros([0], tf.int64)] * len(ids)
        all_weights = [tf.zeros([0], tf.float32)] * len(ids)
    for i, c in zip(counted, counts):
        all_counts[i] = c
    for i, s, w in zip(pooled, row_splits, weights):
        all_splits[i], all_weights[i] = s, w
    return ids, all_counts, all_splits, all_weights


def lookup_for_training(layers, ids, weights):
    """The training outputs of several KVEmbedding layers, from their ids (checked by
    _ids) and weights (or None) as `call` takes them, with one lookup op per key dtype
    and device (a table group; the distinct ids of a partitioned table or one on a
    parameter server are routed to their shards' ops, each once with its count). Each
    distinct id is counted once with its number of occurrences; the op also pools
    (combiners, sequence padding) the rows of the other tables, and each layer's rows
    are tied to its gradient anchor."""
    graphs = [layer._begin_training_lookup() for layer in layers]
    flat = [layer._flat_ids(x) for layer, x in zip(layers, ids)]
    poolings = [layer._pooling(x, w) for layer, x, w in zip(layers, ids, weights)]
    routed = _route(layers, flat)
    groups = {}
    for l, r in enumerate(routed):
        for s, (table, _, _) in enumerate(r.parts):
            groups.setdefault((table.key_dtype, table.device), []).append((l, s))
    found = {}
    ops = op_library.load()
    for (_, device), members in groups.items():
        pooled = [poolings[l] for l, _ in members]
        ids_, counts, row_splits, weights_ = _group_inputs(
            device, [routed[l].parts[s][1] for l, s in members],
            [routed[l].parts[s][2] for l, s in members], pooled)
        out = ops.drl_kv_group_find_or_insert(
            [routed[l].parts[s][0].resource_handle for l, s in members], ids_,
            [layers[l].kv.step.value() for l, _ in members],
            row_splits=row_splits, weights=weights_, counts=counts,
            combiners=["none" if p is None else p.combiner for p in pooled],
            max_lengths=[-1 if p is None else p.max_length for p in pooled])
        rows_ = list(out.rows)
        for (l, _), r in zip(members, rows_):
            r.set_shape(layers[l]._rows_shape(poolings[l]))
        if device_transfers.on_parameter_server(device):
            rows_ = device_transfers.move_together(rows_, to_device="", from_device=device)
        found.update(zip(members, zip(rows_, out.unique_keys, out.index)))
    outputs = []
    for l, (layer, r) in enumerate(zip(layers, routed)):
        rows_, unique, index = zip(*(found[(l, s)] for s in range(len(r.parts))))
        if r.distinct_index is None:
            value, keys = rows_[0], _StepKeys(list(unique), list(index))
        else:
            value = tf.gather(tf.concat(rows_, 0), r.distinct_index)
            sizes = [tf.size(part_ids, out_type=tf.int64) for _, part_ids, _ in r.parts]
            keys = _StepKeys(list(unique), list(index), r.distinct_index, sizes)
        tied = layer._tie(graphs[l], value, keys, poolings[l])
        outputs.append(tied if poolings[l] is not None
                       else layer._output(ids[l], weights[l], tied))
    return outputs


def apply_gradients(layer_gradients, sparse_optimizer, global_step):
    """Applies the gradient anchors' gradients [(KVEmbedding layer, gradient)] to their
    tables with one fused update per sparse optimizer (a layer's own `optimizer`, else
    `sparse_optimizer`) for the grouped tables (TableConfig.grouped) and one per
    ungrouped table, then, after all of them, sets each table's step and runs its
    eviction policies.
    Returns the ops to depend on (KVOptimizer calls it in the step's graph)."""
    groups = {}
    for layer, gradient in layer_gradients:
        optimizer = layer.sparse_optimizer or sparse_optimizer
        group = (id(optimizer), None if layer.table.grouped else id(layer))
        groups.setdefault(group, (optimizer, []))[1].append((layer, gradient))
    updated = []
    for optimizer, members in groups.values():
        with tf.init_scope():
            for layer, _ in members:
                layer.kv.ensure_slots(optimizer.slots)
        check_finite = optimizer.nonfinite_gradients == "error"
        entries = [entry for layer, gradient in members
                   for entry in layer._update_entries(gradient, check_finite)]
        updated += optimizer.apply_indexed(*(list(column) for column in zip(*entries)),
                                           global_step)
    # Evictions after every update: a table shared by layers of different groups keeps
    # the keys any of them updated in this step.
    tables = list({id(layer.kv): layer.kv for layer, _ in layer_gradients}.values())
    done = []
    with tf.control_dependencies(updated):
        for kv in tables:
            done.append(kv.step.assign(global_step))
            done.append(kv.maybe_evict(global_step))
    return done
