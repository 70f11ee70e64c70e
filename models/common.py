"""Pieces shared by the zoo models (every model but DeepFM, which predates them).

Conventions (B batch, F fields, D embedding dim):

* The *field matrix* ``E`` ``[B, F, D]`` holds the categorical fields (KV embeddings,
  schema order) followed by the numeric fields, each embedded as ``x_j * v_j`` with a
  learned ``v_j`` in R^D (`NumericEmbedding`, as FuxiCTR embeds numeric features), or by
  any other ``[B, N] -> [B, N, D]`` layer (AutoDis).
* The *linear logit* ``[B, 1]`` sums a 1-wide KV table per categorical field plus a
  ``Dense(1)`` over the numeric values (as DeepFM).
* The *DNN input* ``[B, F*D (+ N)]`` is ``flatten(E)`` with the raw numeric values
  appended (as DeepFM).
* The *head* adds the logits and applies a sigmoid: output ``[B, 1]`` click probability.
"""
from deeprec_lite._checks import check_positive_int
from deeprec_lite.compat import keras, tf
from deeprec_lite.kv.table_config import as_table_config
from deeprec_lite.layers import DNN
from deeprec_lite.layers._common import check_choice
from deeprec_lite.models.features import FieldEmbeddings, build_inputs, numeric_matrix
from deeprec_lite.training.kv_model import KVModel

__all__ = ["NumericEmbedding", "FieldReadout", "ZooFeatures", "dnn_logit", "cross_and_deep",
           "prediction_model",
           "check_choice"]


@keras.utils.register_keras_serializable(package="deeprec_lite.models")
class NumericEmbedding(keras.layers.Layer):
    """Numeric fields as field vectors: ``e_j = x_j * v_j``.

    Input shape: ``(batch, N)`` float values. Output shape: ``(batch, N, dim)``.
    """

    def __init__(self, dim, initializer="glorot_uniform", **kwargs):
        super().__init__(**kwargs)
        self.dim = check_positive_int(dim, "dim", "NumericEmbedding")
        self.initializer = keras.initializers.get(initializer)

    def build(self, input_shape):
        self.vectors = self.add_weight("vectors", shape=(int(input_shape[-1]), self.dim),
                                       initializer=self.initializer)
        super().build(input_shape)

    def call(self, values):
        return values[:, :, None] * self.vectors

    def get_config(self):
        return {**super().get_config(), "dim": self.dim,
                "initializer": keras.initializers.serialize(self.initializer)}


@keras.utils.register_keras_serializable(package="deeprec_lite.models")
class FieldReadout(keras.layers.Layer):
    """The xDeepInt read-out: a vector-wise ``Dense(1)`` over the field axis, then a sum
    over the embedding dim: ``logit = sum_d (sum_f w_f X[:, f, d] + b)``.

    Input shape: ``(batch, F, D)``. Output shape: ``(batch, 1)``.
    """

    def build(self, input_shape):
        self.kernel = self.add_weight("kernel", shape=(int(input_shape[1]),),
                                      initializer="glorot_uniform")
        self.bias = self.add_weight("bias", shape=(), initializer="zeros")
        super().build(input_shape)

    def call(self, fields):
        mixed = tf.einsum("bfd,f->bd", fields, self.kernel) + self.bias
        return tf.reduce_sum(mixed, axis=1, keepdims=True)


