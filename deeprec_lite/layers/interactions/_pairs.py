"""Field pairs and cross-network inputs of the interaction layers.

Field-pair index constants and gathering (no Python loop over pairs), and the
``x0`` / ``[x0, x]`` input of the cross networks.
"""
import numpy as np

from deeprec_lite.compat import tf


def pair_indices(num_fields):
    """Row and column indices of the ``P = F(F-1)/2`` pairs ``i < j`` in ``np.triu_indices`` order.

    For ``F = 3`` the order is (0, 1), (0, 2), (1, 2). Returns two int32 numpy arrays.
    """
    rows, cols = np.triu_indices(int(num_fields), 1)
    return rows.astype(np.int32), cols.astype(np.int32)


def gather_pairs(embeddings, num_fields):
    """Split ``(B, F, D)`` embeddings into ``(left, right)`` pair tensors, each ``(B, P, D)``.

    ``left[:, p] = e_i`` and ``right[:, p] = e_j`` for the ``p``-th pair ``(i, j)`` of
    :func:`pair_indices`.
    """
    rows, cols = pair_indices(num_fields)
    return (tf.gather(embeddings, tf.constant(rows), axis=1),
            tf.gather(embeddings, tf.constant(cols), axis=1))


def _cross_shapes(input_shape):
    if isinstance(input_shape, (list, tuple)) and input_shape and not isinstance(
            input_shape[0], (int, type(None))):
        return [tf.TensorShape(s) for s in input_shape]
    return [tf.TensorShape(input_shape)]


def cross_input_dim(input_shape, layer_name):
    """Validate the input of a cross network and return its width ``d``.

    Accepted: one shape ``(batch, d)`` (``x0``, the layer starts from ``x = x0``) or a
    list of two equal shapes ``[(batch, d), (batch, d)]`` (``[x0, x]``; an unknown batch
    size matches any).
    """
    shapes = _cross_shapes(input_shape)
    if len(shapes) not in (1, 2):
        raise ValueError(f"{layer_name} expects x0 or [x0, x]; received {len(shapes)} inputs")
    for s in shapes:
        if s.rank != 2 or s[-1] is None or s[-1] < 1:
            raise ValueError(
                f"{layer_name} expects inputs of shape (batch, d) with known d >= 1 (flatten field "
                f"embeddings first); received input_shape={s}")
    if len(shapes) == 2 and not shapes[0].is_compatible_with(shapes[1]):
        raise ValueError(
            f"{layer_name}: x0 and x must have the same width and batch size; received "
            f"x0 shape={shapes[0]}, x shape={shapes[1]}")
    return int(shapes[0][-1])


def split_cross_inputs(inputs):
    """``x0`` -> ``(x0, x0)``; ``[x0, x]`` -> ``(x0, x)``."""
    if isinstance(inputs, (list, tuple)):
        if len(inputs) == 1:
            return inputs[0], inputs[0]
        return inputs[0], inputs[1]
    return inputs, inputs
