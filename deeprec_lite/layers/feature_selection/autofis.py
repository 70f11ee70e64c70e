"""AutoFISGate: gated pairwise interactions for interaction selection (Liu et al., KDD 2020)."""
import numpy as np

from deeprec_lite.compat import keras, tf
from deeprec_lite.layers._common import build_sublayer, check_choice, check_float, field_shape
from deeprec_lite.layers.interactions._pairs import pair_indices

_NAME = "AutoFISGate"
#: the optimizer group of the gates (see deeprec_lite.training.optimizers.KVOptimizer)
OPTIMIZER_GROUP = "autofis_gates"
_OUTPUT_MODES = ("sum", "pairs")


@keras.utils.register_keras_serializable(package="deeprec_lite")
class AutoFISGate(keras.layers.Layer):
    """AutoFIS gated second-order interactions.

    ``p_ij = <e_i, e_j>`` for the kept pairs ``i < j`` (``np.triu_indices`` order) ->
    BatchNormalization **without** scale and center (so the gate ``alpha`` alone carries the
    pair's importance) -> ``p * alpha`` with one gate ``alpha_ij`` per pair. ``"sum"`` mode
    returns ``sum_{(i,j) kept} alpha_ij BN(<e_i, e_j>)``.

    Search stage: train ``alpha`` (:attr:`gate_weights`) with the sparsifying
    :class:`~deeprec_lite.layers.feature_selection.grda.GRDA` optimizer and all other weights with Adam:
    under ``model.fit``, compile with ``KVOptimizer(sparse, Adam(...),
    groups={"autofis_gates": GRDA(...)})`` (the gate variable is tagged with that group).
    Retrain stage: build a new layer with ``comb_mask=layer.selected_pairs()`` (pairs whose
    gate is exactly zero are dropped) and train everything with Adam, as the reference does.
    The BatchNorm makes training outputs batch-dependent; inference uses moving statistics.

    Args:
        output_mode: ``"sum"`` (default): the AutoFM second-order logit ``[B, 1]``;
            ``"pairs"``: the gated pair vector ``[B, P_kept]`` (e.g. for AutoDeepFM).
        comb_mask: optional 0/1 sequence of length ``P = F(F-1)/2``; only pairs with 1 are
            computed (retrain stage). None keeps all pairs.
        use_batch_norm: the non-affine BatchNorm (default True; off only for ablations).
        momentum, epsilon: of the BatchNorm.
        alpha_initializer: default ``RandomUniform(0.599, 0.601)`` (reference ``0.6 +- 0.001``).
        alpha_regularizer: optional regularizer of ``alpha``.

    Input shape: ``[B, F, D]`` with ``F >= 2``.
    Output shape: ``[B, 1]`` (``"sum"``) or ``[B, P_kept]`` (``"pairs"``; ``P_kept =
    F*(F-1)/2`` without ``comb_mask``).

    Example:
        >>> from deeprec_lite.layers import AutoFISGate
        >>> import tensorflow as tf
        >>> x = tf.random.normal([2, 4, 3])  # B=2, F=4, D=3: 6 pairs
        >>> AutoFISGate()(x).shape
        TensorShape([2, 1])
        >>> AutoFISGate(output_mode="pairs", comb_mask=[1, 0, 1, 1, 0, 1])(x).shape
        TensorShape([2, 4])

    References:
        Liu et al., "AutoFIS: Automatic Feature Interaction Selection in Factorization Models
        for Click-Through Rate Prediction", KDD 2020.
    """

    def __init__(self, output_mode="sum", comb_mask=None, use_batch_norm=True, momentum=0.99,
                 epsilon=1e-3, alpha_initializer=None, alpha_regularizer=None, **kwargs):
        super().__init__(**kwargs)
        self.output_mode = check_choice(output_mode, _OUTPUT_MODES, "output_mode", _NAME)
        if comb_mask is not None:
            mask = np.asarray(comb_mask)
            if mask.ndim != 1 or not np.all(np.isin(mask, (0, 1))) or not mask.any():
                raise ValueError(f"{_NAME}: comb_mask must be a 1-D sequence of 0/1 keeping at "
                                 f"least one pair; received comb_mask={comb_mask!r}")
            comb_mask = [int(m) for m in mask]
        self.comb_mask = comb_mask
        self.use_batch_norm = bool(use_batch_norm)
        self.momentum = check_float(momentum, "momentum", _NAME, low=0.0, high=1.0)
        self.epsilon = check_float(epsilon, "epsilon", _NAME, low=0.0, low_open=True)
        if alpha_initializer is None:
            alpha_initializer = keras.initializers.RandomUniform(minval=0.599, maxval=0.601)
        self.alpha_initializer = keras.initializers.get(alpha_initializer)
        self.alpha_regularizer = keras.regularizers.get(alpha_regularizer)
        self.batch_norm = None
        if self.use_batch_norm:
            self.batch_norm = keras.layers.BatchNormalization(
                center=False, scale=False, momentum=self.momentum, epsilon=self.epsilon,
                name="pair_batch_norm")

    def build(self, input_shape):
        num_fields, dim = field_shape(input_shape, _NAME, min_fields=2)
        self.input_spec = keras.layers.InputSpec(ndim=3, axes={1: num_fields, 2: dim})
        rows, cols = pair_indices(num_fields)
        self._num_pairs = len(rows)
        if self.comb_mask is not None:
            if len(self.comb_mask) != len(rows):
                raise ValueError(
                    f"{_NAME}: comb_mask must have one entry per field pair (P={len(rows)} for "
                    f"{num_fields} fields); received comb_mask of length {len(self.comb_mask)}")
            keep = np.asarray(self.comb_mask, bool)
            rows, cols = rows[keep], cols[keep]
        self._rows, self._cols = rows, cols
        self.alpha = self.add_weight(name="alpha", shape=(len(rows),),
                                     initializer=self.alpha_initializer,
                                     regularizer=self.alpha_regularizer)
        self.alpha._drl_optimizer_group = OPTIMIZER_GROUP  # KVOptimizer(groups=...) routes it
        if self.use_batch_norm:
            build_sublayer(self.batch_norm, (None, len(rows)))
        super().build(input_shape)

    @property
    def gate_weights(self):
        """The gate variables (``[alpha]``), to be optimized by GRDA during the search stage."""
        return [self.alpha]

    def selected_pairs(self):
        """0/1 list over all ``P`` pairs: 1 where the pair is kept and its gate is non-zero.

        Pass it as ``comb_mask`` to the retrain-stage layer.
        """
        full = np.zeros(self._num_pairs, np.int64)
        kept = (np.flatnonzero(self.comb_mask) if self.comb_mask is not None
                else np.arange(self._num_pairs))
        full[kept] = (self.alpha.numpy() != 0).astype(np.int64)
        return full.tolist()

    def call(self, inputs, training=None):
        left = tf.gather(inputs, tf.constant(self._rows), axis=1)
        right = tf.gather(inputs, tf.constant(self._cols), axis=1)
        pairs = tf.reduce_sum(left * right, axis=-1)  # (B, P_kept)
        if self.use_batch_norm:
            pairs = self.batch_norm(pairs, training=training)
        gated = pairs * self.alpha
        if self.output_mode == "sum":
            return tf.reduce_sum(gated, axis=-1, keepdims=True)
        return gated

    def compute_output_shape(self, input_shape):
        width = 1 if self.output_mode == "sum" else len(self._rows)
        return tf.TensorShape(input_shape)[:1].concatenate([width])

    def get_config(self):
        config = super().get_config()
        config.update({
            "output_mode": self.output_mode,
            "comb_mask": None if self.comb_mask is None else list(self.comb_mask),
            "use_batch_norm": self.use_batch_norm,
            "momentum": self.momentum,
            "epsilon": self.epsilon,
            "alpha_initializer": keras.initializers.serialize(self.alpha_initializer),
            "alpha_regularizer": keras.regularizers.serialize(self.alpha_regularizer),
        })
        return config
