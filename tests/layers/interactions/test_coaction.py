import numpy as np
import pytest

from deeprec_lite.compat import tf
from deeprec_lite.layers.interactions.coaction import CoActionUnit
from tests.layers.layer_checks import (
    assert_batch_independent, assert_config_round_trip, assert_finite_gradients,
    assert_saved_model_reload)

RNG = np.random.RandomState(0)
B, T, D = 3, 4, 5
FEED = (RNG.normal(size=(B, T, D)) * 0.5).astype(np.float32)
MASK = np.array([[1, 1, 1, 0], [1, 0, 0, 0], [1, 1, 1, 1]], np.float32)


def induction(n):
    return (RNG.normal(size=(B, n)) * 0.3).astype(np.float32)


def reference(ind, feed, mask, hidden, orders, indep, bias):
    """Loop implementation following the DeepRec gen_coaction description."""
    out = np.zeros((ind.shape[0], orders * sum(hidden)), np.float64)
    for b in range(ind.shape[0]):
        pieces = []
        for c in range(orders):
            idx = c * (len(ind[b]) // orders) if indep else 0
            h = feed[b].astype(np.float64) ** (c + 1)
            din = feed.shape[-1]
            for k, dout in enumerate(hidden):
                w = ind[b, idx:idx + din * dout].reshape(din, dout)
                idx += din * dout
                h = h @ w
                if bias:
                    h = h + ind[b, idx:idx + dout]
                    idx += dout
                if k < len(hidden) - 1:
                    h = np.tanh(h)
                pieces.append((h * mask[b][:, None]).sum(0))
                din = dout
        out[b] = np.concatenate(pieces)
    return out


@pytest.mark.parametrize("indep", [False, True])
@pytest.mark.parametrize("bias", [False, True])
def test_matches_loop_reference(indep, bias):
    hidden, orders = (3, 2), 3
    n = CoActionUnit.induction_size(D, hidden, orders, indep, bias)
    ind = induction(n)
    layer = CoActionUnit(hidden_units=hidden, orders=orders, order_independent=indep, use_bias=bias)
    out = layer([ind, FEED, MASK]).numpy()
    assert out.shape == (B, orders * 5)
    np.testing.assert_allclose(out, reference(ind, FEED, MASK, hidden, orders, indep, bias),
                               rtol=1e-5, atol=1e-6)


def test_induction_size_reference_numbers():
    assert CoActionUnit.induction_size(16, (8, 4), 3) == 160
    assert CoActionUnit.induction_size(16, (8, 4), 3, order_independent=True) == 480
    assert CoActionUnit.induction_size(16, (8, 4), 3, use_bias=True) == 172


def test_identity_micro_mlp_returns_the_feed_embedding():
    layer = CoActionUnit(hidden_units=(D,), orders=1)
    ind = np.tile(np.eye(D, dtype=np.float32).ravel(), (B, 1))
    np.testing.assert_allclose(layer([ind, FEED[:, 0]]), FEED[:, 0], rtol=1e-6)
    np.testing.assert_allclose(layer([ind, FEED, MASK]), (FEED * MASK[..., None]).sum(1),
                               rtol=1e-5, atol=1e-6)


def test_zero_mask_gives_zero():
    layer = CoActionUnit(hidden_units=(3, 2), orders=2)
    ind = induction(CoActionUnit.induction_size(D, (3, 2), 2))
    np.testing.assert_array_equal(layer([ind, FEED, np.zeros((B, T), np.float32)]), 0.0)
    np.testing.assert_array_equal(layer([ind, FEED, np.zeros((B, T), bool)]), 0.0)


def test_order_two_is_order_one_on_squared_inputs():
    ind = induction(CoActionUnit.induction_size(D, (3, 2), 2))
    two = CoActionUnit(hidden_units=(3, 2), orders=2)([ind, FEED, MASK]).numpy()
    one = CoActionUnit(hidden_units=(3, 2), orders=1)
    np.testing.assert_allclose(two[:, :5], one([ind, FEED, MASK]), rtol=1e-6)
    np.testing.assert_allclose(two[:, 5:], one([ind, FEED ** 2, MASK]), rtol=1e-5, atol=1e-7)


def test_wrong_induction_size_raises():
    with pytest.raises(ValueError, match="induction_size"):
        CoActionUnit(hidden_units=(3, 2))([induction(7), FEED])


@pytest.mark.parametrize("mask_shape, match", [
    ((B, T, 1), "mask must be \\(batch, T\\) with the feed's T=4"),
    ((B, 1), "mask must be \\(batch, T\\) with the feed's T=4"),
    ((B,), "mask must be"), ((1, T), "same batch size")])
def test_mask_of_another_shape_raises(mask_shape, match):
    layer = CoActionUnit(hidden_units=(3, 2), orders=1)
    mask = np.ones(mask_shape, np.float32)
    with pytest.raises(ValueError, match=match):
        layer([induction(layer.induction_size(D, (3, 2), 1)), FEED, mask])


def test_every_call_checks_the_batch_sizes():
    layer = CoActionUnit(hidden_units=(3, 2), orders=1)
    n = layer.induction_size(D, (3, 2), 1)
    assert layer([induction(n), FEED]).shape == (B, 5)
    with pytest.raises(ValueError, match="same batch size"):
        layer([induction(n)[:1], FEED])


@pytest.mark.parametrize("kw", [dict(hidden_units=()), dict(hidden_units=(3, -1)),
                                dict(orders=0), dict(hidden_units=4)])
def test_bad_arguments_raise_value_error_naming_them(kw):
    with pytest.raises(ValueError, match=next(iter(kw))):
        CoActionUnit(**kw)


def test_generic_layer_properties(tmp_path):
    n = CoActionUnit.induction_size(D, (3, 2), 2, order_independent=True)
    inputs = [tf.constant(induction(n)), tf.constant(FEED), tf.constant(MASK)]
    layer = CoActionUnit(hidden_units=(3, 2), orders=2, order_independent=True)
    assert_batch_independent(layer, inputs)
    assert_config_round_trip(layer, inputs)
    assert_finite_gradients(layer, inputs)
    assert_saved_model_reload(CoActionUnit(hidden_units=(3, 2), orders=2,
                                           order_independent=True), inputs, tmp_path)
