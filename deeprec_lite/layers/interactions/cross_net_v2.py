"""CrossNetV2: the DCN-v2 cross network, full rank or low rank (Wang et al., WWW 2021)."""

from deeprec_lite.compat import keras, tf
from deeprec_lite.layers.interactions._cross_base import CrossLayerBase
from deeprec_lite._checks import check_positive_int
from deeprec_lite.layers._common import check_float


@keras.utils.register_keras_serializable(package="deeprec_lite")
class CrossNetV2(CrossLayerBase):
    """Stack of DCN-v2 cross layers: ``x_{l+1} = x0 * (act(W_l x_l + b_l) + c x_l) + x_l``.

    ``W_l`` is a full ``d x d`` matrix (``projection_dim=None``) or the low-rank product
    ``U_l V_l^T`` (``x @ down_kernel_l @ kernel_l``, ``down_kernel_l``: ``d x r`` without bias,
    ``kernel_l``: ``r x d``), as in keras-rs ``FeatureCross``. Kernels use the Keras
    ``x @ kernel`` layout. ``act`` is ``pre_activation`` (identity when None) and
    ``c = diag_scale``; ``c x_l`` is added after ``act``, so only with ``act = identity``
    is it the same as using ``W_l + c I``. With the defaults (no ``act``, ``c = 0``) this is
    the paper's ``x_{l+1} = x0 * (W_l x_l + b_l) + x_l``; ``act`` and ``c`` are the keras-rs /
    TF Recommenders extensions.

    Args:
        num_layers: number of cross layers (default 3, FuxiCTR / BARS).
        projection_dim: None for full rank, else the rank ``r`` (a positive integer;
            ``r ~ d / 4`` keeps full-rank accuracy per the DCN-v2 paper).
        diag_scale: non-negative float ``c`` (default 0).
        use_bias: whether ``b_l`` exists (default True).
        pre_activation: activation applied to ``W_l x_l + b_l`` (default None).
        kernel_initializer, bias_initializer: default ``"glorot_uniform"``, ``"zeros"``.
        kernel_regularizer, bias_regularizer: optional regularizers.

    Input shape: ``x0`` ``[B, d]`` (the stack starts from ``x = x0``), or a list ``[x0, x]``
    of two ``[B, d]`` tensors (the stack starts from ``x``; with ``num_layers=1`` this is
    one keras-rs ``FeatureCross`` call).
    Output shape: ``[B, d]``.

    Example:
        >>> from deeprec_lite.layers import CrossNetV2
        >>> import tensorflow as tf
        >>> x0 = tf.random.normal([2, 12])  # B=2, d=12
        >>> CrossNetV2(num_layers=2, projection_dim=3)(x0).shape
        TensorShape([2, 12])

    References:
        Wang et al., "DCN V2: Improved Deep & Cross Network and Practical Lessons for
        Web-scale Learning to Rank Systems", WWW 2021.
    """

    def __init__(self, num_layers=3, projection_dim=None, diag_scale=0.0, use_bias=True,
                 pre_activation=None, kernel_initializer="glorot_uniform", bias_initializer="zeros",
                 kernel_regularizer=None, bias_regularizer=None, **kwargs):
        super().__init__(num_layers, kernel_initializer, bias_initializer, kernel_regularizer,
                         bias_regularizer, **kwargs)
        if projection_dim is not None:
            projection_dim = check_positive_int(projection_dim, "projection_dim", "CrossNetV2")
        self.projection_dim = projection_dim
        self.diag_scale = check_float(diag_scale, "diag_scale", "CrossNetV2", low=0.0)
        self.use_bias = bool(use_bias)
        self.pre_activation = (None if pre_activation is None
                               else keras.activations.get(pre_activation))

    def build(self, input_shape):
        dim = self._input_dim(input_shape)
        rank = self.projection_dim
        self.down_kernels = self._weights("down_kernel", (dim, rank)) if rank else []
        self.kernels = self._weights("kernel", (rank or dim, dim))
        self.biases = self._weights("bias", (dim,), bias=True) if self.use_bias else []
        super().build(input_shape)

    def call(self, inputs):
        x0, x = self._split(inputs)
        for i in range(self.num_layers):
            y = tf.matmul(x, self.down_kernels[i]) if self.projection_dim else x
            y = tf.matmul(y, self.kernels[i])
            if self.use_bias:
                y = y + self.biases[i]
            if self.pre_activation is not None:
                y = self.pre_activation(y)
            if self.diag_scale:
                y = y + self.diag_scale * x
            x = x0 * y + x
        return x

    def get_config(self):
        config = super().get_config()
        config.update({
            "projection_dim": self.projection_dim,
            "diag_scale": self.diag_scale,
            "use_bias": self.use_bias,
            "pre_activation": (None if self.pre_activation is None
                               else keras.activations.serialize(self.pre_activation)),
        })
        return config
