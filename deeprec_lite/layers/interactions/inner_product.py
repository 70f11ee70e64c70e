"""InnerProduct: the IPNN pairwise inner-product layer (Qu et al., ICDM 2016)."""
from deeprec_lite.compat import keras, tf
from deeprec_lite.layers._common import field_shape
from deeprec_lite.layers.interactions._pairs import gather_pairs


@keras.utils.register_keras_serializable(package="deeprec_lite")
class InnerProduct(keras.layers.Layer):
    """Inner products of every field pair: ``p_ij = <e_i, e_j>`` for ``i < j``.

    Pairs come in ``np.triu_indices(F, 1)`` order: (0,1), (0,2), ..., (1,2), ... IPNN
    feeds ``concat(flatten(E), p)`` to its MLP. No weights.

    Args:
        None beyond the standard Keras layer ones (``name``, ``dtype``, ...).

    Input shape: ``[B, F, D]`` with ``F >= 2``.
    Output shape: ``[B, F*(F-1)/2]``.

    Example:
        >>> from deeprec_lite.layers import InnerProduct
        >>> import tensorflow as tf
        >>> x = tf.random.normal([2, 4, 3])  # B=2, F=4, D=3
        >>> InnerProduct()(x).shape
        TensorShape([2, 6])

    References:
        Qu et al., "Product-based Neural Networks for User Response Prediction", ICDM 2016.
    """

    def build(self, input_shape):
        self.num_fields, dim = field_shape(input_shape, "InnerProduct", min_fields=2)
        self.input_spec = keras.layers.InputSpec(ndim=3, axes={1: self.num_fields, 2: dim})
        super().build(input_shape)

    def call(self, inputs):
        left, right = gather_pairs(inputs, self.num_fields)
        return tf.reduce_sum(left * right, axis=-1)

    def compute_output_shape(self, input_shape):
        f, _ = field_shape(input_shape, "InnerProduct")
        return tf.TensorShape(input_shape)[:1].concatenate([f * (f - 1) // 2])
