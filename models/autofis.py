"""AutoFIS (Liu et al., KDD 2020) as AutoDeepFM on KV embeddings: gated FM pairs + DNN."""
from deeprec_lite.layers import AutoFISGate
from deeprec_lite.models.common import ZooFeatures, dnn_logit, prediction_model


def AutoFIS(schema, table=16, comb_mask=None, dnn=(256, 128, 64), dropout=0.0,
            name="autofis", layer_factory=None, optimizer=None):
    """A functional tf_keras model (AutoDeepFM): output click probability [B, 1].

    Logits summed: linear, AutoFISGate(E) (inner products of every field pair -> BatchNorm
    without scale / center -> times a gate alpha per pair, summed; [B, 1]) and the DNN over
    flatten(E) + raw numerics. E [B, F, D] has numeric fields as x * v.

    Two stages (AutoFIS): search, then retrain with `comb_mask =
    model.get_layer("autofis_gate").selected_pairs()` (only pairs with a non-zero gate are
    computed). The paper trains alpha with GRDA (layers.GRDA, sparsifying) during the
    search: compile with `optimizers.KVOptimizer(sparse, dense,
    groups={"autofis_gates": layers.GRDA(...)})` so `model.fit` does that (without the
    group every weight, alpha included, uses `dense`, which zeroes no gate). Needs >= 2
    fields.
    `table`, `layer_factory`, `optimizer`: see models.common.ZooFeatures.
    """
    features = ZooFeatures(schema, table, layer_factory, optimizer)
    embeddings = features.field_matrix(features.dim)
    logits = [features.linear_logit(),
              AutoFISGate(output_mode="sum", comb_mask=comb_mask, name="autofis_gate")(embeddings)]
    if dnn:
        logits.append(dnn_logit(features.dnn_input(embeddings), dnn, dropout))
    return prediction_model(features.inputs, logits, name)
