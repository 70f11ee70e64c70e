"""Helpers shared by the layers of every group: argument checks that name the layer, the
stacked field-embedding input ``(batch, F, D)``, a fresh initializer per weight, and the
building of sublayers."""
from deeprec_lite.compat import tf
from deeprec_lite._checks import check_number, check_positive_int


def check_choice(value, options, arg_name, layer_name):
    """Return ``value`` if it is one of ``options``, else raise ValueError naming the argument."""
    if value not in options:
        raise ValueError(f"{layer_name}: {arg_name} must be one of {tuple(options)}; "
                         f"received {arg_name}={value!r}")
    return value


def check_units(units, arg_name, layer_name, allow_empty=True):
    """Validate a list/tuple of positive integer widths; return it as a list of ints."""
    if not isinstance(units, (list, tuple)) or (not allow_empty and not units):
        raise ValueError(f"{layer_name}: {arg_name} must be a {'' if allow_empty else 'non-empty '}"
                         f"list of positive integers; received {arg_name}={units!r}")
    return [check_positive_int(u, arg_name, layer_name) for u in units]


def check_float(value, arg_name, layer_name, low=None, high=None, low_open=False):
    """Return ``float(value)`` if it is a finite real number within the bounds, else raise
    ValueError naming the layer and the argument (see `_checks.check_number`)."""
    return check_number(value, arg_name, low=low, high=high, low_open=low_open, owner=layer_name)


def build_sublayer(sublayer, input_shape):
    """Build a sublayer from the parent's ``build`` (weights named ``parent/sublayer/...``)."""
    with tf.name_scope(sublayer.name):
        sublayer.build(input_shape)


def field_shape(input_shape, layer_name, min_fields=1):
    """Validate a ``(batch, F, D)`` input shape with known ``F >= min_fields`` and ``D >= 1``;
    return ``(F, D)``."""
    shape = tf.TensorShape(input_shape)
    if shape.rank != 3 or shape[1] is None or shape[2] is None:
        raise ValueError(
            f"{layer_name} expects stacked field embeddings of shape (batch, num_fields, "
            f"embedding_dim) with known num_fields and embedding_dim; received input_shape={shape}")
    if shape[1] < min_fields or shape[2] < 1:
        raise ValueError(f"{layer_name} needs at least {min_fields} field"
                         f"{'s' if min_fields > 1 else ''} and embedding_dim >= 1; "
                         f"received input_shape={shape}")
    return int(shape[1]), int(shape[2])


def fresh_initializer(initializer):
    """A new instance of ``initializer`` for one ``add_weight`` call.

    tf_keras returns identical values when one initializer instance is called twice (even
    unseeded), which would make every cross layer or expert start from the same weights.
    """
    return initializer.__class__.from_config(initializer.get_config())
