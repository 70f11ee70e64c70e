"""Sparse optimizers that update a KVVariable in place with fused C++ kernels.

This is the Keras-free core (no Keras import): each optimizer here is a small
object with

* ``slots``: the ``{name: initial value}`` mapping its KVVariable must be created
  with (``KVVariable(dim, slots=opt.slots)``); the state lives in each key's slot
  rows, so it is checkpointed, exported and evicted with the key;
* ``apply(kv, keys, grads, global_step)``: one update of the rows of ``keys``;
* ``apply_indexed(tables, keys, indices, grads, global_step)``: one update of
  several tables (a table group) in one op, as KVOptimizer does each step.

``apply`` sums the gradients of duplicate keys first (``tf.unique``, then the
kernel sums each key's rows in float32 and in input order, as
``tf.math.unsorted_segment_sum`` does), so every key gets exactly ONE update per
call, then runs the optimizer's kernel, which updates the value and slots of each
admitted key present in the table under its shard lock and stamps its version
with ``global_step``. Keys that are absent or not (yet) admitted are skipped. It
returns the number of rows updated (int64 scalar).

Non-finite gradients never reach the table. The kernel scans the (summed) rows
before it changes anything; a row holding NaN, +Inf or -Inf is handled by the
optimizer's ``nonfinite_gradients``:

* ``"error"`` (default): ``apply`` raises ``tf.errors.InvalidArgumentError``
  naming the table and the number of such rows, and nothing of the batch is
  applied (eagerly, in a tf.function and in ``model.fit`` alike; a partitioned
  variable checks the whole batch before any shard changes);
* ``"skip"``: those rows are left out (their keys' value, slots and version do
  not change), the finite rows are applied as usual, and the table counts the
  rows it left out: ``kv.stats()["nonfinite_skipped"]`` (summed over the shards
  of a partitioned variable; the KVTableStats callback writes it to TensorBoard).

Either way every row of the batch counts, whether or not its key has a row, and
a key whose occurrences sum to a non-finite row (one NaN among them) is one row.

Hyperparameters may be Python numbers, tensors or ``tf.Variable``s (read at each
call), and ``learning_rate`` may also be a callable schedule, called as
``learning_rate(global_step)`` (a tf_keras ``LearningRateSchedule`` works).

The math follows tf_keras's optimizers (``tf_keras.optimizers.SGD``, ``Adagrad``,
``Adam``, ``Ftrl``) element for element, applied lazily: only the rows in the
batch change (for Adam this is "lazy Adam": m and v of rows absent from a batch
do not decay). The kernels compute in double precision from the stored float32
state and store float32.
"""
import numbers
from typing import Dict

import tensorflow as tf

from deeprec_lite._checks import check_number
from deeprec_lite.kv import device_transfers, op_library
from deeprec_lite.kv.variable import KVVariable, as_step

__all__ = ["SparseOptimizer", "SGD", "Adagrad", "Adam", "Ftrl", "GroupFtrl"]


def _check_number(name, value, **bounds):
    """A hyperparameter: a Python number is checked here, a tensor by the op."""
    if isinstance(value, (tf.Tensor, tf.Variable)):
        return value
    return check_number(value, name, **bounds)


def _check_learning_rate(name, value, positive=False):
    if callable(value) and not isinstance(value, (tf.Tensor, tf.Variable)):
        return value
    if isinstance(value, (tf.Tensor, tf.Variable)):
        return value
    if isinstance(value, bool) or not isinstance(value, numbers.Real):
        raise ValueError(f"{name} must be a number, a tensor, a tf.Variable or a callable "
                         f"schedule, got {value!r}")
    return _check_number(name, value, low=0, low_open=positive)


def _scalar(value):
    return tf.cast(value, tf.float32)


NONFINITE_GRADIENTS = ("error", "skip")


