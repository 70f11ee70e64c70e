"""CrossNet: the DCN v1 cross network (Wang et al., ADKDD 2017)."""
from deeprec_lite.compat import keras, tf
from deeprec_lite.layers.interactions._cross_base import CrossLayerBase


@keras.utils.register_keras_serializable(package="deeprec_lite")
class CrossNet(CrossLayerBase):
    """Stack of DCN v1 cross layers: ``x_{l+1} = x0 * (x_l . w_l) + b_l + x_l``.

    ``x_l . w_l`` is a scalar per example; ``w_l, b_l`` have shape ``(d,)``: ``2 d`` weights
    per layer. Every layer is a rank-1 update, so with zero biases ``x_L`` is a scalar
    multiple of ``x0`` per example.

    Args:
        num_layers: number of cross layers (default 3, FuxiCTR / BARS).
        kernel_initializer, bias_initializer: initializers of ``w_l`` (default
            ``"glorot_uniform"``) and ``b_l`` (default ``"zeros"``).
        kernel_regularizer, bias_regularizer: optional regularizers.

    Input shape: ``x0`` ``[B, d]`` (the stack starts from ``x = x0``; flatten ``[B, F, D]``
    embeddings to ``d = F*D`` first), or a list ``[x0, x]`` of two ``[B, d]`` tensors (the
    stack starts from ``x``).
    Output shape: ``[B, d]``.

    Example:
        >>> from deeprec_lite.layers import CrossNet
        >>> import tensorflow as tf
        >>> x0 = tf.random.normal([2, 12])  # B=2, d=12
        >>> CrossNet(num_layers=2)(x0).shape
        TensorShape([2, 12])

    References:
        Wang et al., "Deep & Cross Network for Ad Click Predictions", ADKDD 2017.
    """

    def __init__(self, num_layers=3, kernel_initializer="glorot_uniform", bias_initializer="zeros",
                 kernel_regularizer=None, bias_regularizer=None, **kwargs):
        super().__init__(num_layers, kernel_initializer, bias_initializer, kernel_regularizer,
                         bias_regularizer, **kwargs)

    def build(self, input_shape):
        dim = self._input_dim(input_shape)
        self.kernels = self._weights("kernel", (dim,))
        self.biases = self._weights("bias", (dim,), bias=True)
        super().build(input_shape)

    def call(self, inputs):
        x0, x = self._split(inputs)
        for kernel, bias in zip(self.kernels, self.biases):
            scale = tf.reduce_sum(x * kernel, axis=-1, keepdims=True)  # (batch, 1)
            x = x0 * scale + bias + x
        return x
