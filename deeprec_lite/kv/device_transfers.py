"""Tensors sent between a worker and a parameter server together, as one tensor.

In a cluster every tensor that an op on one task passes to an op on another is
its own transfer (a RecvTensor RPC with its round trip, whatever its size), so a
table group's per-table ids, rows and gradients would cost one transfer each per
step. `move_together` packs a list of tensors into one flat tensor on the sending
device and unpacks it on the receiving one: two transfers (the values and their
sizes) for any number of tensors, at the price of one copy on each side.

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
    """The tensors (one dtype, every dimension but the first known, any sizes) as
    tensors made on `to_device` from one packed tensor built on `from_device` ("": the
    surrounding device scope, on either side), with their sizes in a second one.
    Values and shapes are unchanged."""
    tensors = [tf.convert_to_tensor(t) for t in tensors]
    if not tensors:
        return []
    if len({t.dtype for t in tensors}) != 1 or not all(
            t.shape.rank and t.shape[1:].is_fully_defined() for t in tensors):
        raise ValueError("move_together takes tensors of one dtype whose dimensions but the "
                         f"first are known, got {[(t.dtype.name, t.shape) for t in tensors]}")
    with _on(from_device):
        values = tf.concat([tf.reshape(t, [-1]) if t.shape.rank > 1 else t for t in tensors], 0)
        sizes = tf.stack([tf.size(t, out_type=tf.int64) for t in tensors])
    with _on(to_device):
        parts = tf.split(values, sizes, num=len(tensors))
        return [tf.reshape(p, [-1] + t.shape[1:].as_list()) if t.shape.rank > 1 else p
                for p, t in zip(parts, tensors)]


def _on(device):
    """The device scope of `device`; "": the surrounding one."""
    return tf.device(device) if device else contextlib.nullcontext()
