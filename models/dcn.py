"""DCN (Wang et al., ADKDD 2017) on KV embeddings: CrossNet parallel with a DNN."""
from deeprec_lite.layers import CrossNet
from deeprec_lite.models.common import ZooFeatures, cross_and_deep, prediction_model


def DCN(schema, table=16, cross_layers=3, dnn=(256, 128, 64), dropout=0.0,
        structure="parallel", name="dcn", layer_factory=None, optimizer=None):
    """A functional tf_keras model: output click probability [B, 1].

    x0 = flatten(E) + raw numerics [B, d]; CrossNet(cross_layers) [B, d] and DNN(dnn) in
    parallel, concatenated, Dense(1), sigmoid (`structure`: "parallel", "stacked" or
    "crossnet_only", see common.cross_and_deep). Defaults: 3 cross layers (FuxiCTR /
    BARS), DNN (256, 128, 64) (DeepCTR). `table`, `layer_factory`, `optimizer`: see
    models.features.FieldEmbeddings.
    """
    features = ZooFeatures(schema, table, layer_factory, optimizer)
    x0 = features.dnn_input(features.field_matrix(features.dim))
    logit = cross_and_deep(x0, CrossNet(num_layers=cross_layers, name="cross_net"), dnn,
                           dropout, structure, name)
    return prediction_model(features.inputs, [logit], name)
