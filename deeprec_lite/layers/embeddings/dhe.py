"""DHEEmbedding: Deep Hash Embedding, an embedding without a table (Kang et al., KDD 2021)."""
import math

import numpy as np

from deeprec_lite._checks import check_positive_int
from deeprec_lite.compat import keras, tf
from deeprec_lite.layers._common import build_sublayer, check_choice, check_units, fresh_initializer
from deeprec_lite.layers.embeddings._universal_hash import (DEFAULT_PRIME, check_hash_params,
                                                            check_prime, check_seed,
                                                            draw_hash_params, universal_hash)

_ENCODINGS = ("uniform", "gaussian")


@keras.utils.register_keras_serializable(package="deeprec_lite")
class DHEEmbedding(keras.layers.Layer):
    """Deep Hash Embedding: ``id -> k hashes -> dense code -> MLP``, no embedding table.

    ``e(x) = MLP([u_1(x), ..., u_k(x)])``. Encoding (no parameters, deterministic): ``k``
    universal hashes ``h_i(x) in [0, m)`` (``m = num_buckets``) computed in int64 with
    ``floormod`` (see ``_universal_hash``), then

    * ``encoding="uniform"``: ``u_i = 2 h_i / (m - 1) - 1`` in ``[-1, 1]``;
    * ``encoding="gaussian"``: Box-Muller on consecutive pairs of hashes,
      ``a = (h_{2i}+1)/(m+1)``, ``b = (h_{2i+1}+1)/(m+1)`` ->
      ``sqrt(-2 log a) cos(2 pi b)`` and ``sqrt(-2 log a) sin(2 pi b)`` (all cosine codes
      first, then all sine codes; ``num_hashes`` must be even).

    Decoding: ``Dense -> BatchNorm -> activation`` for each of ``hidden_units`` (the paper
    uses Mish and BatchNorm), then ``Dense(output_dim)`` with no activation. Every id,
    including ones never seen in training, gets a valid embedding. The paper's hash is
    ``((a x + b) mod p) mod m``; this layer hashes the id's three limbs
    (``((a0 x0 + a1 x1 + a2 x2 + b) mod p) mod m``) so that large int64 ids do not collide
    modulo ``p``.

    The hash parameters are drawn from ``seed`` and stored explicitly in ``get_config``
    (``hash_params``, ``prime``), so a served model hashes exactly as the trained one.

    Args:
        output_dim: embedding dimension ``D``.
        num_hashes: ``k``, the width of the dense code (paper: 1024).
        num_buckets: ``m``, the range of each hash (paper: 1e6); ``2 <= m <= prime``.
        hidden_units: widths of the hidden decoder layers (paper Figure 1: 1800, 1800).
        activation: activation of the hidden layers (default ``"mish"``).
        use_batch_norm: BatchNormalization after each hidden Dense (default True).
        encoding: ``"uniform"`` or ``"gaussian"``.
        seed: seed of the hash parameters when ``hash_params`` is None.
        hash_params: optional ``(num_hashes, 4)`` integers ``(a0, a1, a2, b)`` in ``[0, prime)``.
        prime: the prime ``p < 2^31`` of the hash family (default ``2^31 - 1``).
        kernel_initializer, kernel_regularizer: for the decoder Dense kernels.

    Input shape: integer ids of any shape ``S`` (e.g. ``[B]`` or ``[B, F]``).
    Output shape: ``S + [D]`` (e.g. ``[B, F, D]``).

    Example:
        >>> from deeprec_lite.layers import DHEEmbedding
        >>> import tensorflow as tf
        >>> ids = tf.random.uniform([2, 3], maxval=10**9, dtype=tf.int64)  # B=2, F=3
        >>> layer = DHEEmbedding(output_dim=4, num_hashes=16, num_buckets=1000, hidden_units=[32])
        >>> layer(ids).shape
        TensorShape([2, 3, 4])

    References:
        - Kang et al., "Learning to Embed Categorical Features without Embedding Tables for
          Recommendation", KDD 2021 (arXiv 2010.10784).
        - Carter and Wegman, "Universal Classes of Hash Functions", Journal of Computer and
          System Sciences, 1979.
    """

    def __init__(self, output_dim, num_hashes=1024, num_buckets=1_000_000,
                 hidden_units=(1800, 1800), activation="mish", use_batch_norm=True,
                 encoding="uniform", seed=0, hash_params=None, prime=DEFAULT_PRIME,
                 kernel_initializer="glorot_uniform", kernel_regularizer=None, **kwargs):
        super().__init__(**kwargs)
        name = "DHEEmbedding"
        self.output_dim = check_positive_int(output_dim, "output_dim", name)
        self.num_hashes = check_positive_int(num_hashes, "num_hashes", name)
        self.prime = check_prime(prime, name)
        self.num_buckets = check_positive_int(num_buckets, "num_buckets", name)
        if not 2 <= self.num_buckets <= self.prime:
            raise ValueError(f"{name}: num_buckets must be in [2, prime={self.prime}]; "
                             f"received num_buckets={num_buckets!r}")
        self.hidden_units = check_units(hidden_units, "hidden_units", name)
        check_choice(encoding, _ENCODINGS, "encoding", name)
        if encoding == "gaussian" and self.num_hashes % 2:
            raise ValueError(f"{name}: the gaussian encoding pairs hashes, num_hashes must be "
                             f"even; received num_hashes={num_hashes!r}")
        self.encoding = encoding
        self.seed = check_seed(seed, name)
        if hash_params is None:
            params = draw_hash_params(self.num_hashes, self.seed, self.prime)
        else:
            params = check_hash_params(hash_params, self.num_hashes, self.prime, name)
        self.hash_params = params
        self.activation = keras.activations.get(activation)
        self.use_batch_norm = bool(use_batch_norm)
        self.kernel_initializer = keras.initializers.get(kernel_initializer)
        self.kernel_regularizer = keras.regularizers.get(kernel_regularizer)
        self.dense_layers = [
            keras.layers.Dense(u, kernel_initializer=fresh_initializer(self.kernel_initializer),
                               kernel_regularizer=self.kernel_regularizer, name=f"hidden_{i}")
            for i, u in enumerate(self.hidden_units)]
        self.norm_layers = [keras.layers.BatchNormalization(name=f"batch_norm_{i}")
                            for i in range(len(self.hidden_units))] if self.use_batch_norm else []
        self.output_layer = keras.layers.Dense(
            self.output_dim, kernel_initializer=fresh_initializer(self.kernel_initializer),
            kernel_regularizer=self.kernel_regularizer, name="output")

    def build(self, input_shape):
        width = self.num_hashes
        for i, dense in enumerate(self.dense_layers):
            build_sublayer(dense, (None, width))
            width = dense.units
            if self.use_batch_norm:
                build_sublayer(self.norm_layers[i], (None, width))
        build_sublayer(self.output_layer, (None, width))
        super().build(input_shape)

    def encode(self, ids):
        """The parameter-free dense code of ``ids``: float32 ``ids.shape + (num_hashes,)``."""
        if not tf.as_dtype(ids.dtype).is_integer:
            raise ValueError(f"DHEEmbedding expects integer ids; received dtype={ids.dtype!r}")
        h = tf.cast(universal_hash(ids, self.hash_params, self.prime, self.num_buckets), tf.float64)
        m = float(self.num_buckets)
        if self.encoding == "uniform":
            return tf.cast(2.0 * h / (m - 1.0) - 1.0, tf.float32)
        u1 = (h[..., 0::2] + 1.0) / (m + 1.0)
        u2 = (h[..., 1::2] + 1.0) / (m + 1.0)
        radius = tf.sqrt(-2.0 * tf.math.log(u1))
        angle = 2.0 * math.pi * u2
        return tf.cast(tf.concat([radius * tf.cos(angle), radius * tf.sin(angle)], -1), tf.float32)

    def call(self, inputs, training=None):
        ids = tf.convert_to_tensor(inputs)
        flat = tf.reshape(ids, [-1])
        h = tf.cast(self.encode(flat), self.compute_dtype)
        for i, dense in enumerate(self.dense_layers):
            h = dense(h)
            if self.use_batch_norm:
                h = self.norm_layers[i](h, training=training)
            h = self.activation(h)
        out = self.output_layer(h)
        out = tf.reshape(out, tf.concat([tf.shape(ids), [self.output_dim]], 0))
        out.set_shape(ids.shape.concatenate([self.output_dim]))
        return out

    def compute_output_shape(self, input_shape):
        return tf.TensorShape(input_shape).concatenate([self.output_dim])

    def get_config(self):
        config = super().get_config()
        config.update({
            "output_dim": self.output_dim,
            "num_hashes": self.num_hashes,
            "num_buckets": self.num_buckets,
            "hidden_units": list(self.hidden_units),
            "activation": keras.activations.serialize(self.activation),
            "use_batch_norm": self.use_batch_norm,
            "encoding": self.encoding,
            "seed": self.seed,
            "hash_params": np.asarray(self.hash_params).tolist(),
            "prime": self.prime,
            "kernel_initializer": keras.initializers.serialize(self.kernel_initializer),
            "kernel_regularizer": keras.regularizers.serialize(self.kernel_regularizer),
        })
        return config
