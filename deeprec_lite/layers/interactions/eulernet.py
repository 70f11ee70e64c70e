"""EulerNet: interactions as linear maps in log-polar complex space (Tian et al., SIGIR 2023)."""
from deeprec_lite.compat import keras, tf
from deeprec_lite.layers._common import (build_sublayer, check_float, check_units, field_shape,
                                         fresh_initializer)

_NAME = "EulerNet"
_LOG_EPS = 1e-8  # lambda = 0.5 * log(r^2 + p^2 + eps), as in the reference
_ORIGIN = 1e-30  # below this squared modulus the angle is taken as 0 (atan2 has no gradient at 0)


def _f32(variable):
    """Read a weight in float32 (under a mixed policy weights are auto-cast to float16)."""
    return tf.cast(variable, tf.float32)


class _OrderInitializer(keras.initializers.Initializer):
    """Reference initialization of the order matrix ``A`` (F_in x F_out): the identity when
    square, else ``softmax(randn / 0.01)`` over the inputs (each output starts as a
    near-one-hot pick of one input field)."""

    def __call__(self, shape, dtype=None, **kwargs):
        dtype = dtype or tf.float32
        if shape[0] == shape[1]:
            return tf.eye(shape[0], dtype=dtype)
        return tf.nn.softmax(tf.random.normal(shape, dtype=dtype) / 0.01, axis=0)


