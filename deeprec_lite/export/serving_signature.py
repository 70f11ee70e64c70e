"""Input specs of a Keras model and their flat, Tensor-only serving signature.

Serving signatures take plain tensors only, so a 2-D ragged input `x` becomes
two arguments, `x_values` [N] and `x_row_lengths` [B].
"""
from deeprec_lite.compat import tf


def model_input_spec(model, input_signature=None):
    """The spec of the model's (single, possibly nested) input."""
    if input_signature is not None:
        return input_signature
    spec = model.save_spec(dynamic_batch=True) if hasattr(model, "save_spec") else None
    if spec is None:
        raise ValueError(f"model {getattr(model, 'name', model)!r} has no known input spec (a "
                         "subclassed model never called); call it once or pass input_signature")
    args, kwargs = spec
    if len(args) != 1 or kwargs:
        raise ValueError("export_saved_model supports models called with one (possibly nested) "
                         f"input, got {len(args)} positional and {sorted(kwargs)} keyword inputs; "
                         "pass input_signature")
    return args[0]


def _named(structure, prefix, single):
    """A dict of a dict, list / tuple ({prefix}_i) or single item (`single`)."""
    if isinstance(structure, dict):
        return dict(structure)
    if isinstance(structure, (list, tuple)):
        return {f"{prefix}_{i}": s for i, s in enumerate(structure)}
    return {single: structure}


def _named_inputs(spec):
    return _named(spec, "input", "inputs")


def flat_signature(spec):
    """{argument name: TensorSpec} of the serving signature."""
    flat = {}
    for name, s in _named_inputs(spec).items():
        if isinstance(s, tf.RaggedTensorSpec):
            if s.ragged_rank != 1 or s.shape.rank != 2:
                raise ValueError(f"input {name!r}: only 2-D ragged inputs can be served, got {s}")
            flat[f"{name}_values"] = tf.TensorSpec([None], s.dtype, name=f"{name}_values")
            flat[f"{name}_row_lengths"] = tf.TensorSpec([None], s.row_splits_dtype,
                                                        name=f"{name}_row_lengths")
        elif isinstance(s, tf.TensorSpec):
            flat[name] = tf.TensorSpec(s.shape, s.dtype, name=name)
        else:
            raise ValueError(f"input {name!r}: {type(s).__name__} inputs cannot be served; "
                             "use dense or ragged inputs")
    return flat


def unflatten(spec, flat):
    """The model's input structure from the serving arguments."""
    named = {}
    for name, s in _named_inputs(spec).items():
        if isinstance(s, tf.RaggedTensorSpec):
            named[name] = tf.RaggedTensor.from_row_lengths(flat[f"{name}_values"],
                                                           flat[f"{name}_row_lengths"])
        else:
            named[name] = flat[name]
    if isinstance(spec, dict):
        return named
    if isinstance(spec, (list, tuple)):
        return type(spec)(named[f"input_{i}"] for i in range(len(spec)))
    return named["inputs"]


def named_outputs(outputs):
    """A signature's output dict: {"prediction": y} for a single tensor."""
    return _named(outputs, "output", "prediction")
