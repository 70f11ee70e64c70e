"""Wide & Deep (Cheng et al., DLRS 2016) on KV embeddings: sigmoid(linear + DNN)."""
from deeprec_lite.models.common import ZooFeatures, dnn_logit, prediction_model


def WideDeep(schema, table=16, dnn=(256, 128, 64), dropout=0.0, name="widedeep",
             layer_factory=None, optimizer=None):
    """A functional tf_keras model: output click probability [B, 1].

    Wide part: the linear logit (1-wide KV table per categorical field + Dense over the
    numeric values). Deep part: DNN over flatten(E) [B, F*D] plus the raw numeric values.
    Defaults: DNN (256, 128, 64) as DeepCTR's WDL. `table`, `layer_factory`, `optimizer`: see
    models.features.FieldEmbeddings.
    """
    features = ZooFeatures(schema, table, layer_factory, optimizer)
    embeddings = features.field_matrix(features.dim)
    deep = dnn_logit(features.dnn_input(embeddings), dnn, dropout)
    return prediction_model(features.inputs, [features.linear_logit(), deep], name)