class SparseOptimizer:
    """Base class: slot layout, input validation, dedup of keys, the op call.

    Args:
      nonfinite_gradients: what a gradient row holding NaN or Inf does: "error"
        fails the update with nothing applied, "skip" leaves the row out and counts
        it in the table (see the module docstring).
    """

    #: slot names in the order of the table's slot rows
    slot_names = ()
    #: name used in error messages
    display_name = "SparseOptimizer"

    def __init__(self, nonfinite_gradients="error"):
        if not isinstance(nonfinite_gradients, str) or \
                nonfinite_gradients not in NONFINITE_GRADIENTS:
            raise ValueError(f"nonfinite_gradients must be 'error' or 'skip', got "
                             f"{nonfinite_gradients!r}")
        self.nonfinite_gradients = nonfinite_gradients

    @property
    def slots(self) -> Dict[str, float]:
        """{slot name: initial value}: pass as KVVariable(..., slots=optimizer.slots)."""
        return {}

    def get_config(self):
        """The constructor's arguments (subclasses add their hyperparameters)."""
        return {"nonfinite_gradients": self.nonfinite_gradients}

    def __repr__(self):
        args = ", ".join(f"{k}={v!r}" for k, v in self.get_config().items())
        return f"{type(self).__name__}({args})"

    def _learning_rate(self, value, global_step):
        if callable(value) and not isinstance(value, (tf.Tensor, tf.Variable)):
            value = value(global_step)
        return _scalar(value)

    def _check_variable(self, kv):
        slot_names = getattr(kv, "slot_names", None)
        if slot_names is None:
            raise ValueError(f"{self.display_name}.apply needs a KVVariable, got {kv!r}")
        if tuple(slot_names) != tuple(self.slot_names):
            raise ValueError(
                f"{self.display_name} needs a KVVariable with slots {list(self.slot_names)} "
                f"(in this order), but variable '{kv.name}' has slots {list(slot_names)}; "
                f"create it with KVVariable(..., slots=optimizer.slots)")

    def apply(self, kv, keys, grads, global_step, unique_keys=False):
        """Applies one update to the rows of `keys` in `kv`.

        Args:
          kv: the KVVariable, created with `slots=self.slots`.
          keys: int64 or string keys, any shape of rank <= 2.
          grads: float gradients of shape keys.shape + [kv.dim].
          global_step: int scalar >= 0; stamped as the version of every updated key
            (and, for Adam, the bias-correction step is global_step + 1).
          unique_keys: True when the caller guarantees the keys have no duplicates
            (skips the dedup; a duplicate would then be updated once per
            occurrence).

        Returns:
          The number of rows updated (int64 scalar).

        Raises:
          tf.errors.InvalidArgumentError: with nonfinite_gradients="error", when a
            gradient row (after summing duplicates) holds NaN or Inf; nothing is
            applied.
        """
        self._check_variable(kv)
        keys = kv._keys(keys)  # dtype conversion and checks of the variable
        grads = tf.convert_to_tensor(grads)
        if not grads.dtype.is_floating:
            raise ValueError(f"grads must be a float tensor, got dtype {grads.dtype.name}")
        grads = tf.cast(grads, tf.float32)
        want = keys.shape.concatenate([kv.dim])
        if not grads.shape.is_compatible_with(want):
            raise ValueError(f"grads must have shape keys.shape + [dim] = {want}, got "
                             f"{grads.shape}")
        global_step = as_step(global_step)
        index = None
        if not unique_keys:
            with tf.control_dependencies([tf.debugging.assert_equal(
                    tf.shape(grads, out_type=tf.int64),
                    tf.concat([tf.shape(keys, out_type=tf.int64),
                               tf.constant([kv.dim], tf.int64)], 0),
                    message=f"grads must have shape keys.shape + [{kv.dim}]")]):
                keys, index = tf.unique(tf.reshape(keys, [-1]), out_idx=tf.int64)
                grads = tf.reshape(grads, [-1, kv.dim])
        return kv.apply_kernel(self._kernel(global_step), keys, grads, index,
                               self.nonfinite_gradients)

    def apply_indexed(self, tables, keys, indices, grads, global_step):
        """One update of several tables, with one op for all the unpartitioned ones
        of a key dtype on a device (a table group; partitioned variables given here run
        per shard; KVEmbedding layers pass their shards, so that each parameter server
        gets one op).

        Args:
          tables: KVVariables or PartitionedKVVariables created with `slots=self.slots`
            (a table may appear more than once: its entries are applied in order).
          keys: per table, its distinct keys [u_i].
          indices: per table, int64 [n_i]: the position in keys[i] of each gradient row.
          grads: per table, float [n_i, dim_i]; the rows of each key are summed (float32,
            in order) and applied once.
          global_step: as in `apply`.

        Returns:
          Per table, the number of rows updated (int64 scalars).
        """
        if not len(tables) == len(keys) == len(indices) == len(grads):
            raise ValueError(f"tables, keys, indices and grads must have one entry per table, "
                             f"got {len(tables)}, {len(keys)}, {len(indices)} and {len(grads)}")
        global_step = as_step(global_step)
        kernel = self._kernel(global_step)
        args = []
        for kv, k, index, g in zip(tables, keys, indices, grads):
            self._check_variable(kv)
            args.append((kv, kv._keys(k), tf.cast(index, tf.int64), tf.cast(g, tf.float32)))
        updated = [None] * len(tables)
        plain = {}
        for position, (kv, k, index, g) in enumerate(args):
            if not isinstance(kv, KVVariable):  # partitioned: per shard
                updated[position] = kv.apply_kernel(kernel, k, g, index,
                                                    self.nonfinite_gradients)
            else:  # one op per key dtype and device (each parameter server)
                plain.setdefault((kv.key_dtype, kv.device), []).append(position)
        ops = op_library.load()
        for (_, device), positions in plain.items():
            grads = [args[p][3] for p in positions]
            if device_transfers.on_parameter_server(device):  # one transfer, not one per table
                grads = device_transfers.move_together(grads, device)
            counts = self._apply(ops, [args[p][0].resource_handle for p in positions],
                                 [args[p][1] for p in positions], [args[p][2] for p in positions],
                                 grads, global_step, nonfinite_gradients=self.nonfinite_gradients)
            for p, count in zip(positions, counts):
                updated[p] = count
        return updated

    def _kernel(self, global_step):
        """kernel(handle, keys, grads, index or None, nonfinite_gradients) -> rows updated:
        the optimizer's op on one table (see KVVariable.apply_kernel)."""
        ops = op_library.load()

        def kernel(handle, keys, grads, index, nonfinite_gradients):
            return self._apply(ops, [handle], [keys], [] if index is None else [index], [grads],
                               global_step, nonfinite_gradients=nonfinite_gradients)[0]
        return kernel

    def _apply(self, ops, handles, keys, index, grads, global_step, nonfinite_gradients):
        """Runs the optimizer's op on a group of tables: lists of handles, keys, index
        (empty, or one per table) and grads; returns the list of rows updated
        (nonfinite_gradients is the op's attr of that name)."""
        raise NotImplementedError


