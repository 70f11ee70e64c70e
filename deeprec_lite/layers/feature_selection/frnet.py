"""FRNet: feature refinement with two IEUs and a complementary gate (Wang et al., SIGIR 2022)."""
from deeprec_lite._checks import check_positive_int
from deeprec_lite.compat import keras, tf
from deeprec_lite.layers._common import (build_sublayer, check_choice, check_float, field_shape,
                                         fresh_initializer)

_NAME = "FRNet"
_WEIGHT_TYPES = ("bit", "vector")


@keras.utils.register_keras_serializable(package="deeprec_lite")
def _unit_config(layer):
    """The constructor arguments that _IEU and FRNet share, serialized."""
    return {
        "weight_type": layer.weight_type,
        "attention_size": layer.attention_size,
        "num_cie_layers": layer.num_cie_layers,
        "cie_hidden_units": layer.cie_hidden_units,
        "cie_dropout": layer.cie_dropout,
        "cie_output_activation": keras.activations.serialize(layer.cie_output_activation),
        "kernel_initializer": keras.initializers.serialize(layer.kernel_initializer),
        "kernel_regularizer": keras.regularizers.serialize(layer.kernel_regularizer),
    }


class _IEU(keras.layers.Layer):
    """Information extraction unit (private part of FRNet): ``(B, F, D) -> (B, F, D or 1)``.

    (a) unscaled self-attention over fields, ``softmax(Q K^T) V W_o`` (``D -> a -> D``);
    (b) contextual information extractor: ``MLP(flatten(E))`` with
    ``Dense -> BatchNorm -> PReLU -> Dropout`` per layer, then ``Dense(D)`` and an output
    activation, giving ``(B, 1, D)``; (c) their product; ``"vector"`` sums it over ``D``.
    """

    def __init__(self, weight_type, attention_size, num_cie_layers, cie_hidden_units,
                 cie_dropout, cie_output_activation, kernel_initializer, kernel_regularizer,
                 **kwargs):
        super().__init__(**kwargs)
        self.weight_type = weight_type
        self.attention_size = attention_size
        self.num_cie_layers = num_cie_layers
        self.cie_hidden_units = cie_hidden_units
        self.cie_dropout = cie_dropout
        self.cie_output_activation = keras.activations.get(cie_output_activation)
        self.kernel_initializer = keras.initializers.get(kernel_initializer)
        self.kernel_regularizer = keras.regularizers.get(kernel_regularizer)

        self.query, self.key, self.value = (self._dense(attention_size, n)
                                            for n in ("query", "key", "value"))
        # flat lists of layers (the .keras format does not restore layers nested in lists of lists)
        self.cie_dense = [self._dense(cie_hidden_units, f"cie_dense_{i}")
                          for i in range(num_cie_layers)]
        self.cie_norms = [keras.layers.BatchNormalization(name=f"cie_batch_norm_{i}")
                          for i in range(num_cie_layers)]
        self.cie_prelus = [keras.layers.PReLU(alpha_initializer=keras.initializers.Constant(0.25),
                                              shared_axes=[1], name=f"cie_prelu_{i}")
                           for i in range(num_cie_layers)]
        self.cie_dropouts = [keras.layers.Dropout(cie_dropout, name=f"cie_dropout_{i}")
                             for i in range(num_cie_layers)]

    def _dense(self, units, name):
        return keras.layers.Dense(
            units, kernel_initializer=fresh_initializer(self.kernel_initializer),
            kernel_regularizer=self.kernel_regularizer, name=name)

    def build(self, input_shape):
        num_fields, dim = field_shape(input_shape, _NAME)
        self.attention_output = self._dense(dim, "attention_output")
        self.cie_output = self._dense(dim, "cie_output")
        for sub in (self.query, self.key, self.value):
            build_sublayer(sub, (None, num_fields, dim))
        build_sublayer(self.attention_output, (None, num_fields, self.attention_size))
        width = num_fields * dim
        for dense, norm, prelu in zip(self.cie_dense, self.cie_norms, self.cie_prelus):
            build_sublayer(dense, (None, width))
            width = self.cie_hidden_units
            build_sublayer(norm, (None, width))
            build_sublayer(prelu, (None, width))
        build_sublayer(self.cie_output, (None, width))
        self._flat_width = num_fields * dim
        super().build(input_shape)

    def call(self, inputs, training=None):
        q, k, v = self.query(inputs), self.key(inputs), self.value(inputs)
        scores = tf.nn.softmax(tf.matmul(q, k, transpose_b=True), axis=-1)  # (B, F, F)
        vector_info = self.attention_output(tf.matmul(scores, v))  # (B, F, D)
        h = tf.reshape(inputs, [-1, self._flat_width])
        for dense, norm, prelu, dropout in zip(self.cie_dense, self.cie_norms, self.cie_prelus,
                                               self.cie_dropouts):
            h = dropout(prelu(norm(dense(h), training=training)), training=training)
        context = self.cie_output_activation(self.cie_output(h))[:, None, :]  # (B, 1, D)
        out = vector_info * context
        if self.weight_type == "vector":
            out = tf.reduce_sum(out, axis=-1, keepdims=True)
        return out

    def get_config(self):
        config = super().get_config()
        config.update(_unit_config(self))
        return config


