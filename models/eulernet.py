"""EulerNet (Tian et al., SIGIR 2023) on KV embeddings."""
from deeprec_lite.layers import EulerNet as EulerNetLayer
from deeprec_lite.models.common import ZooFeatures, prediction_model


def EulerNet(schema, table=16, shape=(20,), layer_norm=True, dropout=0.0,
             name="eulernet", layer_factory=None, optimizer=None):
    """A functional tf_keras model: output click probability [B, 1].

    E [B, F, D] (numeric fields as x * v) -> layers.EulerNet(shape) logit [B, 1] ->
    sigmoid (no linear or DNN part, as FuxiCTR's EulerNet). Defaults: shape (20,) (FuxiCTR
    template), LayerNorm on; `dropout` is used for both the explicit and implicit parts.
    `table`, `layer_factory`, `optimizer`: see models.common.ZooFeatures.
    """
    features = ZooFeatures(schema, table, layer_factory, optimizer)
    embeddings = features.field_matrix(features.dim)
    logit = EulerNetLayer(shape=shape, layer_norm=layer_norm, explicit_dropout=dropout,
                          implicit_dropout=dropout, name="eulernet_layer")(embeddings)
    return prediction_model(features.inputs, [logit], name)
