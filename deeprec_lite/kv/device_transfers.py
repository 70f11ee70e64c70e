"""Tensors sent between a worker and a parameter server together, as one tensor.

In a cluster every tensor that an op on one task passes to an op on another is
its own transfer (a RecvTensor RPC with its round trip, whatever its size), so a
table group's per-table ids, rows and gradients would cost one transfer each per
step. `move_together` packs a list of tensors into one flat tensor on the sending
device and unpacks it on the receiving one: two transfers (the values and their
shapes) for any number of tensors, at the price of one copy on each side.

    rows = move_together(rows_on_ps, to_device="", from_device=ps_device)
"""
import contextlib
from typing import List, Sequence

import tensorflow as tf

PARAMETER_SERVER_JOB = "ps"


def on_parameter_server(device: str) -> bool:
    """Whether `device` (a device string, "" for none) is on a parameter server task."""
    return bool(device) and tf.DeviceSpec.from_string(device).job == PARAMETER_SERVER_JOB


def move_together(tensors: Sequence[tf.Tensor], to_device: str,
                  from_device: str = "") -> List[tf.Tensor]:
    """The tensors (one dtype, shapes of known rank, any sizes) as tensors made on
    `to_device` from one packed tensor built on `from_device` ("": the surrounding
    device scope, on either side). Values and shapes are unchanged."""
    tensors = [tf.convert_to_tensor(t) for t in tensors]
    if not tensors:
        return []
    ranks = [t.shape.rank for t in tensors]
    if None in ranks or len({t.dtype for t in tensors}) != 1:
        raise ValueError("move_together takes tensors of one dtype and known ranks, got "
                         f"{[(t.dtype.name, t.shape) for t in tensors]}")
    with _on(from_device):
        values = tf.concat([tf.reshape(t, [-1]) for t in tensors], 0)
        shapes = tf.concat([tf.shape(t, out_type=tf.int64) for t in tensors], 0)
    with _on(to_device):
        shapes = tf.split(shapes, ranks)
        parts = tf.split(values, tf.stack([tf.reduce_prod(s) for s in shapes]))
        return [tf.reshape(p, s) for p, s in zip(parts, shapes)]


def _on(device):
    """The device scope of `device`; "": the surrounding one."""
    return tf.device(device) if device else contextlib.nullcontext()
