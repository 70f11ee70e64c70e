"""SENET: squeeze-and-excitation field re-weighting of FiBiNET (Huang et al., RecSys 2019)."""
from deeprec_lite.compat import keras, tf
from deeprec_lite.layers._common import check_float, field_shape, fresh_initializer

_SQUEEZES = ("mean", "max")


@keras.utils.register_keras_serializable(package="deeprec_lite")
class SENET(keras.layers.Layer):
    """Squeeze-and-excitation over fields: ``V = E * A[..., None]``.

    ``z = squeeze_d(E)`` (``[B, F]``, mean or max over the embedding dim),
    ``A = excitation(relu(z @ W1) @ W2)`` with ``W1``: ``F x R``, ``W2``: ``R x F``, no biases,
    ``R = max(1, int(F / reduction_ratio))``; ``A`` is one weight per field.

    Args:
        reduction_ratio: positive number r (default 3).
        squeeze: ``"mean"`` (default, FiBiNET) or ``"max"`` (the variant of the
            feature-refinement survey).
        excitation_activation: activation giving the field weights (default ``"relu"``, as
            FiBiNET; ReLU can zero whole fields (dead gates), ``"sigmoid"`` keeps every field
            alive).
        kernel_initializer: default ``"glorot_uniform"``.
        kernel_regularizer: optional regularizer of ``W1`` and ``W2``.

    Input shape: ``[B, F, D]``.
    Output shape: ``[B, F, D]``.

    Example:
        >>> from deeprec_lite.layers import SENET
        >>> import tensorflow as tf
        >>> x = tf.random.normal([2, 6, 3])  # B=2, F=6, D=3
        >>> SENET(reduction_ratio=3, excitation_activation="sigmoid")(x).shape
        TensorShape([2, 6, 3])

    References:
        - Huang, Zhang and Zhang, "FiBiNET: Combining Feature Importance and Bilinear Feature
          Interaction for Click-Through Rate Prediction", RecSys 2019.
        - Wang et al., "A Comprehensive Summarization and Evaluation of Feature Refinement
          Modules for CTR Prediction", arXiv 2311.04625, 2023 (max squeeze).
    """

    def __init__(self, reduction_ratio=3, squeeze="mean", excitation_activation="relu",
                 kernel_initializer="glorot_uniform", kernel_regularizer=None, **kwargs):
        super().__init__(**kwargs)
        check_float(reduction_ratio, "reduction_ratio", "SENET", low=0, low_open=True)
        if squeeze not in _SQUEEZES:
            raise ValueError(
                f"SENET: squeeze must be one of {_SQUEEZES}; received squeeze={squeeze!r}")
        self.reduction_ratio = reduction_ratio
        self.squeeze = squeeze
        self.excitation_activation = keras.activations.get(excitation_activation)
        self.kernel_initializer = keras.initializers.get(kernel_initializer)
        self.kernel_regularizer = keras.regularizers.get(kernel_regularizer)

    def build(self, input_shape):
        num_fields, dim = field_shape(input_shape, "SENET")
        self.input_spec = keras.layers.InputSpec(ndim=3, axes={1: num_fields, 2: dim})
        reduced = max(1, int(num_fields / self.reduction_ratio))
        self.squeeze_kernel = self.add_weight(
            name="squeeze_kernel", shape=(num_fields, reduced), trainable=True,
            initializer=fresh_initializer(self.kernel_initializer),
            regularizer=self.kernel_regularizer)
        self.excitation_kernel = self.add_weight(
            name="excitation_kernel", shape=(reduced, num_fields), trainable=True,
            initializer=fresh_initializer(self.kernel_initializer),
            regularizer=self.kernel_regularizer)
        super().build(input_shape)

    def call(self, inputs):
        reduce = tf.reduce_mean if self.squeeze == "mean" else tf.reduce_max
        z = reduce(inputs, axis=-1)
        a = tf.nn.relu(tf.matmul(z, self.squeeze_kernel))
        weights = self.excitation_activation(tf.matmul(a, self.excitation_kernel))
        return inputs * weights[:, :, None]

    def compute_output_shape(self, input_shape):
        return tf.TensorShape(input_shape)

    def get_config(self):
        config = super().get_config()
        config.update({
            "reduction_ratio": self.reduction_ratio,
            "squeeze": self.squeeze,
            "excitation_activation": keras.activations.serialize(self.excitation_activation),
            "kernel_initializer": keras.initializers.serialize(self.kernel_initializer),
            "kernel_regularizer": keras.regularizers.serialize(self.kernel_regularizer),
        })
        return config
