import numpy as np
import pytest

from deeprec_lite.compat import tf
from deeprec_lite.layers.interactions.cross_net import CrossNet
from tests.layers.layer_checks import (
    assert_batch_independent, assert_config_round_trip, assert_finite_gradients,
    assert_saved_model_reload)


def reference(x0, x, kernels, biases):
    for w, b in zip(kernels, biases):
        x = x0 * (x @ w)[:, None] + b + x
    return x


def set_weights(layer, dim, kernels, biases):
    layer.build((None, dim))
    for var, value in zip(layer.kernels + layer.biases, list(kernels) + list(biases)):
        var.assign(np.asarray(value, np.float32))


def test_matches_numpy_reference():
    rng = np.random.default_rng(0)
    x0 = rng.normal(size=(4, 5)).astype(np.float32)
    layer = CrossNet(num_layers=3, bias_initializer="random_normal")
    out = layer(x0).numpy()
    ref = reference(x0, x0, [k.numpy() for k in layer.kernels], [b.numpy() for b in layer.biases])
    np.testing.assert_allclose(out, ref, rtol=1e-5, atol=1e-5)
    assert len(layer.trainable_weights) == 6 and out.shape == (4, 5)


def test_x0_and_x_inputs():
    rng = np.random.default_rng(1)
    x0, x = rng.normal(size=(2, 2, 3)).astype(np.float32)
    layer = CrossNet(num_layers=2, bias_initializer="random_normal")
    out = layer([x0, x]).numpy()
    ref = reference(x0, x, [k.numpy() for k in layer.kernels], [b.numpy() for b in layer.biases])
    np.testing.assert_allclose(out, ref, rtol=1e-5, atol=1e-6)


def test_layers_start_from_different_weights():
    layer = CrossNet(num_layers=3, bias_initializer="random_normal")
    layer.build((None, 6))
    values = [w.numpy() for w in layer.kernels + layer.biases]
    for i in range(len(values)):
        for j in range(i + 1, len(values)):
            assert not np.allclose(values[i], values[j])


def test_zero_weights_are_identity():
    x0 = np.random.default_rng(2).normal(size=(3, 4)).astype(np.float32)
    layer = CrossNet(num_layers=3, kernel_initializer="zeros")
    np.testing.assert_array_equal(layer(x0).numpy(), x0)


@pytest.mark.parametrize("num_layers,expected", [(1, [4.0, 8.0]), (2, [16.0, 32.0])])
def test_hand_computed_values(num_layers, expected):
    layer = CrossNet(num_layers=num_layers)
    set_weights(layer, 2, [[1.0, 1.0]] * num_layers, [[0.0, 0.0]] * num_layers)
    np.testing.assert_allclose(layer(np.array([[1.0, 2.0]], np.float32)).numpy(), [expected])


def test_zero_bias_output_is_scalar_multiple_of_x0():
    x0 = np.random.default_rng(3).uniform(0.5, 1.5, size=(3, 6)).astype(np.float32)
    layer = CrossNet(num_layers=3, kernel_initializer="random_normal")
    ratio = layer(x0).numpy() / x0
    np.testing.assert_allclose(ratio, np.repeat(ratio[:, :1], 6, axis=1), rtol=1e-5)
    assert not np.allclose(ratio, 1.0)


def test_bad_arguments():
    for bad in (0, -1, 1.5, True):
        with pytest.raises(ValueError, match=f"num_layers={bad!r}"):
            CrossNet(num_layers=bad)
    with pytest.raises(ValueError, match="input_shape"):
        CrossNet()(np.zeros((2, 3, 2), np.float32))
    with pytest.raises(ValueError, match="same width and batch size"):
        CrossNet()([np.zeros((2, 3), np.float32), np.zeros((2, 4), np.float32)])


@pytest.mark.parametrize("two_inputs", [False, True])
def test_generic_properties(two_inputs, tmp_path):
    rng = np.random.default_rng(4)
    x0 = tf.constant(rng.normal(size=(3, 4)).astype(np.float32))
    inputs = [x0, tf.constant(rng.normal(size=(3, 4)).astype(np.float32))] if two_inputs else x0
    layer = CrossNet(num_layers=2, bias_initializer="random_normal", kernel_regularizer="l2")
    assert_batch_independent(layer, inputs)
    assert_config_round_trip(layer, inputs)
    assert_finite_gradients(layer, inputs)
    assert_saved_model_reload(CrossNet(num_layers=2), inputs, tmp_path)


@pytest.mark.parametrize("name", ["CrossNet", "CrossNetV2", "CrossNetMix", "GatedCrossNet"])
def test_every_call_checks_its_shapes(name):
    from deeprec_lite import layers
    layer = getattr(layers, name)(1)
    z = lambda *shape: tf.zeros(shape)
    with pytest.raises(ValueError, match=f"{name}: x0 and x must have the same width and batch"):
        layer([z(1, 12), z(4, 12)])
    assert layer(z(2, 12)).shape == (2, 12)  # built for d = 12
    with pytest.raises(ValueError, match=f"{name}: x0 and x must have the same width and batch"):
        layer([z(4, 12), z(1, 12)])
    with pytest.raises(ValueError, match=f"{name} was built for inputs of width d=12"):
        layer(z(2, 8))
    with pytest.raises(ValueError, match=f"{name} expects inputs of shape \\(batch, d\\)"):
        layer(z(2, 3, 12))
