"""FRNet (Wang et al., SIGIR 2022) on DeepFM: refined embeddings feed FM and DNN."""
from deeprec_lite.layers import FM, FRNet as FRNetLayer
from deeprec_lite.models.common import ZooFeatures, dnn_logit, prediction_model


def FRNet(schema, table=16, weight_type="bit", attention_size=20, cie_hidden_units=256,
          cie_dropout=0.0, dnn=(256, 128, 64), dropout=0.0, name="frnet", layer_factory=None,
          optimizer=None):
    """A functional tf_keras model (DeepFM_FRNet): output click probability [B, 1].

    E [B, F, D] (numeric fields as x * v) -> E' = layers.FRNet(E) [B, F, D], one shared
    refinement (pattern B of the FRM survey); logits summed: linear, FM(E'), DNN over
    flatten(E') + raw numerics. Defaults: bit-level gate, attention size 20 (official
    DeepFM_FRNet), one CIE layer of 256; CIE dropout 0 (official 0.5). The CIE's
    BatchNorm makes training outputs batch-dependent (inference is not).
    `table`, `layer_factory`, `optimizer`: see models.common.ZooFeatures.
    """
    features = ZooFeatures(schema, table, layer_factory, optimizer)
    embeddings = features.field_matrix(features.dim)
    refined = FRNetLayer(weight_type=weight_type, attention_size=attention_size,
                         cie_hidden_units=cie_hidden_units, cie_dropout=cie_dropout,
                         name="frnet_layer")(embeddings)
    logits = [features.linear_logit(), FM(name="fm")(refined)]
    if dnn:
        logits.append(dnn_logit(features.dnn_input(refined), dnn, dropout))
    return prediction_model(features.inputs, logits, name)
