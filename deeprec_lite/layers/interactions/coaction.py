"""CoActionUnit: the CAN feature co-action unit (Bian et al., WSDM 2022)."""
from deeprec_lite.compat import keras, tf
from deeprec_lite.layers._common import check_units
from deeprec_lite._checks import check_positive_int

_NAME = "CoActionUnit"


def _block_layout(feed_dim, hidden_units, use_bias):
    """(din, dout, weight offset, bias offset or None) per micro-MLP layer, and the block size."""
    layout, offset, din = [], 0, feed_dim
    for dout in hidden_units:
        w_off = offset
        offset += din * dout
        b_off = None
        if use_bias:
            b_off, offset = offset, offset + dout
        layout.append((din, dout, w_off, b_off))
        din = dout
    return layout, offset


@keras.utils.register_keras_serializable(package="deeprec_lite")
class CoActionUnit(keras.layers.Layer):
    """Feature co-action unit of CAN: induction-feature parameters run a micro-MLP on feed features.

    The *induction* feature (e.g. the target item) carries a parameter vector ``P_ind``
    (a row of its own wide embedding table) that is reshaped into a micro-MLP; the *feed*
    feature (e.g. each item of the user's history) carries a small embedding ``P_feed``
    that is pushed through that MLP. For every order ``c = 1..orders``::

        h_0 = P_feed ** c                      (element-wise power)
        h_k = act(h_{k-1} W_k [+ b_k])         (act = tanh; none on the last layer)
        out_c = sum_t mask_t [h_1, ..., h_K]   (outputs of all layers, summed over history)

    The outputs of all layers are concatenated (``sum(hidden_units)`` values per order),
    multiplied by the mask and summed over the history axis. The layer has no weights of
    its own: all parameters arrive in ``P_ind``.

    ``P_ind`` layout (per order block): ``W_1`` (row-major ``din x dout``), ``b_1`` if
    ``use_bias``, ``W_2``, ``b_2``, ... With ``order_independent=True`` there is one block per
    order (``orders`` times the size), else every order shares one block. Size it with
    :meth:`induction_size`.

    Independence levels (paper): *parameter independence* (required) means ``P_ind`` and
    ``P_feed`` come from co-action tables separate from the main embeddings; *combination
    independence* means a separate induction slice and feed table per (induction, feed)
    feature pair: call one ``CoActionUnit`` per pair with its own slices and concatenate;
    *order independence* is ``order_independent=True``.

    Args:
        hidden_units: widths of the micro-MLP layers (reference ``(8, 4)`` with feed dim 16,
            i.e. ``weight_emb_w = [[16, 8], [8, 4]]``).
        orders: ``C``, the number of powers of ``P_feed`` (reference 3).
        order_independent: a separate micro-MLP per order (reference default False).
        use_bias: micro-MLP layers have biases taken from ``P_ind`` (reference False).
        activation: hidden activation (default ``"tanh"``).

    Input shape: ``[induction, feed]`` or ``[induction, feed, mask]``: induction
    ``[B, induction_size]``; feed ``[B, T, feed_dim]`` or ``[B, feed_dim]`` (``T = 1``);
    mask ``[B, T]`` (bool or 0/1), optional.
    Output shape: ``[B, orders * sum(hidden_units)]``, order-major.

    Example:
        >>> from deeprec_lite.layers import CoActionUnit
        >>> import tensorflow as tf
        >>> size = CoActionUnit.induction_size(feed_dim=4, hidden_units=[4, 2])  # 4*4 + 4*2
        >>> induction = tf.random.normal([2, size])  # B=2
        >>> feed = tf.random.normal([2, 5, 4])  # T=5 history items, feed_dim=4
        >>> mask = tf.sequence_mask([3, 5], 5)
        >>> CoActionUnit(hidden_units=[4, 2], orders=2)([induction, feed, mask]).shape
        TensorShape([2, 12])

    References:
        Bian et al., "CAN: Feature Co-Action Network for Click-Through Rate Prediction",
        WSDM 2022 (arXiv 2011.05625).
    """

    def __init__(self, hidden_units=(8, 4), orders=3, order_independent=False, use_bias=False,
                 activation="tanh", **kwargs):
        super().__init__(**kwargs)
        self.hidden_units = check_units(hidden_units, "hidden_units", _NAME, allow_empty=False)
        self.orders = check_positive_int(orders, "orders", _NAME)
        self.order_independent = bool(order_independent)
        self.use_bias = bool(use_bias)
        self.activation = keras.activations.get(activation)

    @staticmethod
    def induction_size(feed_dim, hidden_units=(8, 4), orders=3, order_independent=False,
                       use_bias=False):
        """Length of ``P_ind`` for these settings (reference: 160 for feed dim 16, (8, 4))."""
        _, block = _block_layout(int(feed_dim), list(hidden_units), bool(use_bias))
        return block * (int(orders) if order_independent else 1)

    def _check_shapes(self, input_shape):
        """Check ``[induction, feed(, mask)]`` shapes (statically known sizes); return feed_dim."""
        if not isinstance(input_shape, (list, tuple)) or len(input_shape) not in (2, 3):
            raise ValueError(f"{_NAME} expects inputs [induction, feed] or [induction, feed, "
                             f"mask]; received input_shape={input_shape}")
        shapes = [tf.TensorShape(s) for s in input_shape]
        ind, feed = shapes[0], shapes[1]
        if ind.rank != 2 or feed.rank not in (2, 3) or feed[-1] is None:
            raise ValueError(f"{_NAME}: induction must be (batch, n) and feed (batch, T, d) or "
                             f"(batch, d) with known d; received shapes {ind} and {feed}")
        if len(shapes) == 3:
            history = feed[1] if feed.rank == 3 else 1
            if not shapes[2].is_compatible_with([None, history]):
                raise ValueError(f"{_NAME}: mask must be (batch, T) with the feed's T={history}; "
                                 f"received mask shape {shapes[2]} for feed shape {feed}")
        batches = {s[0] for s in shapes if s[0] is not None}
        if len(batches) > 1:
            raise ValueError(f"{_NAME}: induction, feed and mask must have the same batch size; "
                             f"received shapes {', '.join(str(s) for s in shapes)}")
        expected = self.induction_size(feed[-1], self.hidden_units, self.orders,
                                       self.order_independent, self.use_bias)
        if ind[-1] is not None and ind[-1] != expected:
            raise ValueError(
                f"{_NAME}: the induction vector must have induction_size(feed_dim={feed[-1]}) = "
                f"{expected} values for hidden_units={self.hidden_units}, orders={self.orders}, "
                f"order_independent={self.order_independent}, use_bias={self.use_bias}; "
                f"received induction shape {ind}")
        return int(feed[-1])

    def build(self, input_shape):
        self._feed_dim = self._check_shapes(input_shape)
        self._layout, self._block = _block_layout(self._feed_dim, self.hidden_units, self.use_bias)
        super().build(input_shape)

    def call(self, inputs):
        if self._check_shapes([t.shape for t in inputs]) != self._feed_dim:
            raise ValueError(f"{_NAME} was built for feed_dim={self._feed_dim}; received feed "
                             f"shape {inputs[1].shape}")
        induction, feed = inputs[0], inputs[1]
        mask = inputs[2] if len(inputs) > 2 else None
        if feed.shape.rank == 2:
            feed = feed[:, None, :]
        # h0 for every order at once: cumulative product gives x, x^2, ..., x^C exactly
        h = tf.math.cumprod(tf.repeat(feed[:, None], self.orders, axis=1), axis=1)  # B,C,T,d
        blocks = self.orders if self.order_independent else 1
        params = tf.reshape(induction, [-1, blocks, self._block])
        outputs = []
        for k, (din, dout, w_off, b_off) in enumerate(self._layout):
            w = tf.reshape(params[:, :, w_off:w_off + din * dout], [-1, blocks, din, dout])
            if self.order_independent:
                h = tf.einsum("bctd,bcde->bcte", h, w)
            else:
                h = tf.einsum("bctd,bde->bcte", h, w[:, 0])
            if b_off is not None:
                h = h + params[:, :, None, b_off:b_off + dout]
            if k < len(self._layout) - 1:
                h = self.activation(h)
            outputs.append(h)
        out = tf.concat(outputs, axis=-1)  # B,C,T,S
        if mask is not None:
            out = out * tf.cast(mask, out.dtype)[:, None, :, None]
        out = tf.reduce_sum(out, axis=2)
        return tf.reshape(out, [-1, self.orders * sum(self.hidden_units)])

    def compute_output_shape(self, input_shape):
        return tf.TensorShape([input_shape[0][0], self.orders * sum(self.hidden_units)])

    def get_config(self):
        config = super().get_config()
        config.update({
            "hidden_units": list(self.hidden_units),
            "orders": self.orders,
            "order_independent": self.order_independent,
            "use_bias": self.use_bias,
            "activation": keras.activations.serialize(self.activation),
        })
        return config
