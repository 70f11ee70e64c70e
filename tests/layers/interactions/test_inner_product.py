import numpy as np
import pytest

from deeprec_lite.compat import tf
from deeprec_lite.layers.interactions.inner_product import InnerProduct
from tests.layers.layer_checks import (
    assert_batch_independent, assert_config_round_trip, assert_finite_gradients,
    assert_saved_model_reload)

E3 = np.array([[[1., 2.], [3., 4.], [5., 6.]]], dtype=np.float32)


def brute_force_inner(e):
    b, f, _ = e.shape
    return np.stack([np.sum(e[:, i] * e[:, j], -1) for i in range(f) for j in range(i + 1, f)], 1)


def test_hand_computed_values_in_triu_order():
    np.testing.assert_allclose(InnerProduct()(E3).numpy(), [[11.0, 17.0, 39.0]])


def test_matches_brute_force():
    e = np.random.default_rng(0).normal(size=(3, 5, 4)).astype(np.float32)
    out = InnerProduct()(e).numpy()
    assert out.shape == (3, 10)
    np.testing.assert_allclose(out, brute_force_inner(e), rtol=1e-5, atol=1e-6)


def test_sum_is_fm():
    e = np.random.default_rng(1).normal(size=(2, 4, 3)).astype(np.float32)
    sum_all = np.einsum("bid,bjd->b", e, e)
    diag = np.einsum("bid,bid->b", e, e)
    np.testing.assert_allclose(InnerProduct()(e).numpy().sum(1), 0.5 * (sum_all - diag), rtol=1e-5)


def test_bad_input_rank():
    with pytest.raises(ValueError, match="input_shape"):
        InnerProduct()(np.zeros((2, 6), np.float32))


def test_rejects_other_field_count_after_build():
    layer = InnerProduct()
    layer(E3)
    with pytest.raises(ValueError, match="axis 1"):
        layer(np.zeros((1, 4, 2), np.float32))


def test_generic_properties(tmp_path):
    x = tf.constant(np.random.default_rng(2).normal(size=(3, 4, 2)).astype(np.float32))
    layer = InnerProduct()
    assert_batch_independent(layer, x)
    assert_config_round_trip(layer, x)
    assert_finite_gradients(layer, x)
    assert_saved_model_reload(InnerProduct(), x, tmp_path)
