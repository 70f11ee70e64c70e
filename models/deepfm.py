"""DeepFM (Guo et al., IJCAI 2017) on KV embeddings: sigmoid(linear + FM + DNN)."""
from deeprec_lite.compat import keras, tf
from deeprec_lite.kv.table_config import as_table_config
from deeprec_lite.layers import DNN, FM
from deeprec_lite.models.features import (FieldEmbeddings, build_inputs, numeric_matrix,
                                          stacked_together)
from deeprec_lite.training.kv_model import KVModel


def DeepFM(schema, table=16, dnn=(256, 128, 64), dropout=0.0, name="deepfm",
           layer_factory=None, optimizer=None):
    """A functional tf_keras model (a deeprec_lite.training.KVModel).

    Inputs: the schema's features (see `build_inputs`). Output: click probability [B, 1].
    The linear term uses a 1-wide KV table per categorical field plus a Dense over the
    numeric fields; FM and DNN share the field embeddings of `table` (a TableConfig, or the
    int dim of a default one); the numeric fields also feed the DNN. `layer_factory` and
    `optimizer`: see FieldEmbeddings. Both sets of tables are looked up in one
    KVEmbeddingGroup. Needs >= 1 categorical field.
    """
    if not schema.categorical:
        raise ValueError(f"DeepFM needs at least one categorical field; received schema={schema!r}")
    inputs = build_inputs(schema)
    table = as_table_config(table)
    embeddings, linear = stacked_together(
        [FieldEmbeddings(schema, table, layer_factory=layer_factory, optimizer=optimizer),
         FieldEmbeddings(schema, table.replace(dim=1), prefix="linear",
                         layer_factory=layer_factory, optimizer=optimizer)], inputs)
    # A TF op on Keras tensors (not a Lambda) so the model config loads in safe mode.
    logits = [tf.reduce_sum(linear, axis=1), FM(name="fm")(embeddings)]
    dnn_input = keras.layers.Flatten(name="flatten")(embeddings)
    numeric = numeric_matrix(schema, inputs)
    if numeric is not None:
        logits.append(keras.layers.Dense(1, use_bias=False, name="numeric_linear")(numeric))
        dnn_input = keras.layers.Concatenate(name="dnn_input")([dnn_input, numeric])
    hidden = DNN(hidden_units=dnn, dropout=dropout, name="dnn")(dnn_input)
    logits.append(keras.layers.Dense(1, name="dnn_logit")(hidden))
    logit = keras.layers.Add(name="logit")(logits)
    output = keras.layers.Activation("sigmoid", name="prediction")(logit)
    return KVModel(inputs, output, name=name)
