"""GDCN (Wang et al., CIKM 2023) on KV embeddings: gated cross network with a DNN,
optionally with per-field embedding dims (e.g. proposed by models.fdo)."""
from collections.abc import Mapping

from deeprec_lite._checks import is_int
from deeprec_lite.compat import keras
from deeprec_lite.layers import GatedCrossNet
from deeprec_lite.models.common import ZooFeatures, cross_and_deep, prediction_model


def GDCN(schema, table=16, cross_layers=3, dnn=(400, 400, 400), dropout=0.0,
         structure="parallel", field_dims=None, name="gdcn", layer_factory=None, optimizer=None):
    """A functional tf_keras model: output click probability [B, 1].

    c0 = flatten(E) + raw numerics [B, d]; GatedCrossNet(cross_layers) combined with
    DNN(dnn) by `structure` ("parallel" = GDCN-P, "stacked" = GDCN-S, "crossnet_only" =
    GCN + Linear), Dense(1), sigmoid. Defaults: 3 cross layers and DNN (400, 400, 400)
    (official GDCN; its dropout 0.5 is not the default here).

    field_dims: optional {categorical field name: dim} (FDO, see models.fdo); fields not
      named keep the table's dim. Fields sharing a table must get the same dim. c0 is then
      the concatenation of the fields' embeddings of unequal widths (grouped by dim) and
      the raw numeric values.
    `table`, `layer_factory`, `optimizer`: see models.common.ZooFeatures.
    """
    features = ZooFeatures(schema, table, layer_factory, optimizer)
    if field_dims:
        x0 = _mixed_width_input(features, field_dims)
    else:
        x0 = features.dnn_input(features.field_matrix(features.dim))
    cross = GatedCrossNet(num_layers=cross_layers, name="gated_cross_net")
    logit = cross_and_deep(x0, cross, dnn, dropout, structure, name)
    return prediction_model(features.inputs, [logit], name)


def _mixed_width_input(features, field_dims):
    names = [f.name for f in features.schema.categorical]
    if (not isinstance(field_dims, Mapping) or set(field_dims) - set(names)
            or not all(is_int(v) and v > 0 for v in field_dims.values())):
        raise ValueError(f"GDCN: field_dims must map categorical fields ({', '.join(names)}) to "
                         f"positive ints; received field_dims={field_dims!r}")
    dims = {n: field_dims.get(n, features.dim) for n in names}
    for table in dict.fromkeys(f.table for f in features.schema.categorical):
        sharing = {f.name: dims[f.name] for f in features.schema.categorical if f.table == table}
        if len(set(sharing.values())) > 1:
            raise ValueError(f"GDCN: fields sharing table {table!r} must get the same dim; "
                             f"received dims {sharing} (field_dims={dict(field_dims)!r})")
    parts = []
    for dim in sorted(set(dims.values())):
        group = [n for n in names if dims[n] == dim]
        parts.append(keras.layers.Flatten(name=f"fields_{dim}_flat")(
            features.embeddings(dim, fields=group)))
    if features.numeric is not None:
        parts.append(features.numeric)
    return parts[0] if len(parts) == 1 else keras.layers.Concatenate(name="dnn_input")(parts)
