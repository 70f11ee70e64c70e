"""AutoDis: embeddings for numerical features via soft discretization (Guo et al., KDD 2021)."""
from deeprec_lite._checks import check_positive_int
from deeprec_lite.compat import keras, tf
from deeprec_lite.layers._common import check_choice, check_float, fresh_initializer

_NAME = "AutoDis"
_DISCRETIZERS = ("linear", "paper")
_AGGREGATIONS = ("weighted_average", "max", "top_k")


@keras.utils.register_keras_serializable(package="deeprec_lite")
class AutoDis(keras.layers.Layer):
    """AutoDis numeric-feature embedding: a soft assignment of each scalar to meta-embeddings.

    Each numeric field ``j`` owns ``H`` meta-embeddings ``ME_j`` (``H x D``). A scalar
    ``x`` (normalize it first, e.g. min-max or log) is softly assigned to them:

    * ``discretizer="paper"``: ``h = LeakyReLU(w_j x)``, ``x~ = W_j h + skip_factor * h``
      (``w_j`` in R^H, ``W_j`` H x H, no biases);
    * ``discretizer="linear"`` (the official MindSpore code): ``x~ = x w_j``;

    then ``p = softmax(x~ / temperature)`` over the ``H`` buckets and

    * ``aggregation="weighted_average"``: ``e_j = sum_h p_h ME_{j,h}`` (best in the paper);
    * ``"max"``: the meta-embedding of ``argmax_h p_h``;
    * ``"top_k"``: the (unweighted) sum of the ``top_k`` meta-embeddings with the largest ``p_h``.

    With ``"max"`` / ``"top_k"`` no gradient reaches the discretizer (hard selection).

    Args:
        embedding_dim: ``D``.
        num_buckets: ``H``, meta-embeddings per field (official default 20).
        temperature: ``tau > 0`` (official code 1e-5, nearly hard; default 1.0).
        discretizer: ``"paper"`` (default) or ``"linear"``.
        skip_factor: ``alpha`` of the paper's skip connection (default 0.1).
        leaky_relu_alpha: negative slope of the LeakyReLU (default 0.01).
        aggregation: ``"weighted_average"`` (default), ``"max"`` or ``"top_k"``.
        top_k: number of meta-embeddings summed for ``"top_k"`` (``1 <= top_k <= H``).
        meta_embeddings_initializer, meta_embeddings_regularizer: for ``ME``.
        kernel_initializer, kernel_regularizer: for ``w`` and ``W``.

    Input shape: ``[B, F]`` floats, one scalar per numeric field.
    Output shape: ``[B, F, D]``.

    Example:
        >>> from deeprec_lite.layers import AutoDis
        >>> import tensorflow as tf
        >>> x = tf.random.uniform([2, 3])  # B=2, F=3 normalized numeric features
        >>> AutoDis(embedding_dim=4, num_buckets=5)(x).shape
        TensorShape([2, 3, 4])

    References:
        Guo et al., "An Embedding Learning Framework for Numerical Features in CTR
        Prediction", KDD 2021 (arXiv 2012.08986).
    """

    def __init__(self, embedding_dim, num_buckets=20, temperature=1.0, discretizer="paper",
                 skip_factor=0.1, leaky_relu_alpha=0.01, aggregation="weighted_average",
                 top_k=1, meta_embeddings_initializer="random_normal",
                 meta_embeddings_regularizer=None, kernel_initializer="glorot_uniform",
                 kernel_regularizer=None, **kwargs):
        super().__init__(**kwargs)
        self.embedding_dim = check_positive_int(embedding_dim, "embedding_dim", _NAME)
        self.num_buckets = check_positive_int(num_buckets, "num_buckets", _NAME)
        self.temperature = check_float(temperature, "temperature", _NAME, low=0.0, low_open=True)
        self.discretizer = check_choice(discretizer, _DISCRETIZERS, "discretizer", _NAME)
        self.skip_factor = check_float(skip_factor, "skip_factor", _NAME)
        self.leaky_relu_alpha = check_float(leaky_relu_alpha, "leaky_relu_alpha", _NAME, low=0.0)
        self.aggregation = check_choice(aggregation, _AGGREGATIONS, "aggregation", _NAME)
        self.top_k = check_positive_int(top_k, "top_k", _NAME)
        if self.top_k > self.num_buckets:
            raise ValueError(f"{_NAME}: top_k must be at most num_buckets={self.num_buckets}; "
                             f"received top_k={top_k!r}")
        self.meta_embeddings_initializer = keras.initializers.get(meta_embeddings_initializer)
        self.meta_embeddings_regularizer = keras.regularizers.get(meta_embeddings_regularizer)
        self.kernel_initializer = keras.initializers.get(kernel_initializer)
        self.kernel_regularizer = keras.regularizers.get(kernel_regularizer)

    def build(self, input_shape):
        shape = tf.TensorShape(input_shape)
        if shape.rank != 2 or shape[1] is None or shape[1] < 1:
            raise ValueError(f"{_NAME} expects numeric inputs of shape (batch, num_fields) with "
                             f"known num_fields >= 1; received input_shape={shape}")
        f, h = int(shape[1]), self.num_buckets
        self.input_spec = keras.layers.InputSpec(ndim=2, axes={1: f})
        self.meta_embeddings = self.add_weight(
            name="meta_embeddings", shape=(f, h, self.embedding_dim),
            initializer=fresh_initializer(self.meta_embeddings_initializer),
            regularizer=self.meta_embeddings_regularizer)
        self.projection = self.add_weight(
            name="projection", shape=(f, h), initializer=fresh_initializer(self.kernel_initializer),
            regularizer=self.kernel_regularizer)
        self.bucket_kernel = None
        if self.discretizer == "paper":
            self.bucket_kernel = self.add_weight(
                name="bucket_kernel", shape=(f, h, h),
                initializer=fresh_initializer(self.kernel_initializer),
                regularizer=self.kernel_regularizer)
        super().build(input_shape)

    def bucket_logits(self, inputs):
        """``x~ / temperature``: ``(batch, num_fields, H)``."""
        x = tf.cast(inputs, self.compute_dtype)
        logits = x[:, :, None] * self.projection[None]
        if self.discretizer == "paper":
            h = tf.nn.leaky_relu(logits, alpha=self.leaky_relu_alpha)
            logits = tf.einsum("bfh,fhk->bfk", h, self.bucket_kernel) + self.skip_factor * h
        return logits / self.temperature

    def bucket_weights(self, inputs):
        """The soft assignment ``p``: ``(batch, num_fields, H)``, each row sums to 1."""
        return tf.nn.softmax(self.bucket_logits(inputs), axis=-1)

    def call(self, inputs):
        p = self.bucket_weights(inputs)
        if self.aggregation == "max":
            p = tf.one_hot(tf.argmax(p, axis=-1), self.num_buckets, dtype=p.dtype)
        elif self.aggregation == "top_k":
            idx = tf.math.top_k(p, k=self.top_k).indices
            p = tf.reduce_sum(tf.one_hot(idx, self.num_buckets, dtype=p.dtype), axis=-2)
        return tf.einsum("bfh,fhd->bfd", p, self.meta_embeddings)

    def compute_output_shape(self, input_shape):
        return tf.TensorShape(input_shape).concatenate([self.embedding_dim])

    def get_config(self):
        config = super().get_config()
        config.update({
            "embedding_dim": self.embedding_dim,
            "num_buckets": self.num_buckets,
            "temperature": self.temperature,
            "discretizer": self.discretizer,
            "skip_factor": self.skip_factor,
            "leaky_relu_alpha": self.leaky_relu_alpha,
            "aggregation": self.aggregation,
            "top_k": self.top_k,
            "meta_embeddings_initializer": keras.initializers.serialize(
                self.meta_embeddings_initializer),
            "meta_embeddings_regularizer": keras.regularizers.serialize(
                self.meta_embeddings_regularizer),
            "kernel_initializer": keras.initializers.serialize(self.kernel_initializer),
            "kernel_regularizer": keras.regularizers.serialize(self.kernel_regularizer),
        })
        return config
