"""FiBiNET (Huang et al., RecSys 2019) on KV embeddings: SENET + bilinear interactions."""
from deeprec_lite.compat import keras
from deeprec_lite.layers import SENET, Bilinear
from deeprec_lite.models.common import ZooFeatures, dnn_logit, prediction_model


def FiBiNET(schema, table=16, reduction_ratio=3, bilinear_type="interaction",
            dnn=(256, 128, 64), dropout=0.0, name="fibinet", layer_factory=None, optimizer=None):
    """A functional tf_keras model: output click probability [B, 1].

    E [B, F, D]; V = SENET(E); p = Bilinear(E), q = Bilinear(V) with separate weights
    (each [B, P, D]); DNN over concat(flatten(p), flatten(q), raw numerics), Dense(1);
    plus the linear logit; sigmoid. Defaults: reduction ratio 3, "interaction" bilinear
    type, ReLU excitation, DNN (256, 128, 64) (DeepCTR). Needs >= 2 fields.
    `table`, `layer_factory`, `optimizer`: see models.common.ZooFeatures.
    """
    features = ZooFeatures(schema, table, layer_factory, optimizer)
    embeddings = features.field_matrix(features.dim)
    weighted = SENET(reduction_ratio=reduction_ratio, name="senet")(embeddings)
    plain = Bilinear(bilinear_type=bilinear_type, name="bilinear")(embeddings)
    excited = Bilinear(bilinear_type=bilinear_type, name="bilinear_senet")(weighted)
    parts = [keras.layers.Flatten(name="bilinear_flat")(plain),
             keras.layers.Flatten(name="bilinear_senet_flat")(excited)]
    if features.numeric is not None:
        parts.append(features.numeric)
    deep = dnn_logit(keras.layers.Concatenate(name="dnn_input")(parts), dnn, dropout)
    return prediction_model(features.inputs, [features.linear_logit(), deep], name)