class SGD(SparseOptimizer):
    """Plain SGD (tf_keras SGD with momentum 0): ``w -= lr * g``. No slots."""

    slot_names = ()
    display_name = "SGD"

    def __init__(self, learning_rate=0.01, nonfinite_gradients="error"):
        super().__init__(nonfinite_gradients)
        self.learning_rate = _check_learning_rate("learning_rate", learning_rate)

    def get_config(self):
        return {"learning_rate": self.learning_rate, **super().get_config()}

    def _apply(self, ops, handles, keys, index, grads, global_step, nonfinite_gradients):
        return ops.drl_kv_apply_sgd(handles, keys, index, grads,
                                    self._learning_rate(self.learning_rate, global_step),
                                    global_step, nonfinite_gradients=nonfinite_gradients)


class Adagrad(SparseOptimizer):
    """Adagrad, tf_keras convention (epsilon inside the square root)::

        acc += g^2
        w   -= lr * g / sqrt(acc + epsilon)

    Slot "accumulator" starts at `initial_accumulator_value`. (A zero denominator,
    possible only with initial_accumulator_value = epsilon = 0 and g = 0, leaves
    w unchanged where tf_keras would write NaN.)
    """

    slot_names = ("accumulator",)
    display_name = "Adagrad"

    def __init__(self, learning_rate=0.001, initial_accumulator_value=0.1, epsilon=1e-7,
                 nonfinite_gradients="error"):
        super().__init__(nonfinite_gradients)
        self.learning_rate = _check_learning_rate("learning_rate", learning_rate)
        self.initial_accumulator_value = float(
            _check_number("initial_accumulator_value", initial_accumulator_value, low=0))
        self.epsilon = _check_number("epsilon", epsilon, low=0)

    @property
    def slots(self):
        return {"accumulator": self.initial_accumulator_value}

    def get_config(self):
        return {"learning_rate": self.learning_rate,
                "initial_accumulator_value": self.initial_accumulator_value,
                "epsilon": self.epsilon, **super().get_config()}

    def _apply(self, ops, handles, keys, index, grads, global_step, nonfinite_gradients):
        return ops.drl_kv_apply_adagrad(
            handles, keys, index, grads, self._learning_rate(self.learning_rate, global_step),
            _scalar(self.epsilon), global_step, nonfinite_gradients=nonfinite_gradients)


