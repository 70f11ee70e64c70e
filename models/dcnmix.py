"""DCN-Mix (the mixture of low-rank experts of DCN-V2) on KV embeddings."""
from deeprec_lite.layers import CrossNetMix
from deeprec_lite.models.common import ZooFeatures, cross_and_deep, prediction_model


def DCNMix(schema, table=16, cross_layers=3, num_experts=4, low_rank=32,
           dnn=(256, 128, 64), dropout=0.0, structure="parallel", name="dcnmix",
           layer_factory=None, optimizer=None):
    """A functional tf_keras model: output click probability [B, 1].

    x0 = flatten(E) + raw numerics [B, d]; CrossNetMix (nonlinear, `num_experts` experts
    of rank `low_rank`) combined with DNN(dnn) by `structure` (see
    common.cross_and_deep), Dense(1), sigmoid. Defaults: 3 layers, 4 experts, rank 32
    (FuxiCTR), DNN (256, 128, 64). `table`, `layer_factory`, `optimizer`: see
    models.features.FieldEmbeddings.
    """
    features = ZooFeatures(schema, table, layer_factory, optimizer)
    x0 = features.dnn_input(features.field_matrix(features.dim))
    cross = CrossNetMix(num_layers=cross_layers, num_experts=num_experts, low_rank=low_rank,
                        name="cross_net_mix")
    logit = cross_and_deep(x0, cross, dnn, dropout, structure, name)
    return prediction_model(features.inputs, [logit], name)
