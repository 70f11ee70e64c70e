"""PIN: the polynomial interaction network of xDeepInt (Yan and Li, DLP-KDD 2020)."""
from deeprec_lite.compat import keras, tf
from deeprec_lite._checks import check_positive_int
from deeprec_lite.layers._common import field_shape, fresh_initializer


@keras.utils.register_keras_serializable(package="deeprec_lite")
class PIN(keras.layers.Layer):
    """Polynomial interaction network with subspace crossing (xDeepInt).

    Subspace crossing splits each ``D``-dim embedding into ``h = num_subspaces`` pieces of
    ``k = D/h`` and treats every piece as its own "field" (field-major: row ``f*h + s`` holds
    ``E[:, f, s*k:(s+1)*k]``): ``X0`` is ``[B, F*h, D/h]`` (``h = 1`` is purely vector-wise,
    ``h = D`` purely bit-wise). Layer ``l`` mixes the field-vectors of ``X0`` with ``W_l``
    (``(F*h) x (F*h)``, no bias; ``(W_l X0)[o] = sum_i W_l[i, o] X0[i]``) and multiplies:

    - residual (default): ``X_l = X_{l-1} * (1 + f(W_l X0))``, a degree ``l+1`` polynomial
      of ``X0`` (the residual form of the reference implementation); the output is ``X_L``
      merged back to ``[B, F, D]``;
    - non-residual: ``X_l = X_{l-1} * f(W_l X0)``; the output concatenates ``X_0 .. X_L``,
      each merged back to ``[B, F, D]``, along the field axis.

    The xDeepInt read-out (vector-wise ``Dense(1)`` over the field axis, then a sum over
    ``D``) is not part of the layer.

    Args:
        num_layers: L (default 4, the reference Criteo setting).
        num_subspaces: h, must divide the embedding dim (default 1).
        activation: f (default None: linear, as in the reference experiment).
        residual: default True.
        kernel_initializer: default ``"glorot_uniform"``.
        kernel_regularizer: optional regularizer of the ``W_l``.

    Input shape: ``[B, F, D]``.
    Output shape: ``[B, F, D]`` if residual, else ``[B, (L+1)*F, D]``.

    Example:
        >>> from deeprec_lite.layers import PIN
        >>> import tensorflow as tf
        >>> x = tf.random.normal([2, 3, 4])  # B=2, F=3, D=4
        >>> PIN(num_layers=2, num_subspaces=2)(x).shape
        TensorShape([2, 3, 4])
        >>> PIN(num_layers=2, residual=False)(x).shape
        TensorShape([2, 9, 4])

    References:
        Yan and Li, "xDeepInt: a Hybrid Architecture for Modeling the Vector-wise and
        Bit-wise Feature Interactions", DLP-KDD 2020 (arXiv 2301.01089).
    """

    def __init__(self, num_layers=4, num_subspaces=1, activation=None, residual=True,
                 kernel_initializer="glorot_uniform", kernel_regularizer=None, **kwargs):
        super().__init__(**kwargs)
        self.num_layers = check_positive_int(num_layers, "num_layers", "PIN")
        self.num_subspaces = check_positive_int(num_subspaces, "num_subspaces", "PIN")
        self.activation = None if activation is None else keras.activations.get(activation)
        self.residual = bool(residual)
        self.kernel_initializer = keras.initializers.get(kernel_initializer)
        self.kernel_regularizer = keras.regularizers.get(kernel_regularizer)

    def build(self, input_shape):
        self.num_fields, self.embedding_dim = field_shape(input_shape, "PIN")
        if self.embedding_dim % self.num_subspaces:
            raise ValueError(
                f"PIN: num_subspaces must divide the embedding dim; received "
                f"num_subspaces={self.num_subspaces} with embedding_dim={self.embedding_dim}")
        self.input_spec = keras.layers.InputSpec(
            ndim=3, axes={1: self.num_fields, 2: self.embedding_dim})
        rows = self.num_fields * self.num_subspaces
        self.kernels = [
            self.add_weight(name=f"kernel_{i}", shape=(rows, rows), trainable=True,
                            initializer=fresh_initializer(self.kernel_initializer),
                            regularizer=self.kernel_regularizer)
            for i in range(self.num_layers)]
        super().build(input_shape)

    def call(self, inputs):
        rows = self.num_fields * self.num_subspaces
        x0 = tf.reshape(inputs, [-1, rows, self.embedding_dim // self.num_subspaces])
        x, outputs = x0, [x0]
        for kernel in self.kernels:
            mixed = tf.einsum("bis,io->bos", x0, kernel)
            if self.activation is not None:
                mixed = self.activation(mixed)
            x = x * (1.0 + mixed) if self.residual else x * mixed
            outputs.append(x)
        if self.residual:
            outputs = [x]
        merged = [tf.reshape(t, [-1, self.num_fields, self.embedding_dim]) for t in outputs]
        return merged[0] if self.residual else tf.concat(merged, axis=1)

    def compute_output_shape(self, input_shape):
        shape = tf.TensorShape(input_shape)
        if self.residual:
            return shape
        return tf.TensorShape([shape[0], (self.num_layers + 1) * shape[1], shape[2]])

    def get_config(self):
        config = super().get_config()
        config.update({
            "num_layers": self.num_layers,
            "num_subspaces": self.num_subspaces,
            "activation": (None if self.activation is None
                           else keras.activations.serialize(self.activation)),
            "residual": self.residual,
            "kernel_initializer": keras.initializers.serialize(self.kernel_initializer),
            "kernel_regularizer": keras.regularizers.serialize(self.kernel_regularizer),
        })
        return config
