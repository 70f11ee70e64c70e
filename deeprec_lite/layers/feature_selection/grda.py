"""GRDA (generalized regularized dual averaging), the sparsifying optimizer of the AutoFIS gates.

Not a layer: it lives next to ``autofis.py``, whose gate weights it is meant for
(AutoFIS, Liu et al., KDD 2020; gRDA is from Chao et al., NeurIPS 2020; the update
follows the AutoFIS authors' TensorFlow implementation).

Update at step ``t = 1, 2, ...`` for a weight ``w`` with accumulator ``v``::

    v_t = v_{t-1} - lr * g_t          with v_0 = w_0 (the weight before the first step)
    tau_t = c * lr^(0.5 + mu) * t^mu
    w_t = sign(v_t) * max(|v_t| - tau_t, 0)

The threshold ``tau_t`` grows with ``t``, so weights whose accumulated gradient stays
small become exactly zero. With ``c = 0`` it is plain SGD on the accumulator
(``w_t = w_0 - lr * sum g``). The threshold uses the current learning rate in closed form,
which equals the reference's running sum of increments for a constant learning rate
(the reference setting); with a schedule they differ slightly.
"""
from deeprec_lite._checks import check_number
from deeprec_lite.compat import keras, tf


def grda_threshold(learning_rate, c, mu, step):
    """``tau_t = c * lr^(0.5 + mu) * t^mu`` (``step`` = t >= 1)."""
    return c * learning_rate ** (0.5 + mu) * step ** mu


def grda_update(accumulator, gradient, learning_rate, c, mu, step):
    """One GRDA step as a pure function: returns ``(new_accumulator, new_weight)``.

    ``accumulator`` must start as the initial weight ``w_0``; ``step`` is ``t >= 1``.
    Works on numpy arrays or tensors.
    """
    v = accumulator - learning_rate * gradient
    tau = grda_threshold(learning_rate, c, mu, step)
    return v, tf.sign(v) * tf.maximum(tf.abs(v) - tau, 0.0)


@keras.utils.register_keras_serializable(package="deeprec_lite")
class GRDA(keras.optimizers.Optimizer):
    """tf_keras optimizer implementing :func:`grda_update` (dense updates).

    Per step ``t`` (see the module docstring): ``v_t = v_{t-1} - lr * g_t`` (``v_0 = w_0``),
    ``w_t = sign(v_t) * max(|v_t| - c * lr^(0.5 + mu) * t^mu, 0)``.

    Use it for the AutoFIS gate weights (``AutoFISGate.gate_weights``) and another
    optimizer (Adam) for everything else, e.g. in a custom ``train_step``::

        grads = tape.gradient(loss, gates + others)
        grda.apply_gradients(zip(grads[:len(gates)], gates))
        adam.apply_gradients(zip(grads[len(gates):], others))

    The accumulator of each variable is created at the first ``apply_gradients`` and set
    to the variable's value at that moment (``v_0 = w_0``). Sparse gradients
    (``tf.IndexedSlices``) are densified: the threshold moves every coordinate each step.

    Args:
        learning_rate: ``lr`` > 0, or a schedule (default 0.005; reference AutoFIS setting
            1.0 for the gates).
        c: strength of the sparsifying threshold, >= 0 (default 0.005; reference 5e-4).
        mu: time exponent of the threshold, >= 0 (default 0.7; reference 0.8).
        **kwargs: the usual ``keras.optimizers.Optimizer`` arguments (``name``, ``clipnorm``...).

    Shapes: variables and gradients of any shape; each variable keeps its shape and gets an
    accumulator slot of the same shape.

    Example:
        >>> from deeprec_lite.layers import GRDA
        >>> import tensorflow as tf
        >>> w = tf.Variable(tf.random.normal([6]))  # e.g. 6 AutoFIS gates
        >>> opt = GRDA(learning_rate=0.1, c=0.5, mu=0.5)
        >>> _ = opt.apply_gradients([(tf.random.normal([6]), w)])
        >>> w.shape
        TensorShape([6])

    References:
        - Chao, Wang, Xing and Cheng, "Directional Pruning of Deep Neural Networks",
          NeurIPS 2020 (arXiv 2006.09358).
        - Liu et al., "AutoFIS: Automatic Feature Interaction Selection in Factorization
          Models for Click-Through Rate Prediction", KDD 2020.
    """

    def __init__(self, learning_rate=0.005, c=0.005, mu=0.7, name="GRDA", **kwargs):
        kwargs.setdefault("jit_compile", False)
        super().__init__(name=name, **kwargs)
        self.c = check_number(c, "c", low=0.0, owner="GRDA")
        self.mu = check_number(mu, "mu", low=0.0, owner="GRDA")
        if not (callable(learning_rate) or tf.is_tensor(learning_rate)
                or isinstance(learning_rate, tf.Variable)):  # a schedule, callable or tensor
            learning_rate = check_number(learning_rate, "learning_rate", low=0.0, low_open=True,
                                         owner="GRDA")
        self._learning_rate = self._build_learning_rate(learning_rate)

    def build(self, var_list):
        super().build(var_list)
        if getattr(self, "_built", False):
            return
        self._accumulators = [
            self.add_variable_from_reference(var, "accumulator", initial_value=tf.identity(var))
            for var in var_list]
        self._built = True

    def update_step(self, gradient, variable):
        if isinstance(gradient, tf.IndexedSlices):
            gradient = tf.convert_to_tensor(gradient)
        dtype = variable.dtype
        accumulator = self._accumulators[self._index_dict[self._var_key(variable)]]
        step = tf.cast(self.iterations + 1, dtype)
        v, w = grda_update(accumulator, tf.cast(gradient, dtype),
                           tf.cast(self.learning_rate, dtype), tf.cast(self.c, dtype),
                           tf.cast(self.mu, dtype), step)
        accumulator.assign(v)
        variable.assign(w)

    def get_config(self):
        config = super().get_config()
        config.update({
            "learning_rate": self._serialize_hyperparameter(self._learning_rate),
            "c": self.c,
            "mu": self.mu,
        })
        return config
