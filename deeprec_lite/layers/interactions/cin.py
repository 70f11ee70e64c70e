"""CIN: the compressed interaction network of xDeepFM (Lian et al., KDD 2018)."""
from deeprec_lite.compat import keras, tf
from deeprec_lite._checks import check_positive_int
from deeprec_lite.layers._common import field_shape, fresh_initializer


@keras.utils.register_keras_serializable(package="deeprec_lite")
class CIN(keras.layers.Layer):
    """Compressed interaction network: vector-wise explicit interactions of growing degree.

    ``X^0 = E``; layer ``k``: ``X^k[b,h,d] = act(sum_{i,j} W^k[h,i,j] X^0[b,i,d] X^{k-1}[b,j,d]
    + bias^k[h])`` (the kernel-size-1 convolution of the paper, as an einsum). Each layer's
    maps are sum-pooled over ``d`` (``p^k[b,h] = sum_d X^k[b,h,d]``) and concatenated. With
    ``split_half`` every layer but the last sends its first half of maps to the next layer
    and its second half to the output (DeepCTR), so those sizes must be even; the paper's
    CIN (``split_half=False``) pools every map and feeds every map on. The final
    ``Dense(1)`` of xDeepFM is not part of the layer.

    Args:
        layer_sizes: number of feature maps ``H_k`` per layer (default ``(128, 128)``).
        activation: applied to every layer's maps (default None: identity, as in FuxiCTR /
            the original xDeepFM; DeepCTR uses ``"relu"``).
        split_half: default True.
        use_bias: default True.
        kernel_initializer, bias_initializer: default ``"glorot_uniform"``, ``"zeros"``.
        kernel_regularizer, bias_regularizer: optional regularizers.

    Input shape: ``[B, F, D]``.
    Output shape: ``[B, sum_k out_k]`` with ``out_k = H_k / 2`` for split layers and
    ``H_k`` otherwise (see ``output_dim``).

    Example:
        >>> from deeprec_lite.layers import CIN
        >>> import tensorflow as tf
        >>> x = tf.random.normal([2, 3, 5])  # B=2, F=3, D=5
        >>> CIN(layer_sizes=[4, 4])(x).shape  # 4/2 + 4 pooled maps
        TensorShape([2, 6])
        >>> CIN(layer_sizes=[4, 4], split_half=False)(x).shape
        TensorShape([2, 8])

    References:
        Lian et al., "xDeepFM: Combining Explicit and Implicit Feature Interactions for
        Recommender Systems", KDD 2018.
    """

    def __init__(self, layer_sizes=(128, 128), activation=None, split_half=True, use_bias=True,
                 kernel_initializer="glorot_uniform", bias_initializer="zeros",
                 kernel_regularizer=None, bias_regularizer=None, **kwargs):
        super().__init__(**kwargs)
        if isinstance(layer_sizes, (int, str)) or not layer_sizes:
            raise ValueError(
                f"CIN: layer_sizes must be a non-empty list of positive integers; "
                f"received layer_sizes={layer_sizes!r}")
        self.layer_sizes = [check_positive_int(h, "layer_sizes", "CIN") for h in layer_sizes]
        self.split_half = bool(split_half)
        if self.split_half and any(h % 2 for h in self.layer_sizes[:-1]):
            raise ValueError(
                f"CIN: with split_half=True every layer size but the last must be even; "
                f"received layer_sizes={list(layer_sizes)!r}")
        self.activation = None if activation is None else keras.activations.get(activation)
        self.use_bias = bool(use_bias)
        self.kernel_initializer = keras.initializers.get(kernel_initializer)
        self.bias_initializer = keras.initializers.get(bias_initializer)
        self.kernel_regularizer = keras.regularizers.get(kernel_regularizer)
        self.bias_regularizer = keras.regularizers.get(bias_regularizer)

    def _is_split(self, k):
        return self.split_half and k < len(self.layer_sizes) - 1

    @property
    def output_dim(self):
        """Width of the output: the number of pooled feature maps sent to it."""
        return sum(h // 2 if self._is_split(k) else h for k, h in enumerate(self.layer_sizes))

    def build(self, input_shape):
        num_fields, dim = field_shape(input_shape, "CIN")
        self.input_spec = keras.layers.InputSpec(ndim=3, axes={1: num_fields, 2: dim})
        self.kernels, self.biases = [], []
        prev = num_fields
        for k, h in enumerate(self.layer_sizes):
            self.kernels.append(self.add_weight(
                name=f"kernel_{k}", shape=(h, num_fields, prev), trainable=True,
                initializer=fresh_initializer(self.kernel_initializer),
                regularizer=self.kernel_regularizer))
            if self.use_bias:
                self.biases.append(self.add_weight(
                    name=f"bias_{k}", shape=(h,), trainable=True,
                    initializer=fresh_initializer(self.bias_initializer),
                    regularizer=self.bias_regularizer))
            prev = h // 2 if self._is_split(k) else h
        super().build(input_shape)

    def call(self, inputs):
        hidden, pooled = inputs, []
        for k, h in enumerate(self.layer_sizes):
            z = tf.einsum("bid,bjd->bijd", inputs, hidden)  # (batch, F, H_{k-1}, D)
            maps = tf.einsum("hij,bijd->bhd", self.kernels[k], z)
            if self.use_bias:
                maps = maps + self.biases[k][:, None]
            if self.activation is not None:
                maps = self.activation(maps)
            if self._is_split(k):
                hidden, direct = tf.split(maps, 2, axis=1)
            else:
                hidden = direct = maps
            pooled.append(tf.reduce_sum(direct, axis=-1))
        return tf.concat(pooled, axis=1)

    def compute_output_shape(self, input_shape):
        return tf.TensorShape(input_shape)[:1].concatenate([self.output_dim])

    def get_config(self):
        config = super().get_config()
        config.update({
            "layer_sizes": list(self.layer_sizes),
            "activation": (None if self.activation is None
                           else keras.activations.serialize(self.activation)),
            "split_half": self.split_half,
            "use_bias": self.use_bias,
            "kernel_initializer": keras.initializers.serialize(self.kernel_initializer),
            "bias_initializer": keras.initializers.serialize(self.bias_initializer),
            "kernel_regularizer": keras.regularizers.serialize(self.kernel_regularizer),
            "bias_regularizer": keras.regularizers.serialize(self.bias_regularizer),
        })
        return config