class Adam(SparseOptimizer):
    """Lazy Adam, tf_keras convention (epsilon outside the square root, not scaled)::

        t     = global_step + 1
        m    += (g - m) * (1 - beta_1)
        v    += (g^2 - v) * (1 - beta_2)
        alpha = lr * sqrt(1 - beta_2^t) / (1 - beta_1^t)
        w    -= alpha * m / (sqrt(v) + epsilon)

    `global_step` is the number of steps already taken (tf_keras's
    `optimizer.iterations` before the update), so the first update uses t = 1.
    As in tf_keras, the hyperparameters and beta_1^t, beta_2^t are float32.
    Only the rows in the batch change (m, v of other rows do not decay). Slots
    "m", "v" start at 0.
    """

    slot_names = ("m", "v")
    display_name = "Adam"

    def __init__(self, learning_rate=0.001, beta_1=0.9, beta_2=0.999, epsilon=1e-7,
                 nonfinite_gradients="error"):
        super().__init__(nonfinite_gradients)
        self.learning_rate = _check_learning_rate("learning_rate", learning_rate)
        self.beta_1 = _check_number("beta_1", beta_1, low=0, high=1, high_open=True)
        self.beta_2 = _check_number("beta_2", beta_2, low=0, high=1, high_open=True)
        self.epsilon = _check_number("epsilon", epsilon, low=0)

    @property
    def slots(self):
        return {"m": 0.0, "v": 0.0}

    def get_config(self):
        return {"learning_rate": self.learning_rate, "beta_1": self.beta_1,
                "beta_2": self.beta_2, "epsilon": self.epsilon, **super().get_config()}

    def _apply(self, ops, handles, keys, index, grads, global_step, nonfinite_gradients):
        beta_1, beta_2 = _scalar(self.beta_1), _scalar(self.beta_2)
        # float32 powers of the float32 betas, computed as tf_keras does.
        t = tf.cast(global_step + 1, tf.float32)
        beta_1_power, beta_2_power = tf.pow(beta_1, t), tf.pow(beta_2, t)
        return ops.drl_kv_apply_adam(
            handles, keys, index, grads, self._learning_rate(self.learning_rate, global_step),
            beta_1, beta_2, beta_1_power, beta_2_power, _scalar(self.epsilon), global_step,
            nonfinite_gradients=nonfinite_gradients)


