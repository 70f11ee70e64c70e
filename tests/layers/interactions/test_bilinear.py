import numpy as np
import pytest

from deeprec_lite.compat import tf
from deeprec_lite.layers.interactions.bilinear import Bilinear
from tests.layers.layer_checks import (
    assert_batch_independent, assert_config_round_trip, assert_finite_gradients,
    assert_saved_model_reload)

E3 = np.array([[[1., 2.], [3., 4.], [5., 6.]]], dtype=np.float32)
SHAPES = {"all": lambda f, d: (d, d), "each": lambda f, d: (f - 1, d, d),
          "interaction": lambda f, d: (f * (f - 1) // 2, d, d)}


def reference(e, kernel, bilinear_type):
    """Loops over pairs; picks the matrix of each pair by type."""
    f = e.shape[1]
    out, p = [], 0
    for i in range(f):
        for j in range(i + 1, f):
            if bilinear_type == "all":
                w = kernel
            elif bilinear_type == "each":
                w = kernel[i]
            else:
                w = kernel[p]
            out.append((e[:, i] @ w) * e[:, j])
            p += 1
    return np.stack(out, 1)


def with_kernel(bilinear_type, f, d, value):
    layer = Bilinear(bilinear_type)
    layer.build((None, f, d))
    layer.kernel.assign(np.broadcast_to(value, SHAPES[bilinear_type](f, d)))
    return layer


@pytest.mark.parametrize("bilinear_type", ["all", "each", "interaction"])
def test_matches_loop_reference(bilinear_type):
    e = np.random.default_rng(0).normal(size=(3, 4, 3)).astype(np.float32)
    layer = Bilinear(bilinear_type)
    out = layer(e).numpy()
    assert layer.kernel.shape == SHAPES[bilinear_type](4, 3)
    assert out.shape == (3, 6, 3)
    np.testing.assert_allclose(out, reference(e, layer.kernel.numpy(), bilinear_type), rtol=1e-5,
                               atol=1e-6)


@pytest.mark.parametrize("bilinear_type", ["all", "each", "interaction"])
def test_identity_kernel_gives_hadamard_products(bilinear_type):
    out = with_kernel(bilinear_type, 3, 2, np.eye(2, dtype=np.float32))(E3).numpy()
    np.testing.assert_allclose(out, [[[3, 8], [5, 12], [15, 24]]])
    np.testing.assert_allclose(out.sum(-1), [[11.0, 17.0, 39.0]])


def test_types_coincide_with_one_shared_matrix():
    e = np.random.default_rng(1).normal(size=(2, 5, 3)).astype(np.float32)
    w = np.random.default_rng(2).normal(size=(3, 3)).astype(np.float32)
    outs = [with_kernel(t, 5, 3, w)(e).numpy() for t in ("all", "each", "interaction")]
    np.testing.assert_allclose(outs[0], outs[1], rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(outs[0], outs[2], rtol=1e-5, atol=1e-6)


def test_bad_arguments():
    with pytest.raises(ValueError, match="bilinear_type='field_all'"):
        Bilinear(bilinear_type="field_all")
    with pytest.raises(ValueError, match="input_shape"):
        Bilinear()(np.zeros((2, 6), np.float32))
    with pytest.raises(ValueError, match="at least 2 fields"):
        Bilinear()(np.zeros((2, 1, 3), np.float32))


@pytest.mark.parametrize("bilinear_type", ["all", "each", "interaction"])
def test_generic_properties(bilinear_type, tmp_path):
    x = tf.constant(np.random.default_rng(3).normal(size=(3, 3, 2)).astype(np.float32))
    layer = Bilinear(bilinear_type, kernel_regularizer="l2")
    assert_batch_independent(layer, x)
    assert_config_round_trip(layer, x)
    assert_finite_gradients(layer, x)
    assert_saved_model_reload(Bilinear(bilinear_type), x, tmp_path)
