"""xDeepFM (Lian et al., KDD 2018) on KV embeddings: sigmoid(linear + CIN + DNN)."""
from deeprec_lite.compat import keras
from deeprec_lite.layers import CIN
from deeprec_lite.models.common import ZooFeatures, dnn_logit, prediction_model


def xDeepFM(schema, table=16, cin_layers=(128, 128), cin_activation=None,
            split_half=True, dnn=(256, 128, 64), dropout=0.0, name="xdeepfm",
            layer_factory=None, optimizer=None):
    """A functional tf_keras model: output click probability [B, 1].

    Logits summed: linear, Dense(1)(CIN(E)) with E [B, F, D] (numeric fields as x * v),
    and the DNN over flatten(E) + raw numerics. Defaults: CIN (128, 128) with split_half
    (DeepCTR), identity activation (FuxiCTR / the paper; DeepCTR uses "relu"), DNN
    (256, 128, 64). `table`, `layer_factory`, `optimizer`: see models.common.ZooFeatures.
    """
    features = ZooFeatures(schema, table, layer_factory, optimizer)
    embeddings = features.field_matrix(features.dim)
    cin = CIN(layer_sizes=cin_layers, activation=cin_activation, split_half=split_half,
              name="cin")(embeddings)
    logits = [features.linear_logit(), keras.layers.Dense(1, name="cin_logit")(cin)]
    if dnn:
        logits.append(dnn_logit(features.dnn_input(embeddings), dnn, dropout))
    return prediction_model(features.inputs, logits, name)
