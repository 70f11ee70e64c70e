import numpy as np
import pytest

from deeprec_lite.compat import tf
from deeprec_lite.layers.interactions.eulernet import EulerNet
from tests.layers.layer_checks import (
    assert_batch_independent, assert_config_round_trip, assert_finite_gradients,
    assert_saved_model_reload)

RNG = np.random.RandomState(0)
X = RNG.normal(size=(4, 3, 2)).astype(np.float32)


def zero_implicit_and_biases(layer):
    for group in (layer.implicit_kernels, layer.implicit_biases, layer.bias_lambda,
                  layer.bias_theta):
        for w in group:
            w.assign(tf.zeros_like(w))


def one_plus_i_layer(orders):
    """Two fields, D = 1, embedding pi/4 with modulus sqrt(2): z1 = z2 = 1 + i."""
    layer = EulerNet(shape=(1,), layer_norm=False, return_complex=True)
    e = np.full((1, 2, 1), np.pi / 4, np.float32)
    layer(e)
    layer.mu.assign(np.full((1, 2, 1), np.sqrt(2.0), np.float32))
    zero_implicit_and_biases(layer)
    layer.orders[0].assign(np.array(orders, np.float32).reshape(2, 1))
    real, imag = layer(e)
    return float(real.numpy().ravel()[0]), float(imag.numpy().ravel()[0])


def test_orders_one_one_multiply_the_complex_numbers():
    np.testing.assert_allclose(one_plus_i_layer([1.0, 1.0]), (0.0, 2.0), atol=1e-6)  # (1+i)^2 = 2i


def test_order_one_half_is_the_square_root():
    np.testing.assert_allclose(one_plus_i_layer([0.5, 0.0]), (1.0987, 0.4551), atol=1e-4)


def test_identity_orders_with_zero_implicit_part_reproduce_the_input():
    layer = EulerNet(shape=(3,), layer_norm=False, return_complex=True)
    layer(X)
    zero_implicit_and_biases(layer)
    np.testing.assert_array_equal(layer.orders[0].numpy(), np.eye(3))  # reference init
    real, imag = layer(X)
    np.testing.assert_allclose(real, np.cos(X), atol=2e-6)
    np.testing.assert_allclose(imag, np.sin(X), atol=2e-6)


def layer_norm(x, gamma, beta, eps):
    mean = x.mean(-1, keepdims=True)
    var = x.var(-1, keepdims=True)
    return gamma * (x - mean) / np.sqrt(var + eps) + beta


def test_matches_numpy_reference_two_layers_with_layer_norm():
    layer = EulerNet(shape=(4, 2), layer_norm=True, kernel_initializer="random_normal")
    layer(X)
    for w in layer.bias_lambda + layer.bias_theta + layer.implicit_biases:
        w.assign(RNG.normal(scale=0.1, size=w.shape).astype(np.float32))
    for norm in layer.norms_real + layer.norms_imag:
        norm.set_weights([RNG.normal(1.0, 0.1, size=2).astype(np.float32),
                          RNG.normal(0.0, 0.1, size=2).astype(np.float32)])
    r, p = layer.mu.numpy() * np.cos(X), layer.mu.numpy() * np.sin(X)
    for i in range(2):
        lam = 0.5 * np.log(r ** 2 + p ** 2 + 1e-8)
        theta = np.arctan2(p, r)
        a = layer.orders[i].numpy()
        lam2 = np.einsum("bfd,fo->bod", lam, a) + layer.bias_lambda[i].numpy()
        theta2 = np.einsum("bfd,fo->bod", theta, a) + layer.bias_theta[i].numpy()
        k, b = layer.implicit_kernels[i].numpy(), layer.implicit_biases[i].numpy()
        im_r = np.maximum(r.reshape(4, -1) @ k + b, 0).reshape(4, -1, 2)
        im_p = np.maximum(p.reshape(4, -1) @ k + b, 0).reshape(4, -1, 2)
        r = np.exp(lam2) * np.cos(theta2) + im_r
        p = np.exp(lam2) * np.sin(theta2) + im_p
        nr, ni = layer.norms_real[i], layer.norms_imag[i]
        r = layer_norm(r, *nr.get_weights(), nr.epsilon)
        p = layer_norm(p, *ni.get_weights(), ni.epsilon)
    w, b = layer.readout_kernel.numpy(), layer.readout_bias.numpy()
    expected = r.reshape(4, -1) @ w + b + p.reshape(4, -1) @ w + b
    np.testing.assert_allclose(layer(X), expected, rtol=1e-4, atol=1e-5)


def test_non_square_orders_start_as_near_one_hot_columns():
    tf.keras.utils.set_random_seed(0)  # softmax(randn / 0.01): near one-hot unless two draws tie
    layer = EulerNet(shape=(5,))
    layer(X)
    a = layer.orders[0].numpy()
    np.testing.assert_allclose(a.sum(0), 1.0, rtol=1e-5)
    assert np.all(a.max(0) > 0.9)


def test_gradients_are_finite_at_the_origin():
    layer = EulerNet(shape=(2,), layer_norm=False)
    layer(X)
    layer.mu.assign(tf.zeros_like(layer.mu))  # r = p = 0 everywhere
    assert_finite_gradients(layer, tf.constant(X))


def test_mixed_precision_computes_in_float32():
    full = EulerNet(shape=(3,))
    full(X)
    half = EulerNet(shape=(3,), dtype="mixed_float16")
    half(X)
    half.set_weights(full.get_weights())
    out = half(X)
    assert out.dtype == tf.float16
    np.testing.assert_allclose(out.numpy().astype(np.float32), full(X), rtol=2e-3, atol=2e-3)


@pytest.mark.parametrize("kw", [dict(shape=()), dict(shape=(3, 0)), dict(shape=3),
                                dict(explicit_dropout=1.0), dict(implicit_dropout=-0.5)])
def test_bad_arguments_raise_value_error_naming_them(kw):
    with pytest.raises(ValueError, match=next(iter(kw))):
        EulerNet(**kw)


def test_generic_layer_properties(tmp_path):
    x = tf.constant(X)
    for kw in (dict(shape=(3, 2)), dict(shape=(2,), return_complex=True, layer_norm=False)):
        layer = EulerNet(**kw)
        assert_batch_independent(layer, x)
        assert_config_round_trip(layer, x)
        assert_finite_gradients(layer, x)
    assert_saved_model_reload(EulerNet(shape=(3, 2), explicit_dropout=0.1), x, tmp_path)
