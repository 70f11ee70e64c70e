"""xDeepInt (Yan & Li, DLP-KDD 2020) on KV embeddings trained with group-lasso FTRL."""
from deeprec_lite.kv import sparse_optimizers
from deeprec_lite.layers import PIN
from deeprec_lite.models.common import FieldReadout, ZooFeatures, prediction_model


def xDeepInt(schema, table=16, pin_layers=4, num_subspaces=None, ftrl_alpha=0.05,
             ftrl_beta=1e-3, ftrl_lambda1=0.0, ftrl_lambda2=0.0, name="xdeepint",
             layer_factory=None, optimizer=None):
    """A functional tf_keras model: output click probability [B, 1].

    E [B, F, D] (numeric fields as x * v) -> PIN(pin_layers, num_subspaces) [B, F, D] ->
    the vector-wise read-out (common.FieldReadout: Dense(1) over fields, sum over D) ->
    sigmoid. No DNN, no linear part (as the reference).

    The KV embedding tables train with `sparse_optimizers.GroupFtrl(ftrl_alpha,
    ftrl_beta, ftrl_lambda1, ftrl_lambda2)` (per-table optimizer; the compiled
    KVOptimizer's dense optimizer trains PIN and the read-out). The reference used
    alpha 0.02, beta 1, lambda1 = lambda2 = 10 with a SUM-reduced loss; Keras losses are
    batch means, so gradients are batch-size times smaller: with beta 1 the step is about
    alpha * g (tiny; Frappe AUC 0.54 after an epoch), so the defaults are alpha 0.05 and
    beta 1e-3 (Adagrad-like steps; Frappe 0.93 after 2 epochs), and the lambdas must be
    about batch-size times smaller than the reference's: the defaults are 0 (no selection).
    An `optimizer` overrides G-FTRL.

    Defaults: 4 PIN layers (reference), num_subspaces None = the table's dim (bit-wise,
    like the reference's 16 subspaces of a 16-dim embedding).
    `table`, `layer_factory`, `optimizer`: see models.common.ZooFeatures.
    """
    if layer_factory is None and optimizer is None:
        optimizer = sparse_optimizers.GroupFtrl(ftrl_alpha, ftrl_beta, ftrl_lambda1, ftrl_lambda2)
    features = ZooFeatures(schema, table, layer_factory, optimizer)
    embeddings = features.field_matrix(features.dim)
    subspaces = features.dim if num_subspaces is None else num_subspaces
    crossed = PIN(num_layers=pin_layers, num_subspaces=subspaces, name="pin")(embeddings)
    return prediction_model(features.inputs, [FieldReadout(name="readout")(crossed)], name)
