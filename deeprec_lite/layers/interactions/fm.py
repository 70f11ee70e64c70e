"""FM: the second-order term of a factorization machine (Rendle, ICDM 2010)."""
from deeprec_lite.compat import keras, tf
from deeprec_lite.layers._common import field_shape

_OUTPUT_MODES = ("sum", "bi_interaction")


@keras.utils.register_keras_serializable(package="deeprec_lite")
class FM(keras.layers.Layer):
    """Factorization-machine pairwise interaction ``sum_{i<j} <e_i, e_j>``.

    Computed as ``bi = 0.5 * ((sum_i e_i)^2 - sum_i e_i^2)`` (element-wise over ``D``) in
    float32 whatever the layer's compute dtype (the subtraction cancels catastrophically in
    float16 / bfloat16); the result is cast back to the compute dtype. ``sum_d bi_d`` equals
    ``sum_{i<j} <e_i, e_j>``. No weights. Pool multi-hot fields to one vector per field
    first, or intra-field pairs get counted.

    Args:
        output_mode: ``"sum"`` (default) returns the FM logit term ``sum_d bi``;
            ``"bi_interaction"`` returns the bi-interaction vector ``bi`` (NFM pooling).

    Input shape: ``[B, F, D]`` (stacked field embeddings).
    Output shape: ``[B, 1]`` for ``"sum"``, ``[B, D]`` for ``"bi_interaction"``.

    Example:
        >>> from deeprec_lite.layers import FM
        >>> import tensorflow as tf
        >>> x = tf.random.normal([2, 3, 4])  # B=2, F=3, D=4
        >>> FM()(x).shape
        TensorShape([2, 1])
        >>> FM(output_mode="bi_interaction")(x).shape
        TensorShape([2, 4])

    References:
        - Rendle, "Factorization Machines", ICDM 2010.
        - He and Chua, "Neural Factorization Machines for Sparse Predictive Analytics",
          SIGIR 2017 (bi-interaction pooling).
        - Guo et al., "DeepFM: A Factorization-Machine based Neural Network for CTR
          Prediction", IJCAI 2017.
    """

    def __init__(self, output_mode="sum", **kwargs):
        super().__init__(**kwargs)
        if output_mode not in _OUTPUT_MODES:
            raise ValueError(
                f"FM: output_mode must be one of {_OUTPUT_MODES}; "
                f"received output_mode={output_mode!r}")
        self.output_mode = output_mode

    def build(self, input_shape):
        field_shape(input_shape, "FM")
        self.input_spec = keras.layers.InputSpec(ndim=3)
        super().build(input_shape)

    def call(self, inputs):
        e = tf.cast(inputs, tf.float32)
        square_of_sum = tf.square(tf.reduce_sum(e, axis=1))
        sum_of_squares = tf.reduce_sum(tf.square(e), axis=1)
        bi = 0.5 * (square_of_sum - sum_of_squares)
        if self.output_mode == "sum":
            bi = tf.reduce_sum(bi, axis=-1, keepdims=True)
        return tf.cast(bi, self.compute_dtype)

    def compute_output_shape(self, input_shape):
        shape = tf.TensorShape(input_shape)
        return shape[:1].concatenate([1 if self.output_mode == "sum" else shape[2]])

    def get_config(self):
        config = super().get_config()
        config.update({"output_mode": self.output_mode})
        return config
