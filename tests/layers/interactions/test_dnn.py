import numpy as np
import pytest

from deeprec_lite.compat import tf
from deeprec_lite.layers.interactions.dnn import DNN
from tests.layers.layer_checks import (
    assert_batch_independent, assert_config_round_trip, assert_finite_gradients,
    assert_saved_model_reload)


def reference(x, layer, act=lambda t: np.maximum(t, 0.0)):
    """Inference-mode forward pass from the raw weights (BN with its moving statistics)."""
    for i, dense in enumerate(layer.dense_layers):
        kernel, bias = (w.numpy() for w in dense.weights)
        x = x @ kernel + bias
        if layer.use_batch_norm:
            bn = layer.batch_norm_layers[i]
            x = (x - bn.moving_mean.numpy()) / np.sqrt(bn.moving_variance.numpy() + bn.epsilon)
            x = x * bn.gamma.numpy() + bn.beta.numpy()
        x = act(x)
    return x


@pytest.mark.parametrize("activation", ["relu", "tanh"])
def test_matches_numpy_reference(activation):
    x = np.random.default_rng(0).normal(size=(4, 5)).astype(np.float32)
    layer = DNN(hidden_units=[6, 3], activation=activation, bias_initializer="random_normal")
    out = layer(x, training=False).numpy()
    assert out.shape == (4, 3) and len(layer.trainable_weights) == 4
    act = np.tanh if activation == "tanh" else (lambda t: np.maximum(t, 0.0))
    np.testing.assert_allclose(out, reference(x, layer, act), rtol=1e-5, atol=1e-6)


def test_batch_norm_uses_moving_statistics_at_inference():
    rng = np.random.default_rng(1)
    x = rng.normal(size=(4, 5)).astype(np.float32)
    layer = DNN(hidden_units=[6, 3], use_batch_norm=True)
    layer.build((None, 5))
    for bn in layer.batch_norm_layers:
        n = bn.gamma.shape[0]
        bn.moving_mean.assign(rng.normal(size=n).astype(np.float32))
        bn.moving_variance.assign(rng.uniform(0.5, 2.0, size=n).astype(np.float32))
        bn.gamma.assign(rng.uniform(0.5, 2.0, size=n).astype(np.float32))
        bn.beta.assign(rng.normal(size=n).astype(np.float32))
    np.testing.assert_allclose(layer(x, training=False).numpy(), reference(x, layer), rtol=1e-5,
                               atol=1e-5)
    train = layer(x, training=True).numpy()  # batch statistics: each unit is centred per batch
    assert not np.allclose(train, layer(x, training=False).numpy())


def test_dropout_only_in_training():
    layer = DNN(hidden_units=[200], activation="linear", dropout=0.5, kernel_initializer="ones")
    x = np.ones((1, 3), np.float32)
    np.testing.assert_array_equal(layer(x, training=False).numpy(), np.full((1, 200), 3.0))
    values = layer(x, training=True).numpy()
    assert set(np.unique(values)) == {0.0, 6.0}  # dropped, or kept and scaled by 1 / (1 - 0.5)


def test_l2_penalty():
    layer = DNN(hidden_units=[4, 2], l2=0.01)
    layer.build((None, 3))
    kernels = [d.kernel.numpy() for d in layer.dense_layers]
    expected = 0.01 * sum(float(np.sum(k ** 2)) for k in kernels)
    np.testing.assert_allclose(float(tf.add_n(layer.losses)), expected, rtol=1e-5)
    assert not DNN(hidden_units=[4]).losses


def test_hidden_layers_start_from_different_weights():
    layer = DNN(hidden_units=[4, 4])
    layer.build((None, 4))
    first, second = (d.kernel.numpy() for d in layer.dense_layers)
    assert not np.allclose(first, second)


def test_bad_arguments():
    for name, bad in [("hidden_units", []), ("hidden_units", [8, 0]), ("hidden_units", 8),
                      ("dropout", 1.0), ("dropout", -0.1), ("l2", -1e-5)]:
        with pytest.raises(ValueError, match=name):
            DNN(**{name: bad})
    with pytest.raises(ValueError, match="dropout=1.0"):
        DNN(dropout=1.0)


@pytest.mark.parametrize("kwargs", [{}, {"use_batch_norm": True, "dropout": 0.2, "l2": 1e-4}])
def test_generic_properties(kwargs, tmp_path):
    x = tf.constant(np.random.default_rng(2).normal(size=(3, 4)).astype(np.float32))
    layer = DNN(hidden_units=[5, 2], activation="tanh", **kwargs)
    assert_batch_independent(layer, x)
    assert_config_round_trip(layer, x)
    assert_finite_gradients(layer, x)
    assert_saved_model_reload(DNN(hidden_units=[5, 2], **kwargs), x, tmp_path)
