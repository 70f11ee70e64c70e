"""GatedCrossNet: the GDCN gated cross network (Wang et al., CIKM 2023)."""
from deeprec_lite.compat import keras, tf
from deeprec_lite.layers.interactions._cross_base import CrossLayerBase


@keras.utils.register_keras_serializable(package="deeprec_lite")
class GatedCrossNet(CrossLayerBase):
    """Stack of GDCN gated cross layers.

    ``c_{l+1} = c0 * (W^c_l c_l + b_l) * sigmoid(W^g_l c_l) + c_l``.

    ``W^c_l`` (``kernel_l``) and ``W^g_l`` (``gate_kernel_l``) are ``d x d`` without bias
    (Keras ``x @ kernel`` layout); ``b_l`` has shape ``(d,)`` and is initialized
    ``U(0, 1)`` as in the official and FuxiCTR code. ``2 d^2 + d`` weights per layer.
    A gate saturated at 1 gives the CrossNetV2 layer.

    Args:
        num_layers: number of gated cross layers (default 3, official GDCN).
        kernel_initializer: initializer of both kernels (default ``"glorot_uniform"``).
        bias_initializer: initializer of ``b_l``; None (default) means ``RandomUniform(0, 1)``.
        kernel_regularizer, bias_regularizer: optional regularizers.

    Input shape: ``x0`` ``[B, d]`` (the stack starts from ``c = x0``), or a list ``[x0, x]``
    of two ``[B, d]`` tensors (the stack starts from ``x``).
    Output shape: ``[B, d]``.

    Example:
        >>> from deeprec_lite.layers import GatedCrossNet
        >>> import tensorflow as tf
        >>> x0 = tf.random.normal([2, 12])  # B=2, d=12
        >>> GatedCrossNet(num_layers=2)(x0).shape
        TensorShape([2, 12])

    References:
        Wang et al., "Towards Deeper, Lighter and Interpretable Cross Network for CTR
        Prediction", CIKM 2023.
    """

    def __init__(self, num_layers=3, kernel_initializer="glorot_uniform", bias_initializer=None,
                 kernel_regularizer=None, bias_regularizer=None, **kwargs):
        if bias_initializer is None:
            bias_initializer = keras.initializers.RandomUniform(0.0, 1.0)
        super().__init__(num_layers, kernel_initializer, bias_initializer, kernel_regularizer,
                         bias_regularizer, **kwargs)

    def build(self, input_shape):
        dim = self._input_dim(input_shape)
        self.kernels = self._weights("kernel", (dim, dim))
        self.gate_kernels = self._weights("gate_kernel", (dim, dim))
        self.biases = self._weights("bias", (dim,), bias=True)
        super().build(input_shape)

    def call(self, inputs):
        x0, x = self._split(inputs)
        for kernel, gate_kernel, bias in zip(self.kernels, self.gate_kernels, self.biases):
            gate = tf.sigmoid(tf.matmul(x, gate_kernel))
            x = x0 * (tf.matmul(x, kernel) + bias) * gate + x
        return x
