"""DNN: the multi-layer perceptron block shared by the CTR models."""
import numbers

from deeprec_lite.compat import keras, tf
from deeprec_lite._checks import check_positive_int
from deeprec_lite.layers._common import fresh_initializer


@keras.utils.register_keras_serializable(package="deeprec_lite")
class DNN(keras.layers.Layer):
    """Stack of ``Dense -> [BatchNormalization] -> activation -> [Dropout]`` blocks.

    ``h_0 = x``, ``h_l = dropout(act(BN(h_{l-1} W_l + b_l)))`` for each width in
    ``hidden_units``. Every hidden layer uses the same activation (the output layer of a CTR
    model, e.g. ``Dense(1)``, is not part of the block). Batch normalization and dropout use
    batch statistics / random masks only with ``training=True``; at inference the block is
    deterministic and batch-independent.

    Args:
        hidden_units: widths of the hidden layers (default ``(256, 128, 64)``, DeepCTR).
        activation: activation of every hidden layer (default ``"relu"``).
        use_batch_norm: add BatchNormalization after each Dense (default False).
        dropout: dropout rate in ``[0, 1)`` after each activation (default 0).
        l2: L2 penalty factor on the Dense kernels (default 0: none).
        kernel_initializer, bias_initializer: default ``"glorot_uniform"``, ``"zeros"``.

    Input shape: ``[B, ..., input_dim]``.
    Output shape: ``[B, ..., hidden_units[-1]]``.

    Example:
        >>> from deeprec_lite.layers import DNN
        >>> import tensorflow as tf
        >>> x = tf.random.normal([2, 10])  # B=2, input_dim=10
        >>> DNN(hidden_units=[8, 4], use_batch_norm=True, dropout=0.1)(x).shape
        TensorShape([2, 4])

    References:
        A standard MLP tower. Batch normalization: Ioffe and Szegedy, "Batch Normalization:
        Accelerating Deep Network Training by Reducing Internal Covariate Shift", ICML 2015.
        Dropout: Srivastava et al., "Dropout: A Simple Way to Prevent Neural Networks from
        Overfitting", JMLR 2014.
    """

    def __init__(self, hidden_units=(256, 128, 64), activation="relu", use_batch_norm=False,
                 dropout=0.0, l2=0.0, kernel_initializer="glorot_uniform", bias_initializer="zeros",
                 **kwargs):
        super().__init__(**kwargs)
        if isinstance(hidden_units, (int, str)) or not hidden_units:
            raise ValueError(
                f"DNN: hidden_units must be a non-empty list of positive integers; "
                f"received hidden_units={hidden_units!r}")
        self.hidden_units = [check_positive_int(u, "hidden_units", "DNN") for u in hidden_units]
        if (isinstance(dropout, bool) or not isinstance(dropout, numbers.Real)
                or not 0 <= dropout < 1):
            raise ValueError(f"DNN: dropout must be a rate in [0, 1); received dropout={dropout!r}")
        if isinstance(l2, bool) or not isinstance(l2, numbers.Real) or not l2 >= 0:
            raise ValueError(f"DNN: l2 must be a non-negative number; received l2={l2!r}")
        self.activation = keras.activations.get(activation)
        self.use_batch_norm = bool(use_batch_norm)
        self.dropout = float(dropout)
        self.l2 = float(l2)
        self.kernel_initializer = keras.initializers.get(kernel_initializer)
        self.bias_initializer = keras.initializers.get(bias_initializer)
        self.dense_layers = [
            keras.layers.Dense(
                units, kernel_initializer=fresh_initializer(self.kernel_initializer),
                bias_initializer=fresh_initializer(self.bias_initializer),
                kernel_regularizer=keras.regularizers.L2(self.l2) if self.l2 else None,
                dtype=self.dtype_policy, name=f"dense_{i}")
            for i, units in enumerate(self.hidden_units)]
        self.batch_norm_layers = [
            keras.layers.BatchNormalization(dtype=self.dtype_policy, name=f"batch_norm_{i}")
            for i in range(len(self.hidden_units))] if self.use_batch_norm else []
        self.dropout_layers = [
            keras.layers.Dropout(self.dropout, dtype=self.dtype_policy, name=f"dropout_{i}")
            for i in range(len(self.hidden_units))] if self.dropout else []

    def build(self, input_shape):
        shape = tf.TensorShape(input_shape)
        if shape.rank is None or shape.rank < 2 or shape[-1] is None:
            raise ValueError(
                f"DNN expects inputs of shape (batch, ..., input_dim) with known input_dim; "
                f"received input_shape={shape}")
        for i, dense in enumerate(self.dense_layers):
            dense.build(shape)
            shape = shape[:-1].concatenate([self.hidden_units[i]])
            if self.use_batch_norm:
                self.batch_norm_layers[i].build(shape)
        super().build(input_shape)

    def call(self, inputs, training=None):
        x = inputs
        for i, dense in enumerate(self.dense_layers):
            x = dense(x)
            if self.use_batch_norm:
                x = self.batch_norm_layers[i](x, training=training)
            x = self.activation(x)
            if self.dropout:
                x = self.dropout_layers[i](x, training=training)
        return x

    def compute_output_shape(self, input_shape):
        return tf.TensorShape(input_shape)[:-1].concatenate([self.hidden_units[-1]])

    def get_config(self):
        config = super().get_config()
        config.update({
            "hidden_units": list(self.hidden_units),
            "activation": keras.activations.serialize(self.activation),
            "use_batch_norm": self.use_batch_norm,
            "dropout": self.dropout,
            "l2": self.l2,
            "kernel_initializer": keras.initializers.serialize(self.kernel_initializer),
            "bias_initializer": keras.initializers.serialize(self.bias_initializer),
        })
        return config
