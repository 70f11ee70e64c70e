"""CAN (Bian et al., WSDM 2022) on KV embeddings: co-action units next to a DNN."""
from deeprec_lite._checks import check_positive_int
from deeprec_lite.compat import keras
from deeprec_lite.layers._common import check_units
from deeprec_lite.layers import CoActionUnit
from deeprec_lite.models.common import ZooFeatures, dnn_logit, prediction_model


def CAN(schema, table=16, induction_field=None, feed_fields=None, feed_dim=16,
        coaction_units=(8, 4), orders=3, order_independent=False, dnn=(200, 80), dropout=0.0,
        name="can", layer_factory=None, optimizer=None):
    """A functional tf_keras model: output click probability [B, 1].

    Schema-based choices (the schema says nothing about which field is the target item):
      - induction field: `induction_field`, default the first categorical field (pass the
        target item / category field explicitly when it is not first). It owns a
        separate co-action KV table (parameter independence) of width
        `CoActionUnit.induction_size(feed_dim, coaction_units, orders, order_independent)`
        (160 for the reference 16 -> 8 -> 4), reshaped per sample into a micro-MLP.
      - feed fields: `feed_fields`, default every other categorical field, each with its
        own co-action KV table of width `feed_dim`. Multi-valued / sequence feed fields are
        mean-pooled to one vector (T = 1), so a history acts as one bag.
      - one induction vector serves every (induction, feed) pair: no combination
        independence (it would multiply the induction table by the number of feeds).
    Per feed field the unit gives [B, orders * sum(coaction_units)]; these are
    concatenated with flatten(E) [B, F*D] and the raw numerics into DNN(dnn) -> Dense(1)
    -> sigmoid. Defaults: the reference (feed dim 16, units (8, 4), 3 orders, shared
    orders, MLP (200, 80)). Needs >= 2 categorical fields.
    `table`, `layer_factory`, `optimizer`: see models.common.ZooFeatures.
    """
    names = [f.name for f in schema.categorical]
    induction_field = induction_field or (names[0] if names else None)
    if induction_field not in names:
        raise ValueError(f"CAN: induction_field must be a categorical field of the schema "
                         f"({', '.join(names)}); received induction_field={induction_field!r}")
    if feed_fields is None:
        feed_fields = [n for n in names if n != induction_field]
    if isinstance(feed_fields, str) or not feed_fields or induction_field in feed_fields:
        raise ValueError(f"CAN: feed_fields must be a non-empty list of categorical fields other "
                         f"than {induction_field!r}; received feed_fields={feed_fields!r}")
    check_positive_int(feed_dim, "feed_dim", "CAN")
    check_units(coaction_units, "coaction_units", "CAN", allow_empty=False)
    features = ZooFeatures(schema, table, layer_factory, optimizer)
    embeddings = features.field_matrix(features.dim)
    size = CoActionUnit.induction_size(feed_dim, coaction_units, orders, order_independent)
    induction = keras.layers.Flatten(name="coaction_induction_flat")(
        features.embeddings(size, prefix="coaction_induction", fields=[induction_field]))
    feeds = features.embeddings(feed_dim, prefix="coaction_feed", fields=feed_fields)
    unit = CoActionUnit(hidden_units=coaction_units, orders=orders,
                        order_independent=order_independent, name="coaction")
    ordered = [n for n in names if n in feed_fields]
    parts = [features.dnn_input(embeddings)] + [
        unit([induction, feeds[:, i]])  # a TF slicing op, not a Lambda (safe-mode configs)
        for i in range(len(ordered))]
    deep = dnn_logit(keras.layers.Concatenate(name="can_input")(parts), dnn, dropout)
    return prediction_model(features.inputs, [deep], name)
