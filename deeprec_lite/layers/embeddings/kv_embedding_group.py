"""KVEmbeddingGroup: the KVEmbedding layers of many features, looked up in one op."""
from deeprec_lite.compat import keras
from deeprec_lite.layers.embeddings.kv_embedding import KVEmbedding, lookup_for_training


@keras.utils.register_keras_serializable(package="deeprec_lite")
class KVEmbeddingGroup(keras.layers.Layer):
    """Embeds the ids of several features, each through its own KVEmbedding layer, with
    one training lookup op for all of them (one per key dtype).

    Each member stays a layer and a table of its own: its name, combiner, admission,
    eviction, freq and version, export, checkpoint entries and warm-start mapping are
    those of the member, and its output is exactly what calling the member gives. The
    group only gathers the training lookups of the members whose table is grouped
    (``TableConfig.grouped``) into one ``DrlKvGroupFindOrInsert`` per key dtype and
    device (a partitioned table's shards join the op of their parameter server),
    which dedups each feature's ids, pools them (combiners, sequence padding; not for
    partitioned tables) and runs the tables in parallel; the others (and
    every inference call) look up as the member would.
    Members may share a table (``shared_table``): the shared table is looked up once
    per member, in member order. With KVOptimizer the members' tables are also
    updated in one fused op per sparse optimizer.

    Args:
      embeddings: the KVEmbedding layers, one per feature (F of them).

    Input shape: a list of F id tensors (member i's ids, any shape member i accepts), and
    optionally ``weights``: a list of F weight tensors or None. A group of one member
    also takes its bare id (and weight) tensor.
    Output shape: a list of F tensors, member i's output (``[B, D_i]``, or
    ``[B, L, D_i]`` for a sequence member).

    Example:
        >>> from deeprec_lite.layers import KVEmbeddingGroup, KVEmbedding
        >>> import tensorflow as tf
        >>> group = KVEmbeddingGroup([KVEmbedding(4, name="user"),
        ...                           KVEmbedding(4, combiner="mean", name="items")])
        >>> user, items = group([tf.constant([7, 9], tf.int64),
        ...                      tf.ragged.constant([[1, 2], [3]], dtype=tf.int64)],
        ...                     training=True)
        >>> user.shape, items.shape
        (TensorShape([2, 4]), TensorShape([2, 4]))

    References:
        No single paper. Looking up many tables in one kernel, with the backward fused
        into the optimizer, is the table-batched embedding of Mudigere et al.,
        "Software-Hardware Co-design for Fast and Scalable Training of Deep Learning
        Recommendation Models", ISCA 2022 (arXiv 2104.05158).
    """

    def __init__(self, embeddings, **kwargs):
        super().__init__(**kwargs)
        embeddings = list(embeddings)
        if not embeddings or not all(isinstance(e, KVEmbedding) for e in embeddings):
            raise ValueError(f"embeddings must be a non-empty list of KVEmbedding layers, got "
                             f"{embeddings!r}")
        self.embeddings = embeddings

    def build(self, input_shape):
        for member in self.embeddings:
            if not member.built:
                member.build(None)
        super().build(input_shape)

    def _check_list(self, values, name):
        if len(self.embeddings) == 1 and not isinstance(values, (list, tuple)):
            values = [values]  # Keras hands a one-element list input back as a bare tensor
        if not isinstance(values, (list, tuple)) or len(values) != len(self.embeddings):
            raise ValueError(f"{self.name}: {name} must be a list of {len(self.embeddings)} "
                             f"tensors, one per member, got {values!r}")
        return list(values)

    def call(self, ids, weights=None, training=None):
        training = bool(training) if training is not None else False
        ids = [m._ids(x) for m, x in zip(self.embeddings, self._check_list(ids, "ids"))]
        weights = [None] * len(ids) if weights is None else self._check_list(weights, "weights")
        weights = [m._weights(x, w) for m, x, w in zip(self.embeddings, ids, weights)]
        together = [i for i, m in enumerate(self.embeddings) if training and m.table.grouped]
        out = dict(zip(together, lookup_for_training([self.embeddings[i] for i in together],
                                                     [ids[i] for i in together],
                                                     [weights[i] for i in together])))
        return [out[i] if i in out else m._embed(ids[i], weights[i], training)
                for i, m in enumerate(self.embeddings)]

    def compute_mask(self, ids, mask=None):
        return [m.compute_mask(x) for m, x in zip(self.embeddings, self._check_list(ids, "ids"))]

    def get_config(self):
        config = super().get_config()
        tables = [m.kv for m in self.embeddings]
        config["embeddings"] = [keras.layers.serialize(m) for m in self.embeddings]
        # member i shares the table of member shares[i] (None: its own table)
        config["shares"] = [next((j for j in range(i) if tables[j] is t), None)
                            for i, t in enumerate(tables)]
        return config

    @classmethod
    def from_config(cls, config):
        config = dict(config)
        shares = config.pop("shares", None) or [None] * len(config["embeddings"])
        members = []
        for serialized, shared in zip(config.pop("embeddings"), shares):
            member_config = dict(serialized["config"])
            if shared is not None:
                member_config["shared_table"] = members[shared].kv
            members.append(KVEmbedding.from_config(member_config))
        return cls(members, **config)
