import numpy as np
import pytest

from deeprec_lite.compat import tf
from deeprec_lite.layers.interactions.cross_net_v2 import CrossNetV2
from deeprec_lite.layers.interactions.gated_cross_net import GatedCrossNet
from tests.layers.layer_checks import (
    assert_batch_independent, assert_config_round_trip, assert_finite_gradients,
    assert_saved_model_reload)

X0 = np.array([[0.1, 0.2, 0.3]], np.float32)
X = np.array([[0.4, 0.5, 0.6]], np.float32)


def reference(x0, x, layer):
    for wc, wg, b in zip(layer.kernels, layer.gate_kernels, layer.biases):
        gate = 1.0 / (1.0 + np.exp(-(x @ wg.numpy())))
        x = x0 * (x @ wc.numpy() + b.numpy()) * gate + x
    return x


def built(num_layers=1, dim=3, **kwargs):
    layer = GatedCrossNet(num_layers=num_layers, **kwargs)
    layer.build((None, dim))
    return layer


def test_matches_numpy_reference():
    rng = np.random.default_rng(0)
    x0, x = rng.normal(size=(2, 4, 5)).astype(np.float32)
    layer = GatedCrossNet(num_layers=3)
    np.testing.assert_allclose(layer([x0, x]).numpy(), reference(x0, x, layer),
                               rtol=1e-5, atol=1e-5)
    np.testing.assert_allclose(layer(x0).numpy(), reference(x0, x0, layer), rtol=1e-5, atol=1e-5)


def test_default_bias_is_uniform_0_1_and_layers_differ():
    layer = built(num_layers=2, dim=200)
    b0, b1 = (b.numpy() for b in layer.biases)
    assert b0.min() >= 0.0 and b0.max() < 1.0 and b0.std() > 0.2
    assert not np.allclose(b0, b1)
    assert not np.allclose(layer.kernels[0].numpy(), layer.gate_kernels[0].numpy())


def test_zero_content_kernel_and_bias_is_identity():
    x0 = np.random.default_rng(1).normal(size=(3, 4)).astype(np.float32)
    layer = GatedCrossNet(num_layers=2, kernel_initializer="zeros", bias_initializer="zeros")
    np.testing.assert_array_equal(layer(x0).numpy(), x0)


def test_zero_gate_kernel_halves_the_cross_term():
    layer = built(bias_initializer="zeros")
    layer.kernels[0].assign(tf.ones((3, 3)))
    layer.gate_kernels[0].assign(tf.zeros((3, 3)))
    np.testing.assert_allclose(layer([X0, X]).numpy(), [[0.475, 0.65, 0.825]], rtol=1e-6)


def test_saturated_gate_recovers_cross_net_v2():
    rng = np.random.default_rng(2)
    # positive inputs, so x @ (100 * ones) >> 0 and the gate is 1 in float32
    x0, x = rng.uniform(0.5, 1.0, size=(2, 3, 4)).astype(np.float32)
    gdcn = built(dim=4)
    gdcn.gate_kernels[0].assign(100.0 * tf.ones((4, 4)))
    v2 = CrossNetV2(num_layers=1)
    v2.build((None, 4))
    v2.kernels[0].assign(gdcn.kernels[0])
    v2.biases[0].assign(gdcn.biases[0])
    np.testing.assert_allclose(gdcn([x0, x]).numpy(), v2([x0, x]).numpy(), rtol=1e-6)


def test_bad_arguments():
    for bad in (0, -3, "2"):
        with pytest.raises(ValueError, match=f"num_layers={bad!r}"):
            GatedCrossNet(num_layers=bad)
    with pytest.raises(ValueError, match="input_shape"):
        GatedCrossNet()(np.zeros((2, 3, 2), np.float32))


def test_generic_properties(tmp_path):
    x0 = tf.constant(np.random.default_rng(3).normal(size=(3, 4)).astype(np.float32))
    layer = GatedCrossNet(num_layers=2, kernel_regularizer="l2")
    assert_batch_independent(layer, x0)
    assert_config_round_trip(layer, x0)
    assert_finite_gradients(layer, x0)
    assert_saved_model_reload(GatedCrossNet(num_layers=2), x0, tmp_path)
