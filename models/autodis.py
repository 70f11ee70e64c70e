"""AutoDis (Guo et al., KDD 2021) numeric-field embeddings + a DNN, on KV embeddings."""
from deeprec_lite.layers import AutoDis
from deeprec_lite.models.common import ZooFeatures, dnn_logit, prediction_model


def AutoDisDNN(schema, table=16, num_buckets=20, temperature=1.0, dnn=(400, 400, 512),
               dropout=0.0, name="autodisdnn", layer_factory=None, optimizer=None):
    """A functional tf_keras model: output click probability [B, 1].

    E [B, F, D]: the categorical fields' KV embeddings, then every numeric field embedded
    by layers.AutoDis (`num_buckets` meta-embeddings per field, soft assignment at
    `temperature`, the paper's discretizer and weighted average). The numeric values are
    those the reader gives, i.e. after the schema's transform (log / minmax): AutoDis
    wants normalized inputs, so give numeric fields a transform. A schema without numeric
    fields makes this a plain DNN. DNN over flatten(E) + the raw numerics -> Dense(1) ->
    sigmoid. Defaults: 20 buckets (official), temperature 1 (the official 1e-5 is nearly
    hard, with sparse gradients), MLP (400, 400, 512) (official).
    `table`, `layer_factory`, `optimizer`: see models.common.ZooFeatures.
    """
    features = ZooFeatures(schema, table, layer_factory, optimizer)
    numeric = AutoDis(features.dim, num_buckets=num_buckets, temperature=temperature,
                      name="autodis")
    embeddings = features.field_matrix(features.dim, numeric_layer=numeric)
    logit = dnn_logit(features.dnn_input(embeddings), dnn, dropout)
    return prediction_model(features.inputs, [logit], name)