@keras.utils.register_keras_serializable(package="deeprec_lite")
class FRNet(keras.layers.Layer):
    """FRNet feature refinement: ``E -> E'``, a drop-in before any interaction layer.

    Two information extraction units (IEU, see ``_IEU``): ``G = IEU_G(E)`` (bit level,
    complementary features) and ``W = sigmoid(IEU_W(E))`` (bit level ``[B, F, D]`` or vector
    level ``[B, F, 1]``); the complementary selection gate (CSGate) mixes them::

        E' = E * W + G * (1 - W)

    Each IEU: ``O = softmax(Q K^T) V W_o`` (unscaled self-attention over fields,
    ``Q, K, V = E W_{q,k,v}``, ``D -> a -> D``, Dense layers with biases) times the
    contextual vector ``CIE = act(Dense_D(MLP(flatten(E))))`` (``[B, 1, D]``, broadcast over
    fields; MLP layers ``Dense -> BatchNorm -> PReLU -> Dropout``); vector level sums
    ``O * CIE`` over ``D``. The CIE MLP uses BatchNorm and Dropout: outputs depend on the
    batch in training only.

    Args:
        weight_type: ``"bit"`` (default) or ``"vector"`` granularity of the gate ``W``.
        attention_size: ``a``, width of the field self-attention (official 10).
        num_cie_layers: hidden layers of the CIE MLP (official 1).
        cie_hidden_units: width of each CIE hidden layer (official 256).
        cie_dropout: dropout rate after each CIE hidden layer (official 0.5).
        cie_output_activation: ``act``, the activation of the CIE output (default
            ``"relu"``; RefineCTR uses PReLU).
        kernel_initializer, kernel_regularizer: for every Dense kernel.

    Input shape: ``[B, F, D]``.
    Output shape: ``[B, F, D]``.

    Example:
        >>> from deeprec_lite.layers import FRNet
        >>> import tensorflow as tf
        >>> x = tf.random.normal([2, 4, 3])  # B=2, F=4, D=3
        >>> FRNet(weight_type="vector", attention_size=4, cie_hidden_units=8)(x).shape
        TensorShape([2, 4, 3])

    References:
        Wang et al., "Enhancing CTR Prediction with Context-Aware Feature Representation
        Learning", SIGIR 2022.
    """

    def __init__(self, weight_type="bit", attention_size=10, num_cie_layers=1,
                 cie_hidden_units=256, cie_dropout=0.5, cie_output_activation="relu",
                 kernel_initializer="glorot_uniform", kernel_regularizer=None, **kwargs):
        super().__init__(**kwargs)
        self.weight_type = check_choice(weight_type, _WEIGHT_TYPES, "weight_type", _NAME)
        self.attention_size = check_positive_int(attention_size, "attention_size", _NAME)
        self.num_cie_layers = check_positive_int(num_cie_layers, "num_cie_layers", _NAME)
        self.cie_hidden_units = check_positive_int(cie_hidden_units, "cie_hidden_units", _NAME)
        self.cie_dropout = check_float(cie_dropout, "cie_dropout", _NAME, low=0.0, high=1.0)
        if self.cie_dropout == 1.0:
            raise ValueError(f"{_NAME}: cie_dropout must be below 1; received cie_dropout=1.0")
        self.cie_output_activation = keras.activations.get(cie_output_activation)
        self.kernel_initializer = keras.initializers.get(kernel_initializer)
        self.kernel_regularizer = keras.regularizers.get(kernel_regularizer)
        shared = dict(attention_size=self.attention_size, num_cie_layers=self.num_cie_layers,
                      cie_hidden_units=self.cie_hidden_units, cie_dropout=self.cie_dropout,
                      cie_output_activation=self.cie_output_activation,
                      kernel_initializer=self.kernel_initializer,
                      kernel_regularizer=self.kernel_regularizer)
        self.ieu_g = _IEU(weight_type="bit", name="ieu_g", **shared)
        self.ieu_w = _IEU(weight_type=self.weight_type, name="ieu_w", **shared)

    def build(self, input_shape):
        num_fields, dim = field_shape(input_shape, _NAME)
        self.input_spec = keras.layers.InputSpec(ndim=3, axes={1: num_fields, 2: dim})
        build_sublayer(self.ieu_g, input_shape)
        build_sublayer(self.ieu_w, input_shape)
        super().build(input_shape)

    def gate(self, inputs, training=None):
        """The selection gate ``W = sigmoid(IEU_W(E))``: ``(B, F, D)`` or ``(B, F, 1)``."""
        return tf.sigmoid(self.ieu_w(inputs, training=training))

    def call(self, inputs, training=None):
        weight = self.gate(inputs, training=training)
        complementary = self.ieu_g(inputs, training=training)
        return inputs * weight + complementary * (1.0 - weight)

    def compute_output_shape(self, input_shape):
        return tf.TensorShape(input_shape)

    def get_config(self):
        config = super().get_config()
        config.update(_unit_config(self))
        return config
