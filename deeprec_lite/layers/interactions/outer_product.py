"""OuterProduct: the PNN kernel-product layer used for OPNN (Qu et al., ICDM 2016 / TOIS 2018)."""
from deeprec_lite.compat import keras, tf
from deeprec_lite.layers._common import field_shape, fresh_initializer
from deeprec_lite.layers.interactions._pairs import gather_pairs

_KERNEL_TYPES = ("mat", "vec", "num")


@keras.utils.register_keras_serializable(package="deeprec_lite")
class OuterProduct(keras.layers.Layer):
    """Kernel product of every field pair: ``p_ij = e_i^T K_ij e_j`` for ``i < j``.

    With ``P = F(F-1)/2`` pairs in ``np.triu_indices(F, 1)`` order:

    - ``"mat"``: ``K`` has shape ``(D, P, D)``, ``p = sum_{a,b} e_i[a] K[a, p, b] e_j[b]``
      (a full ``D x D`` matrix per pair, ``P * D^2`` weights);
    - ``"vec"``: ``K`` has shape ``(P, D)``, ``p = sum_d K[p, d] e_i[d] e_j[d]``;
    - ``"num"``: ``K`` has shape ``(P, 1)``, ``p = K[p] <e_i, e_j>``.

    A ``"vec"`` kernel of ones (or ``"num"`` ones, or ``"mat"`` identities) gives IPNN.
    This is the kernel product of the PNN authors' code and the TOIS 2018 paper, one scalar
    per pair; it is not the ICDM 2016 OPNN outer product ``f_S f_S^T`` of the summed
    embeddings ``f_S = sum_i e_i`` (a ``D x D`` matrix that includes self terms).

    Args:
        kernel_type: ``"mat"`` (default), ``"vec"`` or ``"num"``.
        kernel_initializer: initializer of ``K`` (default ``"glorot_uniform"``).
        kernel_regularizer: optional regularizer of ``K``.

    Input shape: ``[B, F, D]`` with ``F >= 2``.
    Output shape: ``[B, F*(F-1)/2]``.

    Example:
        >>> from deeprec_lite.layers import OuterProduct
        >>> import tensorflow as tf
        >>> x = tf.random.normal([2, 4, 3])  # B=2, F=4, D=3
        >>> OuterProduct(kernel_type="mat")(x).shape
        TensorShape([2, 6])

    References:
        - Qu et al., "Product-based Neural Networks for User Response Prediction", ICDM 2016.
        - Qu et al., "Product-Based Neural Networks for User Response Prediction over
          Multi-Field Categorical Data", ACM TOIS 2018 (kernel product).
    """

    def __init__(self, kernel_type="mat", kernel_initializer="glorot_uniform",
                 kernel_regularizer=None, **kwargs):
        super().__init__(**kwargs)
        if kernel_type not in _KERNEL_TYPES:
            raise ValueError(
                f"OuterProduct: kernel_type must be one of {_KERNEL_TYPES}; "
                f"received kernel_type={kernel_type!r}")
        self.kernel_type = kernel_type
        self.kernel_initializer = keras.initializers.get(kernel_initializer)
        self.kernel_regularizer = keras.regularizers.get(kernel_regularizer)

    def build(self, input_shape):
        self.num_fields, dim = field_shape(input_shape, "OuterProduct", min_fields=2)
        self.input_spec = keras.layers.InputSpec(ndim=3, axes={1: self.num_fields, 2: dim})
        pairs = self.num_fields * (self.num_fields - 1) // 2
        shape = {"mat": (dim, pairs, dim), "vec": (pairs, dim), "num": (pairs, 1)}[self.kernel_type]
        self.kernel = self.add_weight(
            name="kernel", shape=shape, initializer=fresh_initializer(self.kernel_initializer),
            regularizer=self.kernel_regularizer, trainable=True)
        super().build(input_shape)

    def call(self, inputs):
        left, right = gather_pairs(inputs, self.num_fields)
        if self.kernel_type == "mat":
            left = tf.einsum("bpa,apc->bpc", left, self.kernel)  # e_i^T K_ij, per pair
            return tf.reduce_sum(left * right, axis=-1)
        return tf.reduce_sum(left * right * self.kernel, axis=-1)

    def compute_output_shape(self, input_shape):
        f, _ = field_shape(input_shape, "OuterProduct")
        return tf.TensorShape(input_shape)[:1].concatenate([f * (f - 1) // 2])

    def get_config(self):
        config = super().get_config()
        config.update({
            "kernel_type": self.kernel_type,
            "kernel_initializer": keras.initializers.serialize(self.kernel_initializer),
            "kernel_regularizer": keras.regularizers.serialize(self.kernel_regularizer),
        })
        return config
