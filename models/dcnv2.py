"""DCN-V2 (Wang et al., WWW 2021) on KV embeddings: CrossNetV2 with a DNN."""
from deeprec_lite.layers import CrossNetV2
from deeprec_lite.models.common import ZooFeatures, cross_and_deep, prediction_model


def DCNv2(schema, table=16, cross_layers=3, projection_dim=None, dnn=(256, 128, 64),
          dropout=0.0, structure="parallel", name="dcnv2", layer_factory=None, optimizer=None):
    """A functional tf_keras model: output click probability [B, 1].

    x0 = flatten(E) + raw numerics [B, d]; CrossNetV2 (full rank d x d per layer, or low
    rank `projection_dim`) combined with DNN(dnn) by `structure` ("parallel" default as
    FuxiCTR / BARS, "stacked", "crossnet_only"), Dense(1), sigmoid. Defaults: 3 cross
    layers, full rank, DNN (256, 128, 64). `table`, `layer_factory`, `optimizer`: see
    models.features.FieldEmbeddings.
    """
    features = ZooFeatures(schema, table, layer_factory, optimizer)
    x0 = features.dnn_input(features.field_matrix(features.dim))
    cross = CrossNetV2(num_layers=cross_layers, projection_dim=projection_dim, name="cross_net_v2")
    logit = cross_and_deep(x0, cross, dnn, dropout, structure, name)
    return prediction_model(features.inputs, [logit], name)
