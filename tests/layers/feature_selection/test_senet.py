import numpy as np
import pytest

from deeprec_lite.compat import tf
from deeprec_lite.layers.feature_selection.senet import SENET
from tests.layers.layer_checks import (
    assert_batch_independent, assert_config_round_trip, assert_finite_gradients,
    assert_saved_model_reload)


def reference(e, w1, w2, squeeze="mean", excitation=lambda t: np.maximum(t, 0.0)):
    z = e.mean(-1) if squeeze == "mean" else e.max(-1)
    a = excitation(np.maximum(z @ w1, 0.0) @ w2)
    return e * a[:, :, None]


@pytest.mark.parametrize("squeeze", ["mean", "max"])
@pytest.mark.parametrize("excitation", ["relu", "sigmoid"])
def test_matches_numpy_reference(squeeze, excitation):
    e = np.random.default_rng(0).normal(size=(3, 7, 4)).astype(np.float32)
    layer = SENET(reduction_ratio=3, squeeze=squeeze, excitation_activation=excitation)
    out = layer(e).numpy()
    assert layer.squeeze_kernel.shape == (7, 2) and layer.excitation_kernel.shape == (2, 7)
    if excitation == "sigmoid":
        act = lambda t: 1 / (1 + np.exp(-t))  # noqa: E731
    else:
        act = lambda t: np.maximum(t, 0)  # noqa: E731
    ref = reference(e, layer.squeeze_kernel.numpy(), layer.excitation_kernel.numpy(), squeeze, act)
    np.testing.assert_allclose(out, ref, rtol=1e-5, atol=1e-6)


def test_sigmoid_excitation_with_zero_weights_halves_the_input():
    e = np.random.default_rng(1).normal(size=(2, 4, 3)).astype(np.float32)
    layer = SENET(excitation_activation="sigmoid", kernel_initializer="zeros")
    np.testing.assert_allclose(layer(e).numpy(), 0.5 * e, rtol=1e-6)


def test_reduced_size_is_at_least_one():
    layer = SENET(reduction_ratio=10)
    layer.build((None, 3, 2))
    assert layer.squeeze_kernel.shape == (3, 1)


def test_field_weights_are_constant_along_the_embedding_dim():
    e = np.random.default_rng(2).uniform(0.5, 1.5, size=(2, 5, 4)).astype(np.float32)
    ratio = SENET(excitation_activation="sigmoid")(e).numpy() / e
    np.testing.assert_allclose(ratio, np.repeat(ratio[:, :, :1], 4, axis=2), rtol=1e-5)


def test_bad_arguments():
    for bad in (0, -1.5, "3", float("inf"), float("nan")):
        with pytest.raises(ValueError, match=f"reduction_ratio={bad!r}"):
            SENET(reduction_ratio=bad)
    with pytest.raises(ValueError, match="squeeze='sum'"):
        SENET(squeeze="sum")
    with pytest.raises(ValueError, match="input_shape"):
        SENET()(np.zeros((2, 6), np.float32))


@pytest.mark.parametrize("squeeze", ["mean", "max"])
def test_generic_properties(squeeze, tmp_path):
    x = tf.constant(np.random.default_rng(3).normal(size=(3, 4, 2)).astype(np.float32))
    layer = SENET(reduction_ratio=2, squeeze=squeeze, excitation_activation="sigmoid",
                  kernel_regularizer="l2")
    assert_batch_independent(layer, x)
    assert_config_round_trip(layer, x)
    assert_finite_gradients(layer, x)
    assert_saved_model_reload(SENET(reduction_ratio=2, squeeze=squeeze), x, tmp_path)
