import numpy as np
import pytest

from deeprec_lite.compat import tf
from deeprec_lite.layers.interactions.pin import PIN
from tests.layers.layer_checks import (
    assert_batch_independent, assert_config_round_trip, assert_finite_gradients,
    assert_saved_model_reload)


def reference(e, layer, act=lambda t: t):
    """Explicit loops: subspace piece s of field f is row f*h + s of X0."""
    b, f, d = e.shape
    h = layer.num_subspaces
    w = d // h
    x0 = np.zeros((b, f * h, w))
    for fi in range(f):
        for s in range(h):
            x0[:, fi * h + s] = e[:, fi, s * w:(s + 1) * w]
    x, outs = x0, [x0]
    for kernel in layer.kernels:
        k = kernel.numpy()
        mixed = np.zeros_like(x0)
        for o in range(f * h):
            for i in range(f * h):
                mixed[:, o] += k[i, o] * x0[:, i]
        mixed = act(mixed)
        x = x * (1.0 + mixed) if layer.residual else x * mixed
        outs.append(x)
    outs = [x] if layer.residual else outs
    return np.concatenate([t.reshape(b, f, d) for t in outs], axis=1)


def test_scalar_case():
    layer = PIN(num_layers=2, kernel_initializer="zeros")
    layer.build((None, 1, 1))
    for k in layer.kernels:
        k.assign([[0.5]])
    np.testing.assert_allclose(layer(np.array([[[2.0]]], np.float32)).numpy(), [[[8.0]]])


@pytest.mark.parametrize("subspaces", [1, 2, 4])
def test_zero_weights_are_identity(subspaces):
    e = np.random.default_rng(0).normal(size=(2, 3, 4)).astype(np.float32)
    layer = PIN(num_layers=3, num_subspaces=subspaces, kernel_initializer="zeros")
    np.testing.assert_array_equal(layer(e).numpy(), e)


@pytest.mark.parametrize("kwargs", [
    {"num_subspaces": 1}, {"num_subspaces": 2}, {"num_subspaces": 4, "activation": "tanh"},
    {"num_subspaces": 2, "residual": False}, {"num_subspaces": 1, "residual": False}])
def test_matches_loop_reference(kwargs):
    e = np.random.default_rng(1).normal(size=(2, 3, 4)).astype(np.float32)
    layer = PIN(num_layers=2, **kwargs)
    out = layer(e).numpy()
    act = np.tanh if kwargs.get("activation") else (lambda t: t)
    ref = reference(e, layer, act)
    assert out.shape == ((2, 3, 4) if kwargs.get("residual", True) else (2, 9, 4))
    assert layer.kernels[0].shape == (3 * kwargs["num_subspaces"],) * 2
    np.testing.assert_allclose(out, ref, rtol=1e-4, atol=1e-5)


def test_non_residual_blocks_are_homogeneous_of_degree_l_plus_one():
    e = np.random.default_rng(2).normal(size=(2, 3, 4)).astype(np.float32)
    layer = PIN(num_layers=2, num_subspaces=2, residual=False)
    out1, out2 = layer(e).numpy(), layer(2.0 * e).numpy()
    for l in range(3):
        block = slice(3 * l, 3 * (l + 1))
        np.testing.assert_allclose(out2[:, block], 2.0 ** (l + 1) * out1[:, block],
                                   rtol=1e-4, atol=1e-5)


def test_bad_arguments():
    with pytest.raises(ValueError, match="num_subspaces=3 with embedding_dim=4"):
        PIN(num_subspaces=3)(np.zeros((1, 2, 4), np.float32))
    for name, bad in [("num_layers", 0), ("num_subspaces", -2)]:
        with pytest.raises(ValueError, match=f"{name}={bad!r}"):
            PIN(**{name: bad})
    with pytest.raises(ValueError, match="input_shape"):
        PIN()(np.zeros((2, 6), np.float32))


@pytest.mark.parametrize("residual", [True, False])
def test_generic_properties(residual, tmp_path):
    x = tf.constant(np.random.default_rng(3).normal(size=(3, 3, 4)).astype(np.float32))
    kwargs = dict(num_layers=2, num_subspaces=2, residual=residual)
    layer = PIN(activation="relu", kernel_regularizer="l2", **kwargs)
    assert_batch_independent(layer, x)
    assert_config_round_trip(layer, x)
    assert_finite_gradients(layer, x)
    assert_saved_model_reload(PIN(**kwargs), x, tmp_path)
