"""RFM: Rotative Factorization Machine, self-attentive rotation + AmpNet (Tian et al., KDD 2024)."""
from deeprec_lite._checks import check_positive_int
from deeprec_lite.compat import keras, tf
from deeprec_lite.layers._common import (build_sublayer, check_float, check_units, field_shape,
                                         fresh_initializer)

_NAME = "RFM"


def rotation_scores(queries, keys, weight):
    """Rotation-based attention ``s[b,h,i,j] = sigmoid(sum_c w_c cos(q[b,i,h,c] - k[b,j,h,c]))``.

    ``queries``, ``keys``: angles ``(B, F, H, c)``; ``weight``: ``(c,)``. Computed as
    ``cos q cos k + sin q sin k``. Sigmoid, not softmax: the coefficients are unnormalized,
    so the resulting rotation orders are arbitrary. Returns ``(B, H, F, F)``.
    """
    cos_q, sin_q = tf.cos(queries) * weight, tf.sin(queries) * weight
    logits = (tf.einsum("bihc,bjhc->bhij", cos_q, tf.cos(keys))
              + tf.einsum("bihc,bjhc->bhij", sin_q, tf.sin(keys)))
    return tf.sigmoid(logits)


def _default_kernel_initializer():
    # xavier_normal with gain 1.414 (reference): std = gain * sqrt(2 / (fan_in + fan_out))
    return keras.initializers.VarianceScaling(scale=2.0, mode="fan_avg",
                                              distribution="untruncated_normal")


