import numpy as np
import pytest

from deeprec_lite.compat import tf
from deeprec_lite.layers.interactions.rfm import RFM, rotation_scores
from tests.layers.layer_checks import (
    assert_batch_independent, assert_config_round_trip, assert_finite_gradients,
    assert_saved_model_reload)

RNG = np.random.RandomState(0)
X = RNG.uniform(-np.pi, np.pi, size=(3, 4, 5)).astype(np.float32)


def sigmoid(z):
    return 1.0 / (1.0 + np.exp(-z))


def test_scores_equal_angles_and_zero_weight_give_one_half():
    q = RNG.normal(size=(2, 3, 1, 4)).astype(np.float32)
    np.testing.assert_allclose(rotation_scores(q, q, np.zeros(4, np.float32)), 0.5)


def test_scores_of_equal_angles_are_sigmoid_of_the_weight_sum():
    w = np.array([0.3, -1.2, 0.5, 0.1], np.float32)
    q = RNG.normal(size=(2, 3, 2, 4)).astype(np.float32)
    s = rotation_scores(q, q, w).numpy()  # (B, H, F, F)
    for f in range(3):
        np.testing.assert_allclose(s[:, :, f, f], sigmoid(w.sum()), rtol=1e-5)
    same = np.repeat(q[:, :1], 3, axis=1)  # all fields share one angle vector
    np.testing.assert_allclose(rotation_scores(same, same, w), sigmoid(w.sum()), rtol=1e-5)


def test_scores_match_cosine_of_differences_and_are_rotation_invariant():
    w = RNG.normal(size=4).astype(np.float32)
    q = RNG.normal(size=(2, 3, 2, 4)).astype(np.float32)
    k = RNG.normal(size=(2, 3, 2, 4)).astype(np.float32)
    qh, kh = q.transpose(0, 2, 1, 3), k.transpose(0, 2, 1, 3)  # (B, H, F, c)
    diff = qh[:, :, :, None, :] - kh[:, :, None, :, :]  # q_i - k_j
    expected = sigmoid(np.einsum("bhijc,c->bhij", np.cos(diff), w))
    s = rotation_scores(q, k, w).numpy()
    np.testing.assert_allclose(s, expected, rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(rotation_scores(q + 0.7, k + 0.7, w), s, rtol=1e-5, atol=1e-6)
    assert not np.allclose(rotation_scores(q + 0.7, k, w), s)


def layer_norm(x, gamma, beta, eps=1e-5):
    return gamma * (x - x.mean(-1, keepdims=True)) / np.sqrt(x.var(-1, keepdims=True) + eps) + beta


def numpy_rfm(layer, x):
    b, f, _ = x.shape
    h = layer.num_heads
    theta = x
    for i in range(layer.num_attention_layers):
        proj = [np.einsum("bfd,fdw->bfw", theta, w[i].numpy()).reshape(b, f, h, -1)
                for w in (layer.sar_query, layer.sar_key, layer.sar_value)]
        q, k, v = proj
        w = layer.sar_rotation_weight[i].numpy()
        s = sigmoid(np.einsum("bihc,bjhc,c->bhij", np.cos(q), np.cos(k), w)
                    + np.einsum("bihc,bjhc,c->bhij", np.sin(q), np.sin(k), w))
        out = np.einsum("bhij,bjhc->bihc", s, v).reshape(b, f, -1)
        theta = layer_norm(out + theta @ layer.sar_residual[i].numpy(),
                           *layer.sar_norms[i].get_weights())
    real, imag = np.cos(theta), np.sin(theta)
    if layer.first_order_residual:
        kp, bp = layer.projection.get_weights()
        pr = x @ kp + bp
        real = layer_norm(real + np.cos(pr), *layer.residual_norms[0].get_weights())
        imag = layer_norm(imag + np.sin(pr), *layer.residual_norms[1].get_weights())
    real, imag = real.reshape(b, -1), imag.reshape(b, -1)
    g = layer.group_size
    for dense, nr, ni in zip(layer.amp_dense, layer.amp_norms_real, layer.amp_norms_imag):
        kd, bd = dense.get_weights()
        real = np.maximum(real @ kd + bd, 0).reshape(b, -1, g)
        imag = np.maximum(imag @ kd + bd, 0).reshape(b, -1, g)
        real = layer_norm(real, *nr.get_weights()).reshape(b, -1)
        imag = layer_norm(imag, *ni.get_weights()).reshape(b, -1)
    kr, br = layer.readout.get_weights()
    return real @ kr + br + imag @ kr + br


@pytest.mark.parametrize("kw", [
    dict(hidden_units=6, num_heads=2, num_attention_layers=2, amp_hidden_units=(8,), group_size=4),
    dict(hidden_units=4, first_order_residual=False),
])
def test_matches_numpy_reference(kw):
    layer = RFM(**kw)
    layer(X)
    norms = layer.sar_norms + layer.residual_norms + layer.amp_norms_real + layer.amp_norms_imag
    for norm in norms:
        norm.set_weights([RNG.normal(1.0, 0.2, size=w.shape).astype(np.float32) if j == 0 else
                          RNG.normal(0.0, 0.2, size=w.shape).astype(np.float32)
                          for j, w in enumerate(norm.get_weights())])
    out = layer(X).numpy()
    assert out.shape == (3, 1)
    np.testing.assert_allclose(out, numpy_rfm(layer, X), rtol=1e-4, atol=1e-4)


def test_attention_dropout_is_active_only_in_training():
    layer = RFM(hidden_units=4, attention_dropout=0.5, amp_hidden_units=(4,), amp_dropout=0.5)
    np.testing.assert_array_equal(layer(X, training=False), layer(X, training=False))
    assert not np.allclose(layer(X, training=True), layer(X, training=False))


@pytest.mark.parametrize("kw", [
    dict(hidden_units=0), dict(num_attention_layers=0), dict(num_heads=3),
    dict(amp_hidden_units=(6,), group_size=4), dict(amp_hidden_units=5),
    dict(attention_dropout=1.0), dict(amp_dropout=2.0), dict(group_size=0),
])
def test_bad_arguments_raise_value_error_naming_them(kw):
    args = dict(hidden_units=4)
    args.update(kw)
    with pytest.raises(ValueError, match=next(iter(kw))):
        RFM(**args)


def test_generic_layer_properties(tmp_path):
    x = tf.constant(X)
    kw = dict(hidden_units=4, num_heads=2, amp_hidden_units=(4,), group_size=2)
    layer = RFM(**kw)
    assert_batch_independent(layer, x)
    assert_config_round_trip(layer, x)
    assert_finite_gradients(layer, x)
    assert_saved_model_reload(RFM(**kw), x, tmp_path)
