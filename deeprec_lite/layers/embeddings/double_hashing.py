"""DoubleHashingEmbedding: frequency-based double hashing (Zhang et al., RecSys 2020)."""
import numpy as np

from deeprec_lite._checks import check_positive_int
from deeprec_lite.compat import keras, tf
from deeprec_lite.layers._common import check_choice, fresh_initializer
from deeprec_lite.layers.embeddings._universal_hash import (DEFAULT_PRIME, check_hash_params,
                                                            check_prime, check_seed,
                                                            draw_hash_params, int64_array,
                                                            universal_hash)

_COMBINERS = ("sum", "concat")
_NAME = "DoubleHashingEmbedding"


def _frequent_ids(frequent_ids):
    ids = int64_array(frequent_ids, "frequent_ids", _NAME).ravel()
    if len(np.unique(ids)) != len(ids):
        raise ValueError(f"{_NAME}: frequent_ids must not repeat an id; "
                         f"received frequent_ids with {len(ids) - len(np.unique(ids))} duplicates")
    return ids


@keras.utils.register_keras_serializable(package="deeprec_lite")
class DoubleHashingEmbedding(keras.layers.Layer):
    """Frequency-based double hashing: dedicated rows for frequent ids, two hashes for the rest.

    The ``N`` most frequent ids (``frequent_ids``, counted on the training split, e.g. with
    :meth:`select_frequent_ids`) each own a row of a ``(N, D)`` table ``T0``. Every other id is
    hashed by two independent universal hash functions (int64 arithmetic, see
    ``_universal_hash``) into ``num_hash_buckets = M`` rows, and the two rows are combined:

    * ``combiner="sum"``: two ``(M, D)`` tables, ``e = T1[h1(x)] + T2[h2(x)]``;
    * ``combiner="concat"``: two ``(M, D/2)`` tables, ``e = [T1[h1(x)], T2[h2(x)]]``.

    So ``e(x) = T0[row(x)]`` if ``x`` is frequent, else the combination above. With
    ``shared_hash_table=True`` both hashes index one table. Two infrequent ids get the
    same embedding only if both hashes collide (about ``1/M^2``). Parameter count:
    ``N*D + 2*M*D`` (sum), ``N*D + M*D`` (concat, or sum with a shared table), ``N*D + M*D/2``
    (concat with a shared table); :meth:`parameter_count` computes it.

    Frequent ids are found with a sorted key constant and ``tf.searchsorted`` (stock ops,
    servable without custom kernels). ``frequent_ids`` and the hash parameters are part of
    ``get_config``, so a reloaded model maps ids exactly as the trained one (for a very
    large ``N`` the config is correspondingly large).

    Args:
        output_dim: embedding dimension ``D`` (even for ``"concat"``).
        frequent_ids: the ids with dedicated rows (distinct int64 values; may be empty).
        num_hash_buckets: ``M``, rows of each hashed table (``2 <= M <= prime``).
        combiner: ``"sum"`` or ``"concat"``.
        shared_hash_table: one hashed table for both hashes instead of two.
        seed: seed of the two hash functions when ``hash_params`` is None.
        hash_params: optional ``(2, 4)`` integers in ``[0, prime)``.
        prime: the prime of the hash family (default ``2^31 - 1``).
        embeddings_initializer, embeddings_regularizer: for all tables.

    Input shape: integer ids of any shape ``S`` (e.g. ``[B]`` or ``[B, F]``).
    Output shape: ``S + [D]``.

    Example:
        >>> from deeprec_lite.layers import DoubleHashingEmbedding
        >>> import tensorflow as tf
        >>> ids = tf.random.uniform([2, 3], maxval=100, dtype=tf.int64)  # B=2, F=3
        >>> layer = DoubleHashingEmbedding(output_dim=4, frequent_ids=[1, 2, 3],
        ...                                num_hash_buckets=16, combiner="concat")
        >>> layer(ids).shape
        TensorShape([2, 3, 4])

    References:
        Zhang et al., "Model Size Reduction Using Frequency Based Double Hashing for
        Recommender Systems", RecSys 2020 (arXiv 2007.14523).
    """

    def __init__(self, output_dim, frequent_ids, num_hash_buckets, combiner="sum",
                 shared_hash_table=False, seed=0, hash_params=None, prime=DEFAULT_PRIME,
                 embeddings_initializer="uniform", embeddings_regularizer=None, **kwargs):
        super().__init__(**kwargs)
        self.output_dim = check_positive_int(output_dim, "output_dim", _NAME)
        self.frequent_ids = _frequent_ids(frequent_ids)
        self.prime = check_prime(prime, _NAME)
        self.num_hash_buckets = check_positive_int(num_hash_buckets, "num_hash_buckets", _NAME)
        if not 2 <= self.num_hash_buckets <= self.prime:
            raise ValueError(f"{_NAME}: num_hash_buckets must be in [2, prime={self.prime}]; "
                             f"received num_hash_buckets={num_hash_buckets!r}")
        self.combiner = check_choice(combiner, _COMBINERS, "combiner", _NAME)
        if combiner == "concat" and self.output_dim % 2:
            raise ValueError(f"{_NAME}: combiner='concat' splits the embedding in two halves, "
                             f"output_dim must be even; received output_dim={output_dim!r}")
        self.shared_hash_table = bool(shared_hash_table)
        self.seed = check_seed(seed, _NAME)
        self.hash_params = (draw_hash_params(2, self.seed, self.prime) if hash_params is None
                            else check_hash_params(hash_params, 2, self.prime, _NAME))
        self.embeddings_initializer = keras.initializers.get(embeddings_initializer)
        self.embeddings_regularizer = keras.regularizers.get(embeddings_regularizer)
        self._sorted_order = np.argsort(self.frequent_ids, kind="stable")

    @staticmethod
    def select_frequent_ids(ids, top_n):
        """The ``top_n`` most frequent values of ``ids`` (ties: smaller id first), int64 numpy."""
        top_n = check_positive_int(top_n, "top_n", _NAME)
        values, counts = np.unique(np.asarray(ids, dtype=np.int64).ravel(), return_counts=True)
        order = np.lexsort((values, -counts))
        return values[order[:top_n]]

    @staticmethod
    def parameter_count(num_frequent, num_hash_buckets, output_dim, combiner="sum",
                        shared_hash_table=False):
        """``N*D + tables*M*width`` for the given configuration."""
        width = output_dim if combiner == "sum" else output_dim // 2
        tables = 1 if shared_hash_table else 2
        return num_frequent * output_dim + tables * num_hash_buckets * width

    def build(self, input_shape):
        width = self.output_dim if self.combiner == "sum" else self.output_dim // 2
        tables = 1 if self.shared_hash_table else 2
        self.frequent_embeddings = None
        if len(self.frequent_ids):
            self.frequent_embeddings = self.add_weight(
                name="frequent_embeddings", shape=(len(self.frequent_ids), self.output_dim),
                initializer=fresh_initializer(self.embeddings_initializer),
                regularizer=self.embeddings_regularizer)
        self.hash_embeddings = self.add_weight(
            name="hash_embeddings", shape=(tables * self.num_hash_buckets, width),
            initializer=fresh_initializer(self.embeddings_initializer),
            regularizer=self.embeddings_regularizer)
        super().build(input_shape)

    def hash_ids(self, ids):
        """The two bucket indices of each id: int64 ``ids.shape + (2,)`` in ``[0, M)``."""
        return universal_hash(ids, self.hash_params, self.prime, self.num_hash_buckets)

    def frequent_rows(self, ids):
        """Row of each id in the frequent table, -1 for an infrequent id (int64, ``ids.shape``)."""
        ids = tf.cast(ids, tf.int64)
        if not len(self.frequent_ids):
            return -tf.ones_like(ids)
        keys = tf.constant(self.frequent_ids[self._sorted_order])
        flat = tf.reshape(ids, [1, -1])
        pos = tf.minimum(tf.searchsorted(keys[None], flat, out_type=tf.int64),
                         len(self.frequent_ids) - 1)
        found = tf.equal(tf.gather(keys, pos), flat)
        rows = tf.where(found, tf.gather(tf.constant(self._sorted_order, tf.int64), pos), -1)
        return tf.reshape(rows, tf.shape(ids))

    def call(self, inputs):
        ids = tf.convert_to_tensor(inputs)
        if not ids.dtype.is_integer:
            raise ValueError(f"{_NAME} expects integer ids; received dtype={ids.dtype!r}")
        buckets = self.hash_ids(ids)
        if not self.shared_hash_table:
            buckets = buckets + tf.constant([0, self.num_hash_buckets], tf.int64)
        parts = tf.gather(self.hash_embeddings, buckets)  # S x 2 x width
        if self.combiner == "sum":
            hashed = tf.reduce_sum(parts, axis=-2)
        else:
            hashed = tf.reshape(parts, tf.concat([tf.shape(ids), [self.output_dim]], 0))
        if self.frequent_embeddings is None:
            out = hashed
        else:
            rows = self.frequent_rows(ids)
            frequent = tf.gather(self.frequent_embeddings, tf.maximum(rows, 0))
            out = tf.where((rows >= 0)[..., None], frequent, hashed)
        out.set_shape(ids.shape.concatenate([self.output_dim]))
        return out

    def compute_output_shape(self, input_shape):
        return tf.TensorShape(input_shape).concatenate([self.output_dim])

    def get_config(self):
        config = super().get_config()
        config.update({
            "output_dim": self.output_dim,
            "frequent_ids": self.frequent_ids.tolist(),
            "num_hash_buckets": self.num_hash_buckets,
            "combiner": self.combiner,
            "shared_hash_table": self.shared_hash_table,
            "seed": self.seed,
            "hash_params": np.asarray(self.hash_params).tolist(),
            "prime": self.prime,
            "embeddings_initializer": keras.initializers.serialize(self.embeddings_initializer),
            "embeddings_regularizer": keras.regularizers.serialize(self.embeddings_regularizer),
        })
        return config
