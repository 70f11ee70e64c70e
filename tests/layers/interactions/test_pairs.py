import numpy as np
import pytest

from deeprec_lite.compat import keras
from deeprec_lite.layers._common import field_shape, fresh_initializer
from deeprec_lite.layers.interactions._pairs import (cross_input_dim, gather_pairs, pair_indices,
                                                     split_cross_inputs)


def test_pair_indices_order_and_dtype():
    rows, cols = pair_indices(4)
    assert rows.dtype == np.int32 and cols.dtype == np.int32
    assert list(zip(rows, cols)) == [(0, 1), (0, 2), (0, 3), (1, 2), (1, 3), (2, 3)]
    assert len(pair_indices(1)[0]) == 0


def test_gather_pairs():
    e = np.arange(3 * 2, dtype=np.float32).reshape(1, 3, 2)
    left, right = gather_pairs(e, 3)
    np.testing.assert_array_equal(left.numpy()[0], e[0, [0, 0, 1]])
    np.testing.assert_array_equal(right.numpy()[0], e[0, [1, 2, 2]])


def test_shape_checks():
    assert field_shape((None, 5, 3), "L") == (5, 3)
    for bad in [(None, 5), (None, None, 3), (None, 2, 3, 4)]:
        with pytest.raises(ValueError, match="L expects"):
            field_shape(bad, "L")
    assert cross_input_dim((None, 6), "L") == 6
    assert cross_input_dim([(None, 6), (None, 6)], "L") == 6
    with pytest.raises(ValueError, match="same width and batch size"):
        cross_input_dim([(None, 6), (None, 5)], "L")
    with pytest.raises(ValueError, match="3 inputs"):
        cross_input_dim([(None, 6)] * 3, "L")


def test_split_cross_inputs():
    assert split_cross_inputs("a") == ("a", "a")
    assert split_cross_inputs(["a"]) == ("a", "a")
    assert split_cross_inputs(["a", "b"]) == ("a", "b")


def test_fresh_initializer_gives_new_values():
    init = keras.initializers.get("glorot_uniform")
    a = fresh_initializer(init)((4, 4)).numpy()
    b = fresh_initializer(init)((4, 4)).numpy()
    assert not np.allclose(a, b)
    assert fresh_initializer(init).get_config() == init.get_config()
