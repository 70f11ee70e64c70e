import numpy as np
import pytest

from deeprec_lite.compat import tf
from deeprec_lite.layers.interactions.fm import FM
from tests.layers.layer_checks import (
    assert_batch_independent, assert_config_round_trip, assert_finite_gradients,
    assert_saved_model_reload)

E3 = np.array([[[1., 2.], [3., 4.], [5., 6.]]], dtype=np.float32)


def brute_force_bi(e):
    """Sum over pairs i < j of e_i * e_j, by explicit loops (independent of the layer's trick)."""
    b, f, d = e.shape
    out = np.zeros((b, d), dtype=np.float64)
    for i in range(f):
        for j in range(i + 1, f):
            out += e[:, i, :].astype(np.float64) * e[:, j, :]
    return out


def test_hand_computed_values():
    np.testing.assert_allclose(FM()(E3).numpy(), [[67.0]])
    np.testing.assert_allclose(FM(output_mode="bi_interaction")(E3).numpy(), [[23.0, 44.0]])


@pytest.mark.parametrize("mode", ["sum", "bi_interaction"])
def test_matches_brute_force(mode):
    e = np.random.default_rng(0).normal(size=(4, 5, 3)).astype(np.float32)
    ref = brute_force_bi(e)
    if mode == "sum":
        ref = ref.sum(-1, keepdims=True)
    out = FM(output_mode=mode)(e).numpy()
    assert out.shape == ref.shape and out.dtype == np.float32
    np.testing.assert_allclose(out, ref, rtol=1e-5, atol=1e-5)


def test_field_permutation_invariant():
    e = np.random.default_rng(1).normal(size=(3, 6, 4)).astype(np.float32)
    layer = FM(output_mode="bi_interaction")
    np.testing.assert_allclose(layer(e).numpy(), layer(e[:, ::-1, :]).numpy(), rtol=1e-5, atol=1e-5)
    np.testing.assert_allclose(layer(e).numpy(), layer(e[:, [3, 0, 5, 1, 4, 2], :]).numpy(),
                               rtol=1e-5, atol=1e-5)


def test_float32_math_under_mixed_precision():
    # e = 100 on 3 fields: (sum e)^2 = 90000 overflows float16 (max 65504); the answer 30000
    # does not.
    e = np.full((2, 3, 1), 100.0, dtype=np.float32)
    naive = 0.5 * (tf.square(tf.reduce_sum(tf.cast(e, tf.float16), 1))
                   - tf.reduce_sum(tf.square(tf.cast(e, tf.float16)), 1))
    assert not np.all(np.isfinite(naive.numpy()))  # the pitfall this layer must avoid
    layer = FM(dtype="mixed_float16")
    out = layer(e)
    assert out.dtype == tf.float16
    np.testing.assert_array_equal(out.numpy().astype(np.float32), [[30000.0], [30000.0]])


def test_bad_arguments():
    with pytest.raises(ValueError, match="output_mode.*'mean'"):
        FM(output_mode="mean")
    with pytest.raises(ValueError, match="input_shape"):
        FM()(np.zeros((2, 6), np.float32))


@pytest.mark.parametrize("mode", ["sum", "bi_interaction"])
def test_generic_properties(mode, tmp_path):
    x = tf.constant(np.random.default_rng(2).normal(size=(3, 4, 2)).astype(np.float32))
    layer = FM(output_mode=mode)
    assert_batch_independent(layer, x)
    assert_config_round_trip(layer, x)
    assert_finite_gradients(layer, x)
    assert_saved_model_reload(FM(output_mode=mode), x, tmp_path)
