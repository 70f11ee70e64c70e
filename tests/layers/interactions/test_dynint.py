import numpy as np
import pytest

from deeprec_lite.compat import tf
from deeprec_lite.layers.interactions.dynint import DynInt
from tests.layers.layer_checks import (
    assert_batch_independent, assert_config_round_trip, assert_finite_gradients,
    assert_saved_model_reload)

RNG = np.random.RandomState(0)
X = (RNG.normal(size=(3, 3, 4)) * 0.5).astype(np.float32)  # B=3, F=3, D=4


def numpy_pin(e, kernels, h, activation=lambda z: z):
    """Reference PIN (xDeepInt): X_l = X_{l-1} * (1 + f(W_l X0)), field-major rows."""
    b, f, d = e.shape
    x0 = e.reshape(b, f * h, d // h).astype(np.float64)
    x = x0
    for w in kernels:
        x = x * (1.0 + activation(np.einsum("ij,bjk->bik", w, x0)))
    return x.reshape(b, f, d)


def numpy_dynamic(layer, e):
    """Independent per-sample reference of the three modes with explicit n x n weights."""
    b, f, d = e.shape
    h = layer.num_subspaces
    n, k = f * h, d // h
    x0 = e.reshape(b, n, k).astype(np.float64)
    ctx = e.reshape(b, -1).astype(np.float64)
    sig = lambda z: 1.0 / (1.0 + np.exp(-z))
    x = x0.copy()
    for l, w in enumerate(layer.pin_kernels):
        z = ctx
        ks, bs = layer.generator_kernels[l], layer.generator_biases[l]
        for j, (kern, bias) in enumerate(zip(ks, bs)):
            z = z @ kern.numpy() + bias.numpy()
            if j < len(ks) - 1:
                z = np.maximum(z, 0)
        w = w.numpy()
        for s in range(b):
            if layer.mode == "DA":
                g = sig(z[s]).reshape(n, -1)
                upd = g * np.tanh(w @ x0[s])
            elif layer.mode == "DGP":
                upd = np.tanh((w * sig(z[s]).reshape(n, n)) @ x0[s])
            else:
                uv = z[s].reshape(n, 2, layer.rank)
                upd = np.tanh((w + uv[:, 0] @ uv[:, 1].T) @ x0[s])
            x[s] = x[s] * (1.0 + upd)
    return x.reshape(b, f, d)


def make(**kw):
    layer = DynInt(**kw)
    layer(X)
    return layer


def force_pin(layer):
    """Gate identically 1 (sigmoid(100) == 1 in float32) or generated delta identically 0."""
    for l in range(layer.num_layers):
        kernel, bias = layer.generator_kernels[l][-1], layer.generator_biases[l][-1]
        kernel.assign(tf.zeros_like(kernel))
        bias.assign(tf.fill(bias.shape, 100.0 if layer.mode != "DWP" else 0.0))


@pytest.mark.parametrize("mode,extra", [
    ("DA", dict(gate_granularity="vector")), ("DA", dict(gate_granularity="bit")),
    ("DGP", {}), ("DWP", dict(rank=2)),
])
@pytest.mark.parametrize("h", [1, 2, 4])
def test_reduces_exactly_to_pin(mode, extra, h):
    layer = make(mode=mode, num_layers=3, num_subspaces=h, generator_hidden_units=(5,), **extra)
    force_pin(layer)
    kernels = [w.numpy() for w in layer.pin_kernels]
    np.testing.assert_allclose(layer(X), numpy_pin(X, kernels, h), rtol=1e-5, atol=1e-6)


def test_gate_one_and_zero_delta_agree_with_each_other():
    outs = []
    for mode in ("DA", "DGP", "DWP"):
        layer = make(mode=mode, num_subspaces=2, kernel_initializer="ones")
        force_pin(layer)
        for w in layer.pin_kernels:
            w.assign(np.linspace(-0.3, 0.3, w.shape[0] * w.shape[1]).reshape(w.shape))
        outs.append(layer(X).numpy())
    np.testing.assert_allclose(outs[0], outs[1], rtol=1e-6, atol=1e-7)
    np.testing.assert_array_equal(outs[0], outs[2])


def test_scalar_pin_hand_computed():
    e = np.array([[[2.0]]], np.float32)
    for mode in ("DA", "DWP"):
        layer = DynInt(mode=mode, num_layers=2)
        layer(e)
        force_pin(layer)
        for w in layer.pin_kernels:
            w.assign([[0.5]])
        np.testing.assert_allclose(layer(e), [[[8.0]]], rtol=1e-6)  # 2 * (1 + 1)^2


@pytest.mark.parametrize("mode", ["DA", "DGP"])
def test_zero_pin_weights_give_the_identity(mode):
    layer = make(mode=mode, num_subspaces=2)
    for w in layer.pin_kernels:
        w.assign(tf.zeros_like(w))
    np.testing.assert_allclose(layer(X), X, rtol=1e-6)


@pytest.mark.parametrize("mode,extra", [
    ("DA", dict(gate_granularity="vector")), ("DA", dict(gate_granularity="bit")),
    ("DGP", {}), ("DWP", dict(rank=3)),
])
def test_dynamic_modes_match_per_sample_reference(mode, extra):
    layer = make(mode=mode, num_layers=2, num_subspaces=2, activation="tanh",
                 generator_hidden_units=(6,), generator_initializer="random_normal", **extra)
    for biases in layer.generator_biases:
        for b in biases:
            b.assign(RNG.normal(scale=0.3, size=b.shape).astype(np.float32))
    out = layer(X).numpy()
    np.testing.assert_allclose(out, numpy_dynamic(layer, X), rtol=1e-4, atol=1e-5)
    # truly instance-dependent: differs from the static PIN with the same W
    kernels = [w.numpy() for w in layer.pin_kernels]
    assert not np.allclose(out, numpy_pin(X, kernels, 2, np.tanh), atol=1e-4)


@pytest.mark.parametrize("kw", [
    dict(mode="DX"), dict(num_layers=0), dict(num_subspaces=0), dict(rank=0),
    dict(gate_granularity="field"), dict(generator_hidden_units=(0,)),
])
def test_bad_arguments_raise_value_error_naming_them(kw):
    with pytest.raises(ValueError, match=next(iter(kw))):
        DynInt(**kw)


def test_subspaces_must_divide_the_embedding_dim():
    with pytest.raises(ValueError, match="num_subspaces"):
        DynInt(num_subspaces=3)(X)


def test_generic_layer_properties(tmp_path):
    x = tf.constant(X)
    for mode in ("DA", "DGP", "DWP"):
        layer = make(mode=mode, num_subspaces=2, generator_hidden_units=(4,), activation="tanh")
        assert_batch_independent(layer, x)
        assert_config_round_trip(layer, x)
        assert_finite_gradients(layer, x)
    assert_saved_model_reload(DynInt(mode="DWP", num_subspaces=2), x, tmp_path)
