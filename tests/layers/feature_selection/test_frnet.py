import numpy as np
import pytest

from deeprec_lite.compat import tf
from deeprec_lite.layers.feature_selection.frnet import FRNet
from tests.layers.layer_checks import (
    assert_batch_independent, assert_config_round_trip, assert_finite_gradients,
    assert_saved_model_reload)

RNG = np.random.RandomState(0)
X = RNG.normal(size=(4, 3, 5)).astype(np.float32)


def make(**kw):
    args = dict(attention_size=4, cie_hidden_units=6, num_cie_layers=2, cie_dropout=0.5)
    args.update(kw)
    layer = FRNet(**args)
    layer(X)
    return layer


def sigmoid(z):
    return 1.0 / (1.0 + np.exp(-z))


def ieu_reference(ieu, x):
    """Inference-mode IEU in numpy (BatchNorm with its moving statistics, no dropout)."""
    def dense(layer, h):
        k, b = layer.get_weights()
        return h @ k + b

    q, k, v = dense(ieu.query, x), dense(ieu.key, x), dense(ieu.value, x)
    s = np.einsum("bia,bja->bij", q, k)
    s = np.exp(s - s.max(-1, keepdims=True))
    s = s / s.sum(-1, keepdims=True)
    vec = dense(ieu.attention_output, np.einsum("bij,bja->bia", s, v))
    h = x.reshape(len(x), -1)
    for d, norm, prelu in zip(ieu.cie_dense, ieu.cie_norms, ieu.cie_prelus):
        h = dense(d, h)
        gamma, beta, mean, var = norm.get_weights()
        h = gamma * (h - mean) / np.sqrt(var + norm.epsilon) + beta
        alpha = prelu.get_weights()[0]
        h = np.where(h > 0, h, alpha * h)
    ctx = np.maximum(dense(ieu.cie_output, h), 0.0)[:, None, :]
    out = vec * ctx
    return out.sum(-1, keepdims=True) if ieu.weight_type == "vector" else out


@pytest.mark.parametrize("weight_type", ["bit", "vector"])
def test_matches_numpy_reference_in_inference(weight_type):
    layer = make(weight_type=weight_type)
    for _ in range(2):
        layer(X * 2.0, training=True)  # non-trivial BatchNorm moving statistics
    w = sigmoid(ieu_reference(layer.ieu_w, X))
    g = ieu_reference(layer.ieu_g, X)
    np.testing.assert_allclose(layer(X, training=False), X * w + g * (1 - w), rtol=1e-4, atol=1e-5)
    assert layer.gate(X).shape == ((4, 3, 5) if weight_type == "bit" else (4, 3, 1))


def force_gate(layer, sign):
    """IEU_W logits = sign * 1000 everywhere: attention output 1 (zero kernel), CIE output 1000."""
    ieu = layer.ieu_w
    k, _ = ieu.attention_output.get_weights()
    ieu.attention_output.set_weights([np.zeros_like(k), np.full(k.shape[1], sign, np.float32)])
    k, _ = ieu.cie_output.get_weights()
    ieu.cie_output.set_weights([np.zeros_like(k), np.full(k.shape[1], 1000.0, np.float32)])


def test_gate_at_plus_infinity_keeps_the_input():
    layer = make()
    force_gate(layer, +1.0)
    np.testing.assert_array_equal(layer.gate(X), 1.0)
    np.testing.assert_allclose(layer(X), X, rtol=1e-6)


def test_gate_at_minus_infinity_gives_the_complementary_features():
    layer = make()
    force_gate(layer, -1.0)
    np.testing.assert_array_equal(layer.gate(X), 0.0)
    np.testing.assert_allclose(layer(X), layer.ieu_g(X, training=False), rtol=1e-6)
    assert not np.allclose(layer(X), X)


def test_vector_gate_is_constant_along_the_embedding_axis():
    layer = make(weight_type="vector")
    out = layer(X).numpy()
    w = layer.gate(X).numpy()
    assert w.shape == (4, 3, 1)
    g = layer.ieu_g(X, training=False).numpy()
    np.testing.assert_allclose(out, X * w + g * (1 - w), rtol=1e-5, atol=1e-6)
    # recover the gate from any two coordinates of one field: identical along D
    ratio = (out - g) / (X - g)
    np.testing.assert_allclose(ratio, np.broadcast_to(ratio[..., :1], ratio.shape), rtol=1e-3)


def test_training_uses_dropout_and_batch_statistics():
    layer = make(cie_dropout=0.5)
    assert not np.allclose(layer(X, training=True), layer(X, training=False))


@pytest.mark.parametrize("kw", [
    dict(weight_type="field"), dict(attention_size=0), dict(num_cie_layers=0),
    dict(cie_hidden_units=-2), dict(cie_dropout=1.0), dict(cie_dropout=-0.1),
])
def test_bad_arguments_raise_value_error_naming_them(kw):
    with pytest.raises(ValueError, match=next(iter(kw))):
        FRNet(**kw)


def test_generic_layer_properties(tmp_path):
    x = tf.constant(X)
    for weight_type in ("bit", "vector"):
        layer = make(weight_type=weight_type)
        layer(x, training=True)
        assert_batch_independent(layer, x)
        assert_config_round_trip(layer, x)
        assert_finite_gradients(layer, x)
    assert_saved_model_reload(make(), x, tmp_path)
