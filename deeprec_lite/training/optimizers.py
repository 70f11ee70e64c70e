"""KVOptimizer: one tf_keras optimizer for a model with KV embeddings.

Dense weights go to an ordinary tf_keras optimizer; the gradient anchors of
KVEmbedding layers go to a sparse optimizer (deeprec_lite.kv.sparse_optimizers)
that updates the tables with fused kernels, one update per key per step,
stamping version with the step. Works with model.fit of any tf_keras model and
with tfrs.Model, since both end in optimizer.apply_gradients / minimize.

    model.compile(optimizer=drl.optimizers.Adagrad(0.05), ...)            # both Adagrad
    model.compile(optimizer=drl.optimizers.KVOptimizer(
        sparse=drl.sparse_optimizers.Ftrl(0.05), dense=tf_keras.optimizers.Adam(1e-3)))

Weights that a layer tags with an optimizer group (`variable._drl_optimizer_group`, e.g.
the AutoFIS gates, group "autofis_gates") go to the tf_keras optimizer given for that
group in `groups` (e.g. layers.GRDA), or to `dense` when no optimizer is given for it.
"""
from collections.abc import Mapping

from deeprec_lite.kv import sparse_optimizers
from deeprec_lite.layers.embeddings.kv_embedding import apply_gradients as apply_kv_gradients
from deeprec_lite.compat import keras, tf


_KERAS_OPTIMIZERS = (keras.optimizers.Optimizer, keras.optimizers.legacy.Optimizer)


def _kv_layer(variable):
    return getattr(variable, "_drl_kv_embedding", None)


def _group(variable):
    return getattr(variable, "_drl_optimizer_group", None)


@keras.utils.register_keras_serializable(package="deeprec_lite")
class KVOptimizer(keras.optimizers.Optimizer):
    """Routes KV-table gradients to `sparse` and every other gradient to `dense`.

    Args:
      sparse: the default sparse optimizer of the model's KV tables (a KVEmbedding
        built with its own `optimizer` uses that one instead).
      dense: a tf_keras optimizer for the dense weights.
      groups: {group name: tf_keras optimizer} for weights tagged with that group.
    The global step is `dense.iterations`; a table's update at step t stamps
    version t + 1 and sets the table's clock to it.
    """

    def __init__(self, sparse, dense, groups=None, name="KVOptimizer", **kwargs):
        if not isinstance(sparse, sparse_optimizers.SparseOptimizer):
            raise ValueError("sparse must be a deeprec_lite.kv.sparse_optimizers optimizer, got "
                             f"{sparse!r}")
        if not isinstance(dense, _KERAS_OPTIMIZERS):
            raise ValueError(f"dense must be a tf_keras optimizer, got {dense!r}")
        if groups is not None and not isinstance(groups, Mapping):
            raise ValueError(f"groups must be a mapping of group name to tf_keras optimizer, "
                             f"got {groups!r}")
        groups = dict(groups or {})
        used = [dense]
        for group, optimizer in groups.items():
            if not isinstance(optimizer, _KERAS_OPTIMIZERS):
                raise ValueError(f"groups[{group!r}] must be a tf_keras optimizer, got "
                                 f"{optimizer!r}")
            # one optimizer in two roles would update its weights twice a step and count
            # two iterations (the step KV versions are stamped with)
            if any(optimizer is o for o in used):
                raise ValueError(f"groups[{group!r}] is an optimizer that dense or another "
                                 "group already uses; give each its own optimizer instance")
            used.append(optimizer)
        super().__init__(name=name, **kwargs)
        self.sparse = sparse
        self.dense = dense
        self.groups = groups

    @property
    def iterations(self):
        return self.dense.iterations

    @iterations.setter
    def iterations(self, variable):
        self.dense.iterations = variable

    @property
    def learning_rate(self):
        return self.dense.learning_rate

    @learning_rate.setter
    def learning_rate(self, value):
        self.dense.learning_rate = value

    def _optimizer_of(self, variable):
        return self.groups.get(_group(variable), self.dense)

    def build(self, var_list):
        dense = [v for v in var_list if _kv_layer(v) is None]
        for optimizer in [self.dense] + list(self.groups.values()):
            optimizer.build([v for v in dense if self._optimizer_of(v) is optimizer])

    def apply_gradients(self, grads_and_vars, name=None, skip_gradients_aggregation=False,
                        **kwargs):
        sparse, routed = [], {id(o): [] for o in [self.dense] + list(self.groups.values())}
        for grad, var in grads_and_vars:
            if _kv_layer(var) is not None:
                sparse.append((grad, var))
            else:
                routed[id(self._optimizer_of(var))].append((grad, var))
        step = tf.cast(self.dense.iterations, tf.int64) + 1
        updates = apply_kv_gradients([(_kv_layer(var), grad) for grad, var in sparse
                                      if grad is not None], self.sparse, step)
        for optimizer in self.groups.values():
            pairs = [(g, v) for g, v in routed[id(optimizer)] if g is not None]
            if pairs:
                # Ordered after its gradients, so a step that gets no data (the end of an
                # epoch inside a tf.function) does not advance the group's iterations.
                grads = [g.values if isinstance(g, tf.IndexedSlices) else g for g, _ in pairs]
                with tf.control_dependencies(grads):
                    updates.append(optimizer.apply_gradients(pairs))
        with tf.control_dependencies(updates):
            dense = routed[id(self.dense)]
            if any(g is not None for g, _ in dense):
                return self.dense.apply_gradients(dense)
            return self.dense.iterations.assign_add(1)

    def get_config(self):
        return {"name": self.name,
                "sparse": {"class_name": type(self.sparse).__name__,
                           "config": self.sparse.get_config()},
                "dense": keras.optimizers.serialize(self.dense),
                "groups": {g: keras.optimizers.serialize(o) for g, o in self.groups.items()}}

    @classmethod
    def from_config(cls, config, custom_objects=None):
        config = dict(config)
        sparse = config.pop("sparse")
        config["sparse"] = getattr(sparse_optimizers, sparse["class_name"])(**sparse["config"])
        config["dense"] = keras.optimizers.deserialize(config["dense"],
                                                       custom_objects=custom_objects)
        config["groups"] = {g: keras.optimizers.deserialize(o, custom_objects=custom_objects)
                            for g, o in config.get("groups", {}).items()}
        return cls(**config)


def SGD(learning_rate=0.01, nonfinite_gradients="error"):
    """Plain SGD on tables and dense weights (`nonfinite_gradients`: see SparseOptimizer)."""
    return KVOptimizer(
        sparse_optimizers.SGD(learning_rate, nonfinite_gradients=nonfinite_gradients),
        keras.optimizers.SGD(learning_rate))


def Adagrad(learning_rate=0.001, initial_accumulator_value=0.1, epsilon=1e-7,
            nonfinite_gradients="error"):
    """Adagrad on tables and dense weights, with the same hyperparameters."""
    return KVOptimizer(
        sparse_optimizers.Adagrad(learning_rate, initial_accumulator_value, epsilon,
                                  nonfinite_gradients=nonfinite_gradients),
        keras.optimizers.Adagrad(learning_rate, initial_accumulator_value, epsilon))


def Adam(learning_rate=0.001, beta_1=0.9, beta_2=0.999, epsilon=1e-7,
         nonfinite_gradients="error"):
    """Adam on tables (lazy: only the batch's rows) and dense weights."""
    return KVOptimizer(
        sparse_optimizers.Adam(learning_rate, beta_1, beta_2, epsilon,
                               nonfinite_gradients=nonfinite_gradients),
        keras.optimizers.Adam(learning_rate, beta_1, beta_2, epsilon))