@keras.utils.register_keras_serializable(package="deeprec_lite")
class RFM(keras.layers.Layer):
    """Rotative Factorization Machine: embeddings are angles, feature interactions are rotations
    whose orders come from self-attention.

    Self-attentive rotation (SAR) layer, per field ``i`` (angles ``theta``, ``(B, F, d_in)``)::

        q_i, k_i, v_i = theta_i W^{q,k,v}_i          (per-field weights, F x d_in x d_out)
        s_ij = sigmoid(sum_c w_c cos(q_ic - k_jc))   (per head; w shared across heads)
        theta'_i = LayerNorm(sum_j s_ij dropout(v_j) + dropout(theta_i) W_res)

    ``W_res`` (``d_in x d_out``, no bias) is shared by the fields. After the SAR layers:
    ``r = cos theta``, ``p = sin theta``; with ``first_order_residual``
    ``r = LN(r + cos(Proj E))``, ``p = LN(p + sin(Proj E))`` (``Proj``: a Dense ``D -> d_out``
    with bias). AmpNet: for each width in ``amp_hidden_units``: dropout, one shared
    ``Linear`` + ReLU on ``flatten(r)`` and ``flatten(p)``, LayerNorm over groups of
    ``group_size`` (separate norms for real and imaginary parts); a final shared
    ``Linear(1)`` gives ``logit = Linear(real) + Linear(imag)``.

    Args:
        hidden_units: ``d_out`` of every SAR layer (grid 16..80).
        num_attention_layers: number of SAR layers (grid 1..3).
        num_heads: attention heads; ``hidden_units`` must be divisible by it.
        attention_dropout: dropout on the values and the residual input of each SAR layer.
        amp_hidden_units: AmpNet widths (grid ``[]``, ``[48]``, ``[128]``).
        group_size: LayerNorm group size of AmpNet (each width must be divisible by it).
        amp_dropout: dropout before each AmpNet Linear.
        first_order_residual: add the projected raw angles back (reference option).
        kernel_initializer: SAR weights (default xavier_normal with gain 1.414 as reference).
        kernel_regularizer: SAR weights, AmpNet kernels and the read-out kernel.

    Input shape: ``[B, F, D]`` (the embeddings as angles).
    Output shape: ``[B, 1]`` logit.

    Example:
        >>> from deeprec_lite.layers import RFM
        >>> import tensorflow as tf
        >>> x = tf.random.normal([2, 4, 6])  # B=2, F=4, D=6
        >>> RFM(hidden_units=8, num_heads=2, amp_hidden_units=[4], group_size=2)(x).shape
        TensorShape([2, 1])

    References:
        Tian et al., "Rotative Factorization Machines", KDD 2024.
    """

    def __init__(self, hidden_units=16, num_attention_layers=1, num_heads=1,
                 attention_dropout=0.0, amp_hidden_units=(), group_size=2, amp_dropout=0.0,
                 first_order_residual=True, kernel_initializer=None, kernel_regularizer=None,
                 **kwargs):
        super().__init__(**kwargs)
        self.hidden_units = check_positive_int(hidden_units, "hidden_units", _NAME)
        self.num_attention_layers = check_positive_int(num_attention_layers, "num_attention_layers",
                                                 _NAME)
        self.num_heads = check_positive_int(num_heads, "num_heads", _NAME)
        if self.hidden_units % self.num_heads:
            raise ValueError(f"{_NAME}: hidden_units={hidden_units} must be divisible by "
                             f"num_heads; received num_heads={num_heads!r}")
        self.attention_dropout = check_float(attention_dropout, "attention_dropout", _NAME,
                                             0.0, 1.0)
        self.amp_hidden_units = check_units(amp_hidden_units, "amp_hidden_units", _NAME)
        self.group_size = check_positive_int(group_size, "group_size", _NAME)
        bad = [u for u in self.amp_hidden_units if u % self.group_size]
        if bad:
            raise ValueError(f"{_NAME}: every amp_hidden_units width must be divisible by "
                             f"group_size={group_size}; "
                             f"received amp_hidden_units={amp_hidden_units!r}")
        self.amp_dropout = check_float(amp_dropout, "amp_dropout", _NAME, 0.0, 1.0)
        for arg in ("attention_dropout", "amp_dropout"):
            if getattr(self, arg) == 1.0:
                raise ValueError(f"{_NAME}: {arg} must be below 1; received {arg}=1.0")
        self.first_order_residual = bool(first_order_residual)
        self.kernel_initializer = keras.initializers.get(
            kernel_initializer if kernel_initializer is not None else _default_kernel_initializer())
        self.kernel_regularizer = keras.regularizers.get(kernel_regularizer)
        self.drop_attention = keras.layers.Dropout(self.attention_dropout)
        self.drop_amp = keras.layers.Dropout(self.amp_dropout)
        self.sar_norms = [keras.layers.LayerNormalization(epsilon=1e-5, name=f"sar_norm_{i}")
                          for i in range(self.num_attention_layers)]
        self.residual_norms = [keras.layers.LayerNormalization(epsilon=1e-5, name=n)
                               for n in ("residual_norm_real", "residual_norm_imag")
                               ] if self.first_order_residual else []
        small = keras.initializers.RandomNormal(stddev=0.01)
        self.projection = keras.layers.Dense(
            self.hidden_units, kernel_initializer=fresh_initializer(small),
            name="projection") if self.first_order_residual else None
        self.amp_dense = [keras.layers.Dense(u, activation="relu", name=f"amp_dense_{i}",
                                             kernel_initializer=fresh_initializer(small),
                                             kernel_regularizer=self.kernel_regularizer)
                          for i, u in enumerate(self.amp_hidden_units)]
        self.amp_norms_real, self.amp_norms_imag = (
            [keras.layers.LayerNormalization(epsilon=1e-5, name=f"amp_norm_{part}_{i}")
             for i in range(len(self.amp_hidden_units))] for part in ("real", "imag"))
        self.readout = keras.layers.Dense(1, name="readout", kernel_initializer="glorot_normal",
                                          kernel_regularizer=self.kernel_regularizer)

    def build(self, input_shape):
        num_fields, dim = field_shape(input_shape, _NAME)
        self.input_spec = keras.layers.InputSpec(ndim=3, axes={1: num_fields, 2: dim})
        self._num_fields = num_fields
        self.sar_query, self.sar_key, self.sar_value = [], [], []
        self.sar_residual, self.sar_rotation_weight = [], []
        d_in, d_out, head = dim, self.hidden_units, self.hidden_units // self.num_heads
        for i in range(self.num_attention_layers):
            for target, label in ((self.sar_query, "query"), (self.sar_key, "key"),
                                  (self.sar_value, "value")):
                target.append(self.add_weight(
                    name=f"sar_{label}_{i}", shape=(num_fields, d_in, d_out),
                    initializer=fresh_initializer(self.kernel_initializer),
                    regularizer=self.kernel_regularizer))
            self.sar_residual.append(self.add_weight(
                name=f"sar_residual_{i}", shape=(d_in, d_out),
                initializer=fresh_initializer(self.kernel_initializer),
                regularizer=self.kernel_regularizer))
            self.sar_rotation_weight.append(self.add_weight(
                name=f"sar_rotation_weight_{i}", shape=(head,),
                initializer=fresh_initializer(self.kernel_initializer),
                regularizer=self.kernel_regularizer))
            build_sublayer(self.sar_norms[i], (None, num_fields, d_out))
            d_in = d_out
        if self.first_order_residual:
            build_sublayer(self.projection, (None, num_fields, dim))
            for norm in self.residual_norms:
                build_sublayer(norm, (None, num_fields, d_out))
        width = num_fields * d_out
        for dense, nr, ni in zip(self.amp_dense, self.amp_norms_real, self.amp_norms_imag):
            build_sublayer(dense, (None, width))
            width = dense.units
            build_sublayer(nr, (None, width // self.group_size, self.group_size))
            build_sublayer(ni, (None, width // self.group_size, self.group_size))
        build_sublayer(self.readout, (None, width))
        super().build(input_shape)

    def _sar(self, i, theta, training):
        heads, head = self.num_heads, self.hidden_units // self.num_heads

        def project(w):
            return tf.reshape(tf.einsum("bfd,fdw->bfw", theta, w),
                              [-1, self._num_fields, heads, head])

        q, k, v = project(self.sar_query[i]), project(self.sar_key[i]), project(self.sar_value[i])
        scores = rotation_scores(q, k, self.sar_rotation_weight[i])  # (B, H, F, F)
        v = self.drop_attention(v, training=training)
        out = tf.reshape(tf.einsum("bhij,bjhc->bihc", scores, v),
                         [-1, self._num_fields, self.hidden_units])
        residual = tf.einsum("bfd,dw->bfw", self.drop_attention(theta, training=training),
                             self.sar_residual[i])
        return self.sar_norms[i](out + residual)

    def call(self, inputs, training=None):
        theta = inputs
        for i in range(self.num_attention_layers):  # sequential layers
            theta = self._sar(i, theta, training)
        real, imag = tf.cos(theta), tf.sin(theta)
        if self.first_order_residual:
            projected = self.projection(inputs)
            real = self.residual_norms[0](real + tf.cos(projected))
            imag = self.residual_norms[1](imag + tf.sin(projected))
        width = self._num_fields * self.hidden_units
        real, imag = tf.reshape(real, [-1, width]), tf.reshape(imag, [-1, width])
        for dense, nr, ni in zip(self.amp_dense, self.amp_norms_real, self.amp_norms_imag):
            groups = [-1, dense.units // self.group_size, self.group_size]
            real = dense(self.drop_amp(real, training=training))
            imag = dense(self.drop_amp(imag, training=training))
            real = tf.reshape(nr(tf.reshape(real, groups)), [-1, dense.units])
            imag = tf.reshape(ni(tf.reshape(imag, groups)), [-1, dense.units])
        return self.readout(real) + self.readout(imag)

    def compute_output_shape(self, input_shape):
        return tf.TensorShape(input_shape)[:1].concatenate([1])

    def get_config(self):
        config = super().get_config()
        config.update({
            "hidden_units": self.hidden_units,
            "num_attention_layers": self.num_attention_layers,
            "num_heads": self.num_heads,
            "attention_dropout": self.attention_dropout,
            "amp_hidden_units": list(self.amp_hidden_units),
            "group_size": self.group_size,
            "amp_dropout": self.amp_dropout,
            "first_order_residual": self.first_order_residual,
            "kernel_initializer": keras.initializers.serialize(self.kernel_initializer),
            "kernel_regularizer": keras.regularizers.serialize(self.kernel_regularizer),
        })
        return config
