"""PNN (Qu et al., ICDM 2016) on KV embeddings: IPNN, OPNN or both products."""
from deeprec_lite.compat import keras
from deeprec_lite.layers import InnerProduct, OuterProduct
from deeprec_lite.models.common import ZooFeatures, check_choice, dnn_logit, prediction_model

PRODUCT_TYPES = ("inner", "outer", "both")


def PNN(schema, table=16, product_type="inner", kernel_type="mat", dnn=(256, 128, 64),
        dropout=0.0, name="pnn", layer_factory=None, optimizer=None):
    """A functional tf_keras model: output click probability [B, 1].

    The product layer gives p [B, P] (P = F(F-1)/2 pairs of E [B, F, D]): inner products
    (IPNN), kernel outer products of `kernel_type` "mat" / "vec" / "num" (OPNN, DeepCTR's
    kernel form) or both; DNN(dnn) over concat(flatten(E) + raw numerics, p), Dense(1),
    sigmoid. Defaults: inner, DNN (256, 128, 64) (DeepCTR). Needs >= 2 fields.
    `table`, `layer_factory`, `optimizer`: see models.common.ZooFeatures.
    """
    check_choice(product_type, PRODUCT_TYPES, "product_type", "PNN")
    if not dnn:
        raise ValueError(f"PNN: dnn must be a non-empty list of widths; received dnn={dnn!r}")
    features = ZooFeatures(schema, table, layer_factory, optimizer)
    embeddings = features.field_matrix(features.dim)
    parts = [features.dnn_input(embeddings)]
    if product_type in ("inner", "both"):
        parts.append(InnerProduct(name="inner_product")(embeddings))
    if product_type in ("outer", "both"):
        parts.append(OuterProduct(kernel_type=kernel_type, name="outer_product")(embeddings))
    logit = dnn_logit(keras.layers.Concatenate(name="product_input")(parts), dnn, dropout)
    return prediction_model(features.inputs, [logit], name)


def IPNN(schema, table=16, dnn=(256, 128, 64), dropout=0.0, name="ipnn", **kwargs):
    """PNN with inner products (see `PNN`)."""
    return PNN(schema, table, product_type="inner", dnn=dnn, dropout=dropout, name=name,
               **kwargs)


def OPNN(schema, table=16, kernel_type="mat", dnn=(256, 128, 64), dropout=0.0,
         name="opnn", **kwargs):
    """PNN with kernel outer products (see `PNN`)."""
    return PNN(schema, table, product_type="outer", kernel_type=kernel_type, dnn=dnn,
               dropout=dropout, name=name, **kwargs)
