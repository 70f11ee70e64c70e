import numpy as np
import pytest

from deeprec_lite.compat import tf
from deeprec_lite.layers.interactions.cross_net_mix import CrossNetMix
from deeprec_lite.layers.interactions.cross_net_v2 import CrossNetV2
from tests.layers.layer_checks import (
    assert_batch_independent, assert_config_round_trip, assert_finite_gradients,
    assert_saved_model_reload)


def reference(x0, x, layer):
    """Per-example, per-expert loops with column-vector algebra, as in the DCN-v2 paper."""
    out = np.array(x, np.float64)
    for i in range(layer.num_layers):
        u, v = layer.u_kernels[i].numpy(), layer.v_kernels[i].numpy()
        c = layer.c_kernels[i].numpy() if layer.nonlinear else None
        g, b = layer.gate_kernels[i].numpy(), layer.biases[i].numpy()
        new = np.empty_like(out)
        for n in range(out.shape[0]):
            xl = out[n]
            logits = np.array([xl @ g[:, k] for k in range(layer.num_experts)])
            gates = np.exp(logits - logits.max()) / np.exp(logits - logits.max()).sum()
            mix = np.zeros_like(xl)
            for k in range(layer.num_experts):
                h = v[k].T @ xl
                if layer.nonlinear:
                    h = np.tanh(c[k] @ np.tanh(h))
                mix += gates[k] * x0[n] * (u[k] @ h + b)
            new[n] = mix + xl
        out = new
    return out


@pytest.mark.parametrize("nonlinear", [True, False])
def test_matches_loop_reference(nonlinear):
    rng = np.random.default_rng(0)
    x0, x = rng.normal(size=(2, 3, 6)).astype(np.float32)
    layer = CrossNetMix(num_layers=2, num_experts=3, low_rank=2, nonlinear=nonlinear,
                        bias_initializer="random_normal")
    out = layer([x0, x]).numpy()
    np.testing.assert_allclose(out, reference(x0, x, layer), rtol=1e-4, atol=1e-5)
    assert layer.u_kernels[0].shape == (3, 6, 2) and layer.gate_kernels[0].shape == (6, 3)
    assert len(layer.c_kernels) == (2 if nonlinear else 0)


def test_experts_start_different():
    layer = CrossNetMix(num_layers=1, num_experts=2, low_rank=2)
    layer.build((None, 4))
    u = layer.u_kernels[0].numpy()
    assert not np.allclose(u[0], u[1])
    assert not np.allclose(u, layer.v_kernels[0].numpy())


@pytest.mark.parametrize("nonlinear", [True, False])
def test_zero_u_and_bias_is_identity(nonlinear):
    x0 = np.random.default_rng(1).normal(size=(3, 5)).astype(np.float32)
    layer = CrossNetMix(num_layers=2, num_experts=2, low_rank=2, nonlinear=nonlinear)
    layer.build((None, 5))
    for u in layer.u_kernels:
        u.assign(tf.zeros_like(u))
    np.testing.assert_array_equal(layer(x0).numpy(), x0)


def test_single_expert_gate_is_one():
    # With K = 1 the softmax gate is 1 whatever its kernel: changing the kernel changes nothing.
    x0 = np.random.default_rng(2).normal(size=(3, 5)).astype(np.float32)
    layer = CrossNetMix(num_layers=2, num_experts=1, low_rank=2, bias_initializer="random_normal")
    before = layer(x0).numpy()
    for g in layer.gate_kernels:
        g.assign(100.0 * tf.random.normal(g.shape))
    np.testing.assert_allclose(layer(x0).numpy(), before, rtol=1e-6)


def test_linear_single_expert_equals_cross_net_v2():
    rng = np.random.default_rng(3)
    x0 = rng.normal(size=(4, 5)).astype(np.float32)
    mix = CrossNetMix(num_layers=2, num_experts=1, low_rank=2, nonlinear=False,
                      bias_initializer="random_normal")
    mix.build((None, 5))
    v2 = CrossNetV2(num_layers=2)
    v2.build((None, 5))
    for i in range(2):
        u, v = mix.u_kernels[i].numpy()[0], mix.v_kernels[i].numpy()[0]
        v2.kernels[i].assign((u @ v.T).T)  # W = U V^T, stored in x @ kernel layout
        v2.biases[i].assign(mix.biases[i])
    np.testing.assert_allclose(mix(x0).numpy(), v2(x0).numpy(), rtol=1e-5, atol=1e-6)


def test_batch_of_one_keeps_batch_axis():
    layer = CrossNetMix(num_layers=1, num_experts=2, low_rank=2)
    assert layer(np.ones((1, 4), np.float32)).shape == (1, 4)


def test_bad_arguments():
    for name, bad in [("num_layers", 0), ("num_experts", -1), ("low_rank", 0), ("low_rank", 1.0)]:
        with pytest.raises(ValueError, match=f"{name}={bad!r}"):
            CrossNetMix(**{name: bad})
    with pytest.raises(ValueError, match="input_shape"):
        CrossNetMix()(np.zeros((2, 3, 2), np.float32))


@pytest.mark.parametrize("nonlinear", [True, False])
def test_generic_properties(nonlinear, tmp_path):
    x0 = tf.constant(np.random.default_rng(4).normal(size=(3, 4)).astype(np.float32))
    kwargs = dict(num_layers=2, num_experts=3, low_rank=2, nonlinear=nonlinear)
    layer = CrossNetMix(bias_initializer="random_normal", kernel_regularizer="l2", **kwargs)
    assert_batch_independent(layer, x0)
    assert_config_round_trip(layer, x0)
    assert_finite_gradients(layer, x0)
    assert_saved_model_reload(CrossNetMix(**kwargs), x0, tmp_path)
