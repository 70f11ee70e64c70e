"""CrossNetMix: DCN-Mix, a mixture of low-rank cross experts (Wang et al., WWW 2021)."""
from deeprec_lite.compat import keras, tf
from deeprec_lite.layers.interactions._cross_base import CrossLayerBase
from deeprec_lite._checks import check_positive_int


@keras.utils.register_keras_serializable(package="deeprec_lite")
class CrossNetMix(CrossLayerBase):
    """Stack of DCN-Mix layers: ``x_{l+1} = sum_k G_k(x_l) E_k(x_l) + x_l``.

    Expert ``k`` (``K = num_experts``, rank ``r = low_rank``):
    ``E_k(x) = x0 * (U_k g(C_k g(V_k^T x)) + b_l)``, with ``g = tanh`` when ``nonlinear``;
    the linear variant has no ``C`` and ``g = identity``:
    ``E_k(x) = x0 * (U_k V_k^T x + b_l)``.
    Gate: ``G(x) = softmax_k(x @ gate_kernel_l)`` over the experts (no gate bias). All
    experts run at once with einsum (no loop over experts).

    Weights per layer: ``U_l, V_l``: ``(K, d, r)``; ``C_l``: ``(K, r, r)`` (nonlinear only);
    ``gate_kernel_l``: ``(d, K)``; ``bias_l``: ``(d,)`` shared by the experts. Glorot fans of
    the stacked ``(K, d, r)`` kernels follow the Keras convention (the expert axis counts as a
    receptive field), i.e. a ``1/sqrt(K)`` smaller scale than per-expert initialization.

    Args:
        num_layers: number of cross layers (default 3, FuxiCTR).
        num_experts: K (default 4).
        low_rank: r (default 32).
        nonlinear: True (default) for the tanh + C variant, False for the linear mixture.
        kernel_initializer, bias_initializer: default ``"glorot_normal"``, ``"zeros"``.
        kernel_regularizer, bias_regularizer: optional regularizers (kernel one applies to
            U, V, C and the gate).

    Input shape: ``x0`` ``[B, d]`` or a list ``[x0, x]`` of two ``[B, d]`` tensors.
    Output shape: ``[B, d]``.

    Example:
        >>> from deeprec_lite.layers import CrossNetMix
        >>> import tensorflow as tf
        >>> x0 = tf.random.normal([2, 12])  # B=2, d=12
        >>> CrossNetMix(num_layers=2, num_experts=3, low_rank=4)(x0).shape
        TensorShape([2, 12])

    References:
        Wang et al., "DCN V2: Improved Deep & Cross Network and Practical Lessons for
        Web-scale Learning to Rank Systems", WWW 2021 (mixture of low-rank experts).
    """

    def __init__(self, num_layers=3, num_experts=4, low_rank=32, nonlinear=True,
                 kernel_initializer="glorot_normal", bias_initializer="zeros",
                 kernel_regularizer=None, bias_regularizer=None, **kwargs):
        super().__init__(num_layers, kernel_initializer, bias_initializer, kernel_regularizer,
                         bias_regularizer, **kwargs)
        self.num_experts = check_positive_int(num_experts, "num_experts", "CrossNetMix")
        self.low_rank = check_positive_int(low_rank, "low_rank", "CrossNetMix")
        self.nonlinear = bool(nonlinear)

    def build(self, input_shape):
        dim = self._input_dim(input_shape)
        k, r = self.num_experts, self.low_rank
        self.u_kernels = self._weights("U", (k, dim, r))
        self.v_kernels = self._weights("V", (k, dim, r))
        self.c_kernels = self._weights("C", (k, r, r)) if self.nonlinear else []
        self.gate_kernels = self._weights("gate_kernel", (dim, k))
        self.biases = self._weights("bias", (dim,), bias=True)
        super().build(input_shape)

    def call(self, inputs):
        x0, x = self._split(inputs)
        for i in range(self.num_layers):
            v = tf.einsum("bd,kdr->bkr", x, self.v_kernels[i])
            if self.nonlinear:
                v = tf.einsum("bks,krs->bkr", tf.tanh(v), self.c_kernels[i])
                v = tf.tanh(v)
            u = tf.einsum("bkr,kdr->bkd", v, self.u_kernels[i])
            experts = x0[:, None, :] * (u + self.biases[i])  # (batch, K, d)
            gates = tf.nn.softmax(tf.matmul(x, self.gate_kernels[i]), axis=-1)  # (batch, K)
            x = tf.einsum("bk,bkd->bd", gates, experts) + x
        return x

    def get_config(self):
        config = super().get_config()
        config.update({
            "num_experts": self.num_experts,
            "low_rank": self.low_rank,
            "nonlinear": self.nonlinear,
        })
        return config
