"""DynInt: PIN (xDeepInt) with instance-dependent interactions (Yan and Li, arXiv 2023)."""
from deeprec_lite._checks import check_positive_int
from deeprec_lite.compat import keras, tf
from deeprec_lite.layers._common import check_choice, check_units, field_shape, fresh_initializer

_NAME = "DynInt"
_MODES = ("DA", "DGP", "DWP")
_GRANULARITIES = ("vector", "bit")


@keras.utils.register_keras_serializable(package="deeprec_lite")
class DynInt(keras.layers.Layer):
    """DynInt: the xDeepInt polynomial interaction network (PIN) made data-dependent.

    PIN with subspace crossing: ``E`` (``B x F x D``) is split into ``h = num_subspaces``
    subspaces of ``k = D/h`` coordinates, stacked along the field axis (field-major: row
    ``f*h + s`` holds ``E[:, f, s*k:(s+1)*k]``), giving ``X0`` (``B x n x k``, ``n = F*h``);
    each layer ``l`` computes the residual update ``X_l = X_{l-1} * (1 + f(W_l X0))`` with
    ``W_l`` (``n x n``) mixing field-vectors, ``(W_l X0)[i] = sum_j W_l[i, j] X0[j]`` (no
    bias). The output is ``X_L`` merged back to ``B x F x D``. Note the kernel layout: the
    ``PIN`` layer mixes with ``sum_i W[i, o] X0[i]``, so a ``PIN`` kernel corresponds to the
    transposed ``pin_kernel`` here.

    Modes (ctx = ``flatten(E)``; each layer has its own generator network, an MLP with
    ``generator_hidden_units`` then a linear output):

    * ``"DA"`` (dynamic activation): ``X_l = X_{l-1} * (1 + g_l * f(W_l X0))`` with
      ``g_l = sigmoid(gen_l(ctx))`` of shape ``B x n x 1`` (``gate_granularity="vector"``)
      or ``B x n x k`` (``"bit"``).
    * ``"DGP"`` (dynamic gated parameters): ``W_l(x) = W_l * G_l(x)``,
      ``G_l = sigmoid(gen_l(ctx))`` (``B x n x n``), applied per sample with
      ``einsum('bij,bjk->bik')``. Costs ``B * n^2`` memory: keep ``n`` small.
    * ``"DWP"`` (dynamic generated weights, low rank): ``W_l(x) = W_l + U_l(x) V_l(x)^T``,
      ``U_l, V_l`` (``B x n x rank``) generated linearly by ``gen_l``; computed as
      ``W_l X0 + U_l (V_l^T X0)`` without materializing per-sample ``n x n`` matrices.

    Reductions (exact by construction, tested against a numpy PIN): a gate identically 1
    (DA, DGP) or a generated delta identically 0 (DWP) gives PIN.

    UNVERIFIED: the DynInt paper's full text and code were not available. The abstract
    confirms the two families (dynamic activation via instance-aware activation gating;
    dynamic parameters re-parameterized and generated per instance). The exact formulas
    above are this library's own reading of the abstract, not the paper's; in particular
    the gate placement, the sigmoid squashing, the generator architecture and input
    (``flatten(E)``), and the assignment of the names DGP (gated) / DWP (generated
    low-rank) to the two dynamic-parameter variants are guesses to be checked against
    the paper.

    Args:
        mode: ``"DA"``, ``"DGP"`` or ``"DWP"``.
        num_layers: ``L`` interaction layers (degree ``L + 1`` polynomial of ``X0``).
        num_subspaces: ``h``; must divide the embedding dim (``1`` vector-wise, ``D`` bit-wise).
        activation: ``f`` (reference experiment: linear).
        gate_granularity: ``"vector"`` or ``"bit"`` gate shape for ``"DA"``.
        rank: rank of the generated delta for ``"DWP"``.
        generator_hidden_units: hidden widths of each generator MLP (default none: linear).
        generator_activation: activation of those hidden layers.
        kernel_initializer, kernel_regularizer: for the PIN weights ``W_l``.
        generator_initializer, generator_regularizer: for the generator kernels.

    Input shape: ``[B, F, D]``.
    Output shape: ``[B, F, D]``.

    Example:
        >>> from deeprec_lite.layers import DynInt
        >>> import tensorflow as tf
        >>> x = tf.random.normal([2, 3, 4])  # B=2, F=3, D=4
        >>> DynInt(mode="DWP", num_layers=2, num_subspaces=2, rank=2)(x).shape
        TensorShape([2, 3, 4])

    References:
        - Yan and Li, "DynInt: Dynamic Interaction Modeling for Large-scale Click-Through
          Rate Prediction", arXiv 2301.08139, 2023.
        - Yan and Li, "xDeepInt: a Hybrid Architecture for Modeling the Vector-wise and
          Bit-wise Feature Interactions", DLP-KDD 2020 (PIN).
    """

    def __init__(self, mode="DA", num_layers=2, num_subspaces=1, activation="linear",
                 gate_granularity="vector", rank=4, generator_hidden_units=(),
                 generator_activation="relu", kernel_initializer="glorot_uniform",
                 kernel_regularizer=None, generator_initializer="glorot_uniform",
                 generator_regularizer=None, **kwargs):
        super().__init__(**kwargs)
        self.mode = check_choice(mode, _MODES, "mode", _NAME)
        self.num_layers = check_positive_int(num_layers, "num_layers", _NAME)
        self.num_subspaces = check_positive_int(num_subspaces, "num_subspaces", _NAME)
        self.activation = keras.activations.get(activation)
        self.gate_granularity = check_choice(gate_granularity, _GRANULARITIES,
                                             "gate_granularity", _NAME)
        self.rank = check_positive_int(rank, "rank", _NAME)
        self.generator_hidden_units = check_units(generator_hidden_units,
                                                  "generator_hidden_units", _NAME)
        self.generator_activation = keras.activations.get(generator_activation)
        self.kernel_initializer = keras.initializers.get(kernel_initializer)
        self.kernel_regularizer = keras.regularizers.get(kernel_regularizer)
        self.generator_initializer = keras.initializers.get(generator_initializer)
        self.generator_regularizer = keras.regularizers.get(generator_regularizer)

    def _generator_width(self):
        n, k = self._n, self._k
        if self.mode == "DA":
            return n if self.gate_granularity == "vector" else n * k
        if self.mode == "DGP":
            return n * n
        return 2 * n * self.rank

    def build(self, input_shape):
        num_fields, dim = field_shape(input_shape, _NAME)
        self.input_spec = keras.layers.InputSpec(ndim=3, axes={1: num_fields, 2: dim})
        if dim % self.num_subspaces:
            raise ValueError(f"{_NAME}: num_subspaces must divide embedding_dim={dim}; "
                             f"received num_subspaces={self.num_subspaces}")
        self._fields, self._dim = num_fields, dim
        self._n, self._k = num_fields * self.num_subspaces, dim // self.num_subspaces
        self.pin_kernels, self.generator_kernels, self.generator_biases = [], [], []
        widths = [num_fields * dim] + self.generator_hidden_units + [self._generator_width()]
        for l in range(self.num_layers):
            self.pin_kernels.append(self.add_weight(
                name=f"pin_kernel_{l}", shape=(self._n, self._n),
                initializer=fresh_initializer(self.kernel_initializer),
                regularizer=self.kernel_regularizer))
            kernels, biases = [], []
            for j, (w_in, w_out) in enumerate(zip(widths[:-1], widths[1:])):
                kernels.append(self.add_weight(
                    name=f"generator_kernel_{l}_{j}", shape=(w_in, w_out),
                    initializer=fresh_initializer(self.generator_initializer),
                    regularizer=self.generator_regularizer))
                biases.append(self.add_weight(name=f"generator_bias_{l}_{j}", shape=(w_out,),
                                              initializer="zeros"))
            self.generator_kernels.append(kernels)
            self.generator_biases.append(biases)
        super().build(input_shape)

    def _generate(self, l, ctx):
        h = ctx
        last = len(self.generator_kernels[l]) - 1
        pairs = zip(self.generator_kernels[l], self.generator_biases[l])
        for j, (kernel, bias) in enumerate(pairs):
            h = tf.matmul(h, kernel) + bias
            if j < last:
                h = self.generator_activation(h)
        return h

    def _mixed(self, l, x0, ctx):
        """``W_l(x) X0`` for the mode (``B x n x k``), and the DA gate (or None)."""
        n, w = self._n, self.pin_kernels[l]
        if self.mode == "DGP":
            gate = tf.reshape(tf.sigmoid(self._generate(l, ctx)), [-1, n, n])
            return tf.einsum("bij,bjk->bik", w[None] * gate, x0), None
        static = tf.einsum("ij,bjk->bik", w, x0)
        if self.mode == "DWP":
            uv = tf.reshape(self._generate(l, ctx), [-1, n, 2, self.rank])
            u, v = uv[:, :, 0], uv[:, :, 1]
            return static + tf.einsum("bir,brk->bik", u, tf.einsum("bjr,bjk->brk", v, x0)), None
        width = 1 if self.gate_granularity == "vector" else self._k
        return static, tf.reshape(tf.sigmoid(self._generate(l, ctx)), [-1, n, width])

    def call(self, inputs):
        x0 = tf.reshape(inputs, [-1, self._n, self._k])
        ctx = tf.reshape(inputs, [-1, self._fields * self._dim])
        x = x0
        for l in range(self.num_layers):  # sequential layers
            mixed, gate = self._mixed(l, x0, ctx)
            interaction = self.activation(mixed)
            if gate is not None:
                interaction = gate * interaction
            x = x * (1.0 + interaction)
        return tf.reshape(x, [-1, self._fields, self._dim])

    def compute_output_shape(self, input_shape):
        return tf.TensorShape(input_shape)

    def get_config(self):
        config = super().get_config()
        config.update({
            "mode": self.mode,
            "num_layers": self.num_layers,
            "num_subspaces": self.num_subspaces,
            "activation": keras.activations.serialize(self.activation),
            "gate_granularity": self.gate_granularity,
            "rank": self.rank,
            "generator_hidden_units": list(self.generator_hidden_units),
            "generator_activation": keras.activations.serialize(self.generator_activation),
            "kernel_initializer": keras.initializers.serialize(self.kernel_initializer),
            "kernel_regularizer": keras.regularizers.serialize(self.kernel_regularizer),
            "generator_initializer": keras.initializers.serialize(self.generator_initializer),
            "generator_regularizer": keras.regularizers.serialize(self.generator_regularizer),
        })
        return config
