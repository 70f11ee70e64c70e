import numpy as np
import pytest

from deeprec_lite.compat import tf
from deeprec_lite.layers.interactions.cross_net_v2 import CrossNetV2
from tests.layers.layer_checks import (
    assert_batch_independent, assert_config_round_trip, assert_finite_gradients,
    assert_saved_model_reload)

X0 = np.array([[0.1, 0.2, 0.3]], np.float32)
X = np.array([[0.4, 0.5, 0.6]], np.float32)


def reference(x0, x, kernels, biases, down=None, diag_scale=0.0, act=None):
    for i, k in enumerate(kernels):
        w = k if down is None else down[i] @ k  # (d, d) in x @ w layout
        y = x @ w + (biases[i] if biases else 0.0)
        if act is not None:
            y = act(y)
        x = x0 * (y + diag_scale * x) + x
    return x


def weights_of(layer):
    down = [k.numpy() for k in layer.down_kernels] or None
    return [k.numpy() for k in layer.kernels], [b.numpy() for b in layer.biases], down


def ones_layer(**kwargs):
    layer = CrossNetV2(num_layers=1, kernel_initializer="ones", **kwargs)
    layer.build([(None, 3), (None, 3)])
    return layer


def test_keras_rs_values_full_rank():
    np.testing.assert_allclose(ones_layer()([X0, X]).numpy(), [[0.55, 0.80, 1.05]], rtol=1e-6)


def test_keras_rs_values_diag_scale():
    np.testing.assert_allclose(ones_layer(diag_scale=1.0)([X0, X]).numpy(), [[0.59, 0.90, 1.23]],
                               rtol=1e-6)


def test_keras_rs_values_low_rank_one():
    layer = ones_layer(projection_dim=1)
    assert layer.down_kernels[0].shape == (3, 1) and layer.kernels[0].shape == (1, 3)
    np.testing.assert_allclose(layer([X0, X]).numpy(), [[0.55, 0.80, 1.05]], rtol=1e-6)


def test_zero_pre_activation_gives_x():
    layer = CrossNetV2(num_layers=2, pre_activation=lambda t: tf.zeros_like(t),
                       bias_initializer="ones")
    np.testing.assert_array_equal(layer([X0, X]).numpy(), X)


def test_zero_weights_are_identity():
    x0 = np.random.default_rng(0).normal(size=(3, 4)).astype(np.float32)
    np.testing.assert_array_equal(CrossNetV2(kernel_initializer="zeros")(x0).numpy(), x0)


@pytest.mark.parametrize("kwargs", [
    {}, {"projection_dim": 2}, {"diag_scale": 0.5, "pre_activation": "tanh"}, {"use_bias": False}])
def test_matches_numpy_reference(kwargs):
    rng = np.random.default_rng(1)
    x0, x = rng.normal(size=(2, 4, 5)).astype(np.float32)
    layer = CrossNetV2(num_layers=3, bias_initializer="random_normal", **kwargs)
    out = layer([x0, x]).numpy()
    kernels, biases, down = weights_of(layer)
    act = np.tanh if kwargs.get("pre_activation") == "tanh" else None
    ref = reference(x0, x, kernels, biases, down, kwargs.get("diag_scale", 0.0), act)
    np.testing.assert_allclose(out, ref, rtol=1e-5, atol=1e-5)
    assert len(layer.trainable_weights) == 3 * (1 + ("projection_dim" in kwargs)
                                                + kwargs.get("use_bias", True))


def test_layers_start_from_different_weights():
    layer = CrossNetV2(num_layers=2)
    layer.build((None, 4))
    assert not np.allclose(layer.kernels[0].numpy(), layer.kernels[1].numpy())


def test_bad_arguments():
    for name, bad in [("num_layers", 0), ("num_layers", -2), ("projection_dim", 0),
                      ("projection_dim", 2.5), ("diag_scale", -0.1), ("diag_scale", "big")]:
        with pytest.raises(ValueError, match=f"{name}={bad!r}"):
            CrossNetV2(**{name: bad})
    with pytest.raises(ValueError, match="input_shape"):
        CrossNetV2()(np.zeros((2, 3, 2), np.float32))


@pytest.mark.parametrize(
    "kwargs", [{}, {"projection_dim": 2, "diag_scale": 0.5, "pre_activation": "relu"}])
def test_generic_properties(kwargs, tmp_path):
    x0 = tf.constant(np.random.default_rng(2).normal(size=(3, 4)).astype(np.float32))
    layer = CrossNetV2(num_layers=2, bias_initializer="random_normal", kernel_regularizer="l2",
                       **kwargs)
    assert_batch_independent(layer, x0)
    assert_config_round_trip(layer, x0)
    assert_finite_gradients(layer, x0)
    assert_saved_model_reload(CrossNetV2(num_layers=2, **kwargs), x0, tmp_path)
