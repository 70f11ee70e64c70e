import numpy as np
import pytest

from deeprec_lite.compat import keras, tf
from deeprec_lite.layers.feature_selection.autofis import AutoFISGate
from deeprec_lite.layers.feature_selection.grda import GRDA
from tests.layers.layer_checks import (
    assert_batch_independent, assert_config_round_trip, assert_finite_gradients,
    assert_saved_model_reload)

E = np.array([[[1, 2], [3, 4], [5, 6]]], np.float32)  # inner products 11, 17, 39; FM = 67
RNG = np.random.RandomState(0)
X = RNG.normal(size=(5, 4, 3)).astype(np.float32)


def pair_products(x):
    rows, cols = np.triu_indices(x.shape[1], 1)
    return np.einsum("bpd,bpd->bp", x[:, rows], x[:, cols])


def test_alpha_zero_removes_the_second_order_term():
    for mode in ("sum", "pairs"):
        layer = AutoFISGate(output_mode=mode)
        layer(X)
        layer.alpha.assign(tf.zeros_like(layer.alpha))
        np.testing.assert_array_equal(layer(X, training=True), 0.0)
        np.testing.assert_array_equal(layer(X, training=False), 0.0)


def test_alpha_one_with_fresh_batch_norm_is_the_fm_logit():
    layer = AutoFISGate(alpha_initializer="ones", epsilon=1e-3)
    out = layer(E, training=False).numpy()
    np.testing.assert_allclose(out, [[67.0 / np.sqrt(1.001)]], rtol=1e-6)
    np.testing.assert_allclose(out, [[67.0]], rtol=1e-3)
    pairs = AutoFISGate(output_mode="pairs", alpha_initializer="ones", use_batch_norm=False)
    np.testing.assert_allclose(pairs(E), [[11.0, 17.0, 39.0]])


def test_training_mode_matches_numpy_non_affine_batch_norm():
    layer = AutoFISGate(output_mode="pairs", epsilon=1e-3)
    out = layer(X, training=True).numpy()
    p = pair_products(X)
    normed = (p - p.mean(0)) / np.sqrt(p.var(0) + 1e-3)
    np.testing.assert_allclose(out, normed * layer.alpha.numpy(), rtol=1e-4, atol=1e-5)
    assert not layer.batch_norm.trainable_weights  # no scale, no center
    summed = AutoFISGate(epsilon=1e-3)
    summed(X)
    summed.set_weights(layer.get_weights())
    np.testing.assert_allclose(summed(X, training=True).numpy()[:, 0], out.sum(1), rtol=1e-4,
                               atol=1e-5)


def test_comb_mask_keeps_only_selected_pairs_and_selected_pairs_round_trips():
    mask = [1, 0, 1, 1, 0, 1]  # pairs of 4 fields in triu order
    layer = AutoFISGate(output_mode="pairs", comb_mask=mask, use_batch_norm=False)
    out = layer(X).numpy()
    assert out.shape == (5, 4)
    np.testing.assert_allclose(out, pair_products(X)[:, np.array(mask, bool)] * layer.alpha.numpy(),
                               rtol=1e-5)
    layer.alpha.assign([0.5, 0.0, -0.2, 0.0])
    assert layer.selected_pairs() == [1, 0, 0, 1, 0, 0]
    full = AutoFISGate()
    full(X)
    full.alpha.assign([0.0, 1.0, 0.0, 2.0, 3.0, 0.0])
    assert full.selected_pairs() == [0, 1, 0, 1, 1, 0]


def test_search_stage_with_grda_on_gates_and_adam_on_the_rest():
    emb = tf.Variable(RNG.normal(size=(4, 3)).astype(np.float32))
    gate = AutoFISGate(output_mode="sum")
    y = tf.constant(RNG.randint(0, 2, size=(64, 1)).astype(np.float32))
    ids = RNG.normal(size=(64, 4, 1)).astype(np.float32)
    grda, adam = GRDA(learning_rate=1.0, c=0.5, mu=0.8), keras.optimizers.Adam(1e-2)
    gate(ids * emb)
    alpha0 = gate.alpha.numpy().copy()
    for _ in range(5):
        with tf.GradientTape() as tape:
            logits = gate(ids * emb, training=True)
            loss = tf.reduce_mean(keras.losses.binary_crossentropy(y, logits, from_logits=True))
        g_gate, g_emb = tape.gradient(loss, [gate.alpha, emb])
        grda.apply_gradients([(g_gate, gate.alpha)])
        adam.apply_gradients([(g_emb, emb)])
    alpha = gate.alpha.numpy()
    assert np.isfinite(loss.numpy())
    assert not np.allclose(alpha, alpha0)
    assert np.sum(alpha == 0.0) > 0  # the large threshold zeroed some gates exactly


@pytest.mark.parametrize("kw", [
    dict(output_mode="mean"), dict(comb_mask=[1, 2, 0]), dict(comb_mask=[0, 0, 0]),
    dict(comb_mask=[[1, 0]]), dict(momentum=1.5), dict(epsilon=0.0),
])
def test_bad_arguments_raise_value_error_naming_them(kw):
    with pytest.raises(ValueError, match=next(iter(kw))):
        AutoFISGate(**kw)


def test_comb_mask_length_must_match_the_pairs():
    with pytest.raises(ValueError, match="comb_mask"):
        AutoFISGate(comb_mask=[1, 0, 1])(X)  # 4 fields have 6 pairs


def test_generic_layer_properties(tmp_path):
    x = tf.constant(X)
    for kw in (dict(), dict(output_mode="pairs", comb_mask=[1, 1, 0, 1, 0, 1])):
        layer = AutoFISGate(**kw)
        layer(x, training=True)  # move the moving statistics
        assert_batch_independent(layer, x)
        assert_config_round_trip(layer, x)
        assert_finite_gradients(layer, x)
    assert_saved_model_reload(AutoFISGate(), x, tmp_path)