class ZooFeatures:
    """The inputs of a schema and the standard ways to embed them (see module docstring).

    Args:
      schema: a deeprec_lite.data.Schema.
      table: a `deeprec_lite.kv.TableConfig` (dim, initializer, admission, eviction,
        shards, ...) for the field tables, or an int: the dim of a default config.
        Tables of another width (the 1-wide linear tables) take this config's policies.
      layer_factory, optimizer: see `FieldEmbeddings` (Keras Embedding baselines; a
        sparse optimizer for the tables).
    """

    def __init__(self, schema, table=16, layer_factory=None, optimizer=None):
        if not schema.categorical and not schema.numeric:
            raise ValueError(f"the model needs at least one feature field; received schema={schema!r}")
        self.schema = schema
        self.table = as_table_config(table)
        self.dim = self.table.dim
        self.layer_factory = layer_factory
        self.optimizer = optimizer
        self.inputs = build_inputs(schema)
        self.numeric = numeric_matrix(schema, self.inputs)  # [B, N] or None

    def embeddings(self, dim, prefix="embedding", fields=None):
        """``[B, F_cat, dim]``: KV embeddings of the categorical fields (or `fields`)."""
        if not self.schema.categorical:
            return None
        return FieldEmbeddings(self.schema, self.table.replace(dim=dim), prefix=prefix,
                               layer_factory=self.layer_factory, fields=fields,
                               optimizer=self.optimizer).stacked(self.inputs)

    def field_matrix(self, dim, numeric_layer="scaled", prefix="embedding"):
        """``E`` ``[B, F, dim]``: categorical embeddings, then the numeric fields embedded by
        `numeric_layer` (``"scaled"``: `NumericEmbedding`; a ``[B, N] -> [B, N, dim]`` layer;
        or None: numeric fields left out of ``E``)."""
        parts = []
        categorical = self.embeddings(dim, prefix=prefix)
        if categorical is not None:
            parts.append(categorical)
        if self.numeric is not None and numeric_layer is not None:
            if numeric_layer == "scaled":
                numeric_layer = NumericEmbedding(dim, name=f"{prefix}_numeric")
            parts.append(numeric_layer(self.numeric))
        if not parts:
            raise ValueError("numeric_layer=None leaves no field in the field matrix of a "
                             "schema without categorical fields")
        if len(parts) == 1:
            return parts[0]
        return keras.layers.Concatenate(axis=1, name=f"{prefix}_fields")(parts)

    def linear_logit(self):
        """``[B, 1]``: sum of 1-wide KV tables of the categorical fields + Dense(1) of numerics."""
        logits = []
        weights = self.embeddings(1, prefix="linear")
        if weights is not None:
            # A TF op on Keras tensors (not a Lambda): the config loads in safe mode.
            logits.append(tf.reduce_sum(weights, axis=1))
        if self.numeric is not None:
            logits.append(keras.layers.Dense(1, use_bias=False, name="numeric_linear")(self.numeric))
        return logits[0] if len(logits) == 1 else keras.layers.Add(name="linear")(logits)

    def dnn_input(self, field_matrix, name="dnn_input"):
        """``[B, F*D (+ N)]``: flatten(E) with the raw numeric values appended."""
        flat = keras.layers.Flatten(name=f"{name}_flat")(field_matrix)
        if self.numeric is None:
            return flat
        return keras.layers.Concatenate(name=name)([flat, self.numeric])


def dnn_logit(x, hidden_units, dropout=0.0, use_batch_norm=False, name="dnn"):
    """``DNN(hidden_units)`` then ``Dense(1)``: ``[B, d] -> [B, 1]`` (empty `hidden_units`:
    just the Dense)."""
    if hidden_units:
        x = DNN(hidden_units=hidden_units, dropout=dropout, use_batch_norm=use_batch_norm,
                name=name)(x)
    return keras.layers.Dense(1, name=f"{name}_logit")(x)


STRUCTURES = ("parallel", "stacked", "crossnet_only")


def cross_and_deep(x0, cross, dnn, dropout=0.0, structure="parallel", model="model"):
    """The DCN family's body and logit: ``x0`` ``[B, d]`` -> ``[B, 1]``.

    ``"parallel"``: Dense(1)(concat(cross(x0), DNN(x0))); ``"stacked"``:
    Dense(1)(DNN(cross(x0))); ``"crossnet_only"``: Dense(1)(cross(x0)). An empty `dnn`
    means crossnet_only.
    """
    check_choice(structure, STRUCTURES, "structure", model)
    crossed = cross(x0)
    if not dnn or structure == "crossnet_only":
        top = crossed
    elif structure == "stacked":
        top = DNN(hidden_units=dnn, dropout=dropout, name="dnn")(crossed)
    else:
        deep = DNN(hidden_units=dnn, dropout=dropout, name="dnn")(x0)
        top = keras.layers.Concatenate(name="cross_dnn")([crossed, deep])
    return keras.layers.Dense(1, name="logit_dense")(top)


def prediction_model(inputs, logits, name):
    """The head: ``sigmoid(sum(logits))`` ``[B, 1]``, as a functional KVModel."""
    logit = logits[0] if len(logits) == 1 else keras.layers.Add(name="logit")(list(logits))
    output = keras.layers.Activation("sigmoid", name="prediction")(logit)
    return KVModel(inputs, output, name=name)
