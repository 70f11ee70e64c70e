"""device_transfers: tensors moved together come back unchanged, unpacked where asked."""
import numpy as np
import pytest

from deeprec_lite.compat import tf
from deeprec_lite.kv.device_transfers import move_together, on_parameter_server

PS = "/job:ps/replica:0/task:1/device:CPU:0"


def test_values_shapes_and_dtypes_come_back_unchanged():
    rng = np.random.default_rng(0)
    floats = [rng.normal(size=(5, 3)).astype(np.float32), np.zeros((0, 3), np.float32),
              rng.normal(size=(2, 4, 3)).astype(np.float32), np.float32([7.5]),
              rng.normal(size=(0,)).astype(np.float32)]
    moved = move_together([tf.constant(a) for a in floats], to_device="")
    assert len(moved) == len(floats)
    for got, want in zip(moved, floats):
        assert got.dtype == tf.float32 and got.shape == np.shape(want)
        np.testing.assert_array_equal(got.numpy(), want)
    strings = [np.array([b"", b"a\x00b", "\u65e5".encode()], object), np.array([b"x"], object)]
    for got, want in zip(move_together([tf.constant(s) for s in strings], ""), strings):
        np.testing.assert_array_equal(got.numpy(), want)
    (one,) = move_together([tf.constant([[1, 2]], tf.int64)], "")
    np.testing.assert_array_equal(one.numpy(), [[1, 2]])
    assert move_together([], "") == []


def test_packing_sits_on_the_sender_and_unpacking_on_the_receiver():
    graph = tf.Graph()
    with graph.as_default():
        a = tf.compat.v1.placeholder(tf.float32, [None, 4])
        b = tf.compat.v1.placeholder(tf.float32, [None])
        to_ps = move_together([a, b], to_device=PS)
        back = move_together(to_ps, to_device="", from_device=PS)
    assert [t.shape.as_list() for t in to_ps] == [[None, 4], [None]]
    assert all(t.op.device == PS for t in to_ps)
    assert all(t.op.device == "" for t in back)
    # exactly one values tensor and one sizes tensor cross each way
    crossing = {(t.name, op.device) for op in graph.get_operations() for t in op.inputs
                if t.op.device != op.device}
    assert len(crossing) == 4, crossing


@pytest.mark.parametrize("tensors, message", [
    (lambda: [tf.zeros([2]), tf.zeros([2], tf.int64)], "one dtype"),
    (lambda: [tf.compat.v1.placeholder(tf.float32, None)], "but the first are known"),
    (lambda: [tf.compat.v1.placeholder(tf.float32, [3, None])], "but the first are known"),
    (lambda: [tf.constant(1.0)], "but the first are known"),
])
def test_mixed_dtypes_and_unknown_ranks_are_refused(tensors, message):
    with tf.Graph().as_default():
        with pytest.raises(ValueError, match=message):
            move_together(tensors(), PS)


@pytest.mark.parametrize("device, expected", [
    (PS, True), ("/job:ps/task:0", True), ("", False), ("/job:worker/task:0/device:CPU:0", False),
    ("/device:CPU:0", False), ("/job:localhost/replica:0/task:0/device:CPU:0", False)])
def test_on_parameter_server(device, expected):
    assert on_parameter_server(device) is expected