@keras.utils.register_keras_serializable(package="deeprec_lite")
class EulerNet(keras.layers.Layer):
    """EulerNet: adaptive-order feature interactions via Euler's formula.

    Input map: each embedding coordinate is a phase with a learnable per-field modulus,
    ``r = mu_f cos(e)``, ``p = mu_f sin(e)`` (``mu`` initialized to 1).

    Each Euler interaction layer (``F_in -> F_out`` "neurons" shared over ``D``) computes

    * explicit part: ``lambda = 0.5 log(r^2 + p^2 + 1e-8)``, ``theta = atan2(p, r)``;
      ``lambda' = lambda A + delta_lambda``, ``theta' = theta A + delta_theta`` (``A``:
      ``F_in x F_out`` learnable real orders, mixing over fields; ``delta``: ``F_out x D``);
      output ``(e^lambda' cos theta', e^lambda' sin theta')``, i.e. ``prod_j z_j^{A_jk}``;
    * implicit part: ``ReLU(Linear(flatten(r)))`` and ``ReLU(Linear(flatten(p)))`` with one
      shared ``Linear`` (``F_in D -> F_out D``) on the layer's input ``(r, p)``;
    * output = explicit + implicit, then optional LayerNorm over ``D`` on the real and on the
      imaginary part.

    Read-out: one ``Linear`` (``F_L D -> 1``) applied to ``flatten(real)`` and
    ``flatten(imag)``, logits summed (so its bias counts twice).
    All of it runs in float32 whatever the compute dtype (log / exp / atan2 are delicate);
    ``atan2`` is guarded at the origin (angle 0 where ``r^2 + p^2 < 1e-30``) so gradients
    stay finite. Large orders can still overflow ``exp``: keep LayerNorm on, orders small.

    Args:
        shape: numbers of output "neurons" ``F_out`` of each Euler layer (FuxiCTR ``[3]``).
        layer_norm: LayerNorm on both parts of each layer's output (default True).
        explicit_dropout, implicit_dropout: dropout on ``(lambda, theta)`` / on ``(r, p)`` before
            the implicit Linear.
        return_complex: return ``[real, imag]`` of the last layer (each ``[B, F_L, D]``)
            instead of the logit; the read-out weights are then not created.
        kernel_initializer, kernel_regularizer: implicit Linear kernels and the read-out.

    Order matrices start as the reference does (identity if ``F_in = F_out`` else
    near-one-hot softmax), ``delta`` biases as ``N(0, 0.01)``.

    Input shape: ``[B, F, D]``.
    Output shape: ``[B, 1]``, or ``[[B, F_L, D], [B, F_L, D]]`` with ``return_complex``
    (``F_L = shape[-1]``).

    Example:
        >>> from deeprec_lite.layers import EulerNet
        >>> import tensorflow as tf
        >>> x = tf.random.normal([2, 4, 5])  # B=2, F=4, D=5
        >>> EulerNet(shape=[3])(x).shape
        TensorShape([2, 1])
        >>> [t.shape for t in EulerNet(shape=[6, 3], return_complex=True)(x)]
        [TensorShape([2, 3, 5]), TensorShape([2, 3, 5])]

    References:
        Tian, Bai, Zhao, Wen and Cao, "EulerNet: Adaptive Feature Interaction Learning via
        Euler's Formula for CTR Prediction", SIGIR 2023.
    """

    def __init__(self, shape=(3,), layer_norm=True, explicit_dropout=0.0, implicit_dropout=0.0,
                 return_complex=False, kernel_initializer="glorot_uniform",
                 kernel_regularizer=None, **kwargs):
        super().__init__(**kwargs)
        self.shape = check_units(shape, "shape", _NAME, allow_empty=False)
        self.layer_norm = bool(layer_norm)
        self.explicit_dropout = check_float(explicit_dropout, "explicit_dropout", _NAME, 0.0, 1.0)
        self.implicit_dropout = check_float(implicit_dropout, "implicit_dropout", _NAME, 0.0, 1.0)
        for arg in ("explicit_dropout", "implicit_dropout"):
            if getattr(self, arg) == 1.0:
                raise ValueError(f"{_NAME}: {arg} must be below 1; received {arg}=1.0")
        self.return_complex = bool(return_complex)
        self.kernel_initializer = keras.initializers.get(kernel_initializer)
        self.kernel_regularizer = keras.regularizers.get(kernel_regularizer)
        self.drop_explicit = keras.layers.Dropout(self.explicit_dropout)
        self.drop_implicit = keras.layers.Dropout(self.implicit_dropout)
        self.norms_real = [keras.layers.LayerNormalization(name=f"norm_real_{i}", dtype="float32")
                           for i in range(len(self.shape))] if self.layer_norm else []
        self.norms_imag = [keras.layers.LayerNormalization(name=f"norm_imag_{i}", dtype="float32")
                           for i in range(len(self.shape))] if self.layer_norm else []

    def build(self, input_shape):
        num_fields, dim = field_shape(input_shape, _NAME)
        self.input_spec = keras.layers.InputSpec(ndim=3, axes={1: num_fields, 2: dim})
        self._dim = dim
        self.mu = self.add_weight(name="mu", shape=(1, num_fields, 1), initializer="ones")
        self.orders, self.bias_lambda, self.bias_theta = [], [], []
        self.implicit_kernels, self.implicit_biases = [], []
        f_in = num_fields
        for i, f_out in enumerate(self.shape):
            self.orders.append(self.add_weight(
                name=f"orders_{i}", shape=(f_in, f_out), initializer=_OrderInitializer()))
            for target, label in ((self.bias_lambda, "lambda"), (self.bias_theta, "theta")):
                target.append(self.add_weight(
                    name=f"bias_{label}_{i}", shape=(f_out, dim),
                    initializer=keras.initializers.RandomNormal(stddev=0.01)))
            self.implicit_kernels.append(self.add_weight(
                name=f"implicit_kernel_{i}", shape=(f_in * dim, f_out * dim),
                initializer=fresh_initializer(self.kernel_initializer),
                regularizer=self.kernel_regularizer))
            self.implicit_biases.append(self.add_weight(
                name=f"implicit_bias_{i}", shape=(f_out * dim,), initializer="zeros"))
            if self.layer_norm:
                build_sublayer(self.norms_real[i], (None, f_out, dim))
                build_sublayer(self.norms_imag[i], (None, f_out, dim))
            f_in = f_out
        if not self.return_complex:
            self.readout_kernel = self.add_weight(
                name="readout_kernel", shape=(f_in * dim, 1),
                initializer=fresh_initializer(self.kernel_initializer),
                regularizer=self.kernel_regularizer)
            self.readout_bias = self.add_weight(name="readout_bias", shape=(1,),
                                                initializer="zeros")
        super().build(input_shape)

    @staticmethod
    def _polar(r, p):
        """``(lambda, theta)`` of ``r + i p`` with the atan2 origin guard."""
        norm2 = r * r + p * p
        lam = 0.5 * tf.math.log(norm2 + _LOG_EPS)
        origin = norm2 < _ORIGIN
        theta = tf.math.atan2(tf.where(origin, tf.zeros_like(p), p),
                              tf.where(origin, tf.ones_like(r), r))
        return lam, theta

    def _euler_layer(self, i, r, p, training):
        f_out = self.shape[i]
        lam, theta = self._polar(r, p)
        lam = self.drop_explicit(lam, training=training)
        theta = self.drop_explicit(theta, training=training)
        orders = _f32(self.orders[i])
        lam = tf.einsum("bfd,fo->bod", lam, orders) + _f32(self.bias_lambda[i])
        theta = tf.einsum("bfd,fo->bod", theta, orders) + _f32(self.bias_theta[i])
        modulus = tf.exp(lam)

        def implicit(x):
            x = self.drop_implicit(x, training=training)
            flat = tf.reshape(x, [-1, x.shape[1] * self._dim])
            h = tf.nn.relu(tf.matmul(flat, _f32(self.implicit_kernels[i]))
                           + _f32(self.implicit_biases[i]))
            return tf.reshape(h, [-1, f_out, self._dim])

        r_out = modulus * tf.cos(theta) + implicit(r)
        p_out = modulus * tf.sin(theta) + implicit(p)
        if self.layer_norm:
            r_out = self.norms_real[i](r_out)
            p_out = self.norms_imag[i](p_out)
        return r_out, p_out

    def call(self, inputs, training=None):
        e = tf.cast(inputs, tf.float32)
        mu = _f32(self.mu)
        r, p = mu * tf.cos(e), mu * tf.sin(e)
        for i in range(len(self.shape)):  # sequential layers
            r, p = self._euler_layer(i, r, p, training)
        if self.return_complex:
            return [tf.cast(r, self.compute_dtype), tf.cast(p, self.compute_dtype)]
        width = self.shape[-1] * self._dim
        kernel = _f32(self.readout_kernel)
        logit = (tf.matmul(tf.reshape(r, [-1, width]), kernel)
                 + tf.matmul(tf.reshape(p, [-1, width]), kernel)
                 + 2.0 * _f32(self.readout_bias))
        return tf.cast(logit, self.compute_dtype)

    def get_config(self):
        config = super().get_config()
        config.update({
            "shape": list(self.shape),
            "layer_norm": self.layer_norm,
            "explicit_dropout": self.explicit_dropout,
            "implicit_dropout": self.implicit_dropout,
            "return_complex": self.return_complex,
            "kernel_initializer": keras.initializers.serialize(self.kernel_initializer),
            "kernel_regularizer": keras.regularizers.serialize(self.kernel_regularizer),
        })
        return config