class Ftrl(SparseOptimizer):
    """FTRL-proximal, tf_keras convention, per coordinate (p = learning_rate_power)::

        g_shrink = g + 2 * l2_shrinkage * w
        n_new    = n + g^2
        z       += g_shrink - (n_new^(-p) - n^(-p)) / lr * w
        quad     = n_new^(-p) / lr + 2 * (l2 + beta / (2 * lr))
        w        = (clip(z, -l1, l1) - z) / quad
        n        = n_new

    Slots "z" (tf_keras's "linear") starts at 0 and "n" (the "accumulator") at
    `initial_accumulator_value`. Argument names are tf_keras's.
    """

    slot_names = ("z", "n")
    display_name = "Ftrl"

    def __init__(self, learning_rate=0.001, learning_rate_power=-0.5,
                 initial_accumulator_value=0.1, l1_regularization_strength=0.0,
                 l2_regularization_strength=0.0, l2_shrinkage_regularization_strength=0.0,
                 beta=0.0, nonfinite_gradients="error"):
        super().__init__(nonfinite_gradients)
        self.learning_rate = _check_learning_rate("learning_rate", learning_rate, positive=True)
        self.learning_rate_power = _check_number("learning_rate_power", learning_rate_power,
                                                 high=0)
        self.initial_accumulator_value = float(
            _check_number("initial_accumulator_value", initial_accumulator_value, low=0))
        self.l1_regularization_strength = _check_number(
            "l1_regularization_strength", l1_regularization_strength, low=0)
        self.l2_regularization_strength = _check_number(
            "l2_regularization_strength", l2_regularization_strength, low=0)
        self.l2_shrinkage_regularization_strength = _check_number(
            "l2_shrinkage_regularization_strength", l2_shrinkage_regularization_strength, low=0)
        self.beta = _check_number("beta", beta, low=0)

    @property
    def slots(self):
        return {"z": 0.0, "n": self.initial_accumulator_value}

    def get_config(self):
        return {"learning_rate": self.learning_rate,
                "learning_rate_power": self.learning_rate_power,
                "initial_accumulator_value": self.initial_accumulator_value,
                "l1_regularization_strength": self.l1_regularization_strength,
                "l2_regularization_strength": self.l2_regularization_strength,
                "l2_shrinkage_regularization_strength":
                    self.l2_shrinkage_regularization_strength,
                "beta": self.beta, **super().get_config()}

    def _apply(self, ops, handles, keys, index, grads, global_step, nonfinite_gradients):
        return ops.drl_kv_apply_ftrl(
            handles, keys, index, grads, self._learning_rate(self.learning_rate, global_step),
            _scalar(self.learning_rate_power), _scalar(self.l1_regularization_strength),
            _scalar(self.l2_regularization_strength),
            _scalar(self.l2_shrinkage_regularization_strength), _scalar(self.beta),
            global_step, nonfinite_gradients=nonfinite_gradients)


class GroupFtrl(SparseOptimizer):
    """Group-lasso FTRL (G-FTRL of xDeepInt, Yan & Li 2020): the group is one
    embedding row (one feature value), so lambda1 does feature selection.

    Per element, then per row of dim d::

        sigma = (sqrt(n + g^2) - sqrt(n)) / alpha
        z    += g - sigma * w
        n    += g^2
        if ||z_row||_2 <= lambda1 * sqrt(d):  w_row = 0   (exactly)
        else: w = -(1 - lambda1 * sqrt(d) / ||z_row||_2) * z / ((beta + sqrt(n)) / alpha + lambda2)

    With lambda1 = lambda2 = 0 this is per-coordinate FTRL-proximal
    (`Ftrl(learning_rate=alpha, beta=beta)` with l1 = l2 = 0). Slots "z" and "n"
    start at 0 and `initial_accumulator_value` (0 in the reference).

    The reference experiment (Criteo) uses alpha=0.02, beta=1, lambda1=lambda2=10
    with a SUM-reduced loss; with a mean-reduced loss the gradients are batch-size
    times smaller, so the lambdas must shrink accordingly. Defaults are 0 (no
    regularization).
    """

    slot_names = ("z", "n")
    display_name = "GroupFtrl"

    def __init__(self, alpha=0.02, beta=1.0, lambda1=0.0, lambda2=0.0,
                 initial_accumulator_value=0.0, nonfinite_gradients="error"):
        super().__init__(nonfinite_gradients)
        self.alpha = _check_learning_rate("alpha", alpha, positive=True)
        self.beta = _check_number("beta", beta, low=0)
        self.lambda1 = _check_number("lambda1", lambda1, low=0)
        self.lambda2 = _check_number("lambda2", lambda2, low=0)
        self.initial_accumulator_value = float(
            _check_number("initial_accumulator_value", initial_accumulator_value, low=0))

    @property
    def slots(self):
        return {"z": 0.0, "n": self.initial_accumulator_value}

    def get_config(self):
        return {"alpha": self.alpha, "beta": self.beta, "lambda1": self.lambda1,
                "lambda2": self.lambda2,
                "initial_accumulator_value": self.initial_accumulator_value,
                **super().get_config()}

    def _apply(self, ops, handles, keys, index, grads, global_step, nonfinite_gradients):
        return ops.drl_kv_apply_group_ftrl(
            handles, keys, index, grads, self._learning_rate(self.alpha, global_step),
            _scalar(self.beta), _scalar(self.lambda1), _scalar(self.lambda2), global_step,
            nonfinite_gradients=nonfinite_gradients)
