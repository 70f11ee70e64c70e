"""RFM, rotative factorization machines (Tian et al., KDD 2024), on KV embeddings."""
from deeprec_lite.layers import RFM as RFMLayer
from deeprec_lite.models.common import ZooFeatures, prediction_model


def RFM(schema, table=16, hidden_units=16, attention_layers=1, num_heads=1,
        amp_hidden_units=(48,), group_size=2, dropout=0.0, name="rfm", layer_factory=None,
        optimizer=None):
    """A functional tf_keras model: output click probability [B, 1].

    E [B, F, D] (numeric fields as x * v), read as angles -> layers.RFM (self-attentive
    rotation layers, AmpNet) logit [B, 1] -> sigmoid. Defaults: embedding 16, 16 hidden
    units, 1 attention layer, AmpNet [48], group size 2 (within the reference grid);
    `dropout` is used for both attention and AmpNet dropout.
    `table`, `layer_factory`, `optimizer`: see models.common.ZooFeatures.
    """
    features = ZooFeatures(schema, table, layer_factory, optimizer)
    embeddings = features.field_matrix(features.dim)
    logit = RFMLayer(hidden_units=hidden_units, num_attention_layers=attention_layers,
                     num_heads=num_heads, attention_dropout=dropout,
                     amp_hidden_units=amp_hidden_units, group_size=group_size,
                     amp_dropout=dropout, name="rfm_layer")(embeddings)
    return prediction_model(features.inputs, [logit], name)
