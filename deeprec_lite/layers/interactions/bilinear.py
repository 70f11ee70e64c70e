"""Bilinear: the FiBiNET bilinear interaction layer (Huang et al., RecSys 2019)."""
from deeprec_lite.compat import keras, tf
from deeprec_lite.layers._common import field_shape, fresh_initializer
from deeprec_lite.layers.interactions._pairs import pair_indices

_BILINEAR_TYPES = ("all", "each", "interaction")


@keras.utils.register_keras_serializable(package="deeprec_lite")
class Bilinear(keras.layers.Layer):
    """Bilinear interaction of every field pair: ``p_ij = (e_i W) * e_j`` for ``i < j``.

    ``*`` is the element-wise product, so each pair gives a ``D``-vector. Pairs come in
    ``np.triu_indices(F, 1)`` order. The ``D x D`` matrix ``W`` is

    - ``"all"``: one matrix shared by every pair (kernel ``(D, D)``);
    - ``"each"``: one per left field ``i`` (kernel ``(F - 1, D, D)``: the last field is never
      a left field);
    - ``"interaction"`` (default): one per pair (kernel ``(P, D, D)``).

    FiBiNET uses two of these layers with separate weights, one on ``E`` and one on
    ``SENET(E)``, and flattens their concatenation.

    Args:
        bilinear_type: ``"all"``, ``"each"`` or ``"interaction"`` (default).
        kernel_initializer: default ``"glorot_uniform"``.
        kernel_regularizer: optional regularizer.

    Input shape: ``[B, F, D]`` with ``F >= 2``.
    Output shape: ``[B, F*(F-1)/2, D]``.

    Example:
        >>> from deeprec_lite.layers import Bilinear
        >>> import tensorflow as tf
        >>> x = tf.random.normal([2, 4, 3])  # B=2, F=4, D=3
        >>> Bilinear(bilinear_type="each")(x).shape
        TensorShape([2, 6, 3])

    References:
        Huang, Zhang and Zhang, "FiBiNET: Combining Feature Importance and Bilinear Feature
        Interaction for Click-Through Rate Prediction", RecSys 2019.
    """

    def __init__(self, bilinear_type="interaction", kernel_initializer="glorot_uniform",
                 kernel_regularizer=None, **kwargs):
        super().__init__(**kwargs)
        if bilinear_type not in _BILINEAR_TYPES:
            raise ValueError(
                f"Bilinear: bilinear_type must be one of {_BILINEAR_TYPES}; "
                f"received bilinear_type={bilinear_type!r}")
        self.bilinear_type = bilinear_type
        self.kernel_initializer = keras.initializers.get(kernel_initializer)
        self.kernel_regularizer = keras.regularizers.get(kernel_regularizer)

    def build(self, input_shape):
        self.num_fields, dim = field_shape(input_shape, "Bilinear", min_fields=2)
        self.input_spec = keras.layers.InputSpec(ndim=3, axes={1: self.num_fields, 2: dim})
        pairs = self.num_fields * (self.num_fields - 1) // 2
        shape = {"all": (dim, dim), "each": (self.num_fields - 1, dim, dim),
                 "interaction": (pairs, dim, dim)}[self.bilinear_type]
        self.kernel = self.add_weight(
            name="kernel", shape=shape, trainable=True,
            initializer=fresh_initializer(self.kernel_initializer),
            regularizer=self.kernel_regularizer)
        super().build(input_shape)

    def call(self, inputs):
        rows, cols = (tf.constant(idx) for idx in pair_indices(self.num_fields))
        right = tf.gather(inputs, cols, axis=1)
        if self.bilinear_type == "all":  # project each field once, then pick the left ones
            left = tf.gather(tf.einsum("bfd,de->bfe", inputs, self.kernel), rows, axis=1)
        elif self.bilinear_type == "each":  # e_i W_i for the left fields i < F - 1
            left = tf.gather(tf.einsum("bfd,fde->bfe", inputs[:, :-1], self.kernel), rows, axis=1)
        else:
            left = tf.einsum("bpd,pde->bpe", tf.gather(inputs, rows, axis=1), self.kernel)
        return left * right

    def compute_output_shape(self, input_shape):
        shape = tf.TensorShape(input_shape)
        f = int(shape[1])
        return tf.TensorShape([shape[0], f * (f - 1) // 2, shape[2]])

    def get_config(self):
        config = super().get_config()
        config.update({
            "bilinear_type": self.bilinear_type,
            "kernel_initializer": keras.initializers.serialize(self.kernel_initializer),
            "kernel_regularizer": keras.regularizers.serialize(self.kernel_regularizer),
        })
        return config
