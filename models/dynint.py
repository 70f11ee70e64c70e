"""DynInt (Yan & Li, arXiv 2301.08139) on KV embeddings: PIN with data-dependent gates
or weights, and the xDeepInt read-out."""
from deeprec_lite.layers import DynInt as DynIntLayer
from deeprec_lite.models.common import FieldReadout, ZooFeatures, prediction_model


def DynInt(schema, table=16, mode="DA", interaction_layers=2, num_subspaces=1,
           rank=4, generator_hidden_units=(), name="dynint", layer_factory=None, optimizer=None):
    """A functional tf_keras model: output click probability [B, 1].

    E [B, F, D] (numeric fields as x * v) -> layers.DynInt(`mode` "DA" / "DGP" / "DWP")
    [B, F, D] -> the xDeepInt read-out (common.FieldReadout) -> sigmoid. The layer's
    formulas are unverified against the DynInt paper (see the layer's docstring).
    Defaults: the layer's (DA, 2 layers, vector-wise h = 1, linear generators). The
    tables use the compiled KVOptimizer's sparse optimizer.
    `table`, `layer_factory`, `optimizer`: see models.common.ZooFeatures.
    """
    features = ZooFeatures(schema, table, layer_factory, optimizer)
    embeddings = features.field_matrix(features.dim)
    crossed = DynIntLayer(mode=mode, num_layers=interaction_layers, num_subspaces=num_subspaces,
                          rank=rank, generator_hidden_units=generator_hidden_units,
                          name="dynint_layer")(embeddings)
    return prediction_model(features.inputs, [FieldReadout(name="readout")(crossed)], name)
