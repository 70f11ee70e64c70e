import numpy as np
import pytest

from deeprec_lite.compat import keras, tf
from deeprec_lite.layers.interactions.inner_product import InnerProduct
from deeprec_lite.layers.interactions.outer_product import OuterProduct
from tests.layers.layer_checks import (
    assert_batch_independent, assert_config_round_trip, assert_finite_gradients,
    assert_saved_model_reload)

E3 = np.array([[[1., 2.], [3., 4.], [5., 6.]]], dtype=np.float32)


def reference(e, kernel, kernel_type):
    """p_ij = e_i^T K_ij e_j with explicit loops over pairs."""
    b, f, d = e.shape
    out, p = [], 0
    for i in range(f):
        for j in range(i + 1, f):
            if kernel_type == "mat":
                k = kernel[:, p, :]
            elif kernel_type == "vec":
                k = np.diag(kernel[p])
            else:
                k = kernel[p, 0] * np.eye(d)
            out.append(np.einsum("ba,ac,bc->b", e[:, i], k, e[:, j]))
            p += 1
    return np.stack(out, 1)


@pytest.mark.parametrize("kernel_type,shape",
                         [("mat", (3, 10, 3)), ("vec", (10, 3)), ("num", (10, 1))])
def test_matches_reference_and_kernel_shape(kernel_type, shape):
    e = np.random.default_rng(0).normal(size=(4, 5, 3)).astype(np.float32)
    layer = OuterProduct(kernel_type=kernel_type, kernel_initializer="random_normal")
    out = layer(e).numpy()
    assert layer.kernel.shape == shape
    assert out.shape == (4, 10)
    ref = reference(e, layer.kernel.numpy(), kernel_type)
    np.testing.assert_allclose(out, ref, rtol=1e-4, atol=1e-5)


def test_mat_kernel_is_not_symmetric_in_its_use():
    # A strictly upper-triangular K distinguishes e_i^T K e_j from e_j^T K e_i.
    k = np.zeros((2, 3, 2), np.float32)
    k[0, :, 1] = 1.0  # p = e_i[0] * e_j[1]
    layer = OuterProduct("mat")
    layer.build((None, 3, 2))
    layer.kernel.assign(k)
    np.testing.assert_allclose(layer(E3).numpy(), [[1 * 4, 1 * 6, 3 * 6]])


@pytest.mark.parametrize("kernel_type", ["vec", "num"])
def test_ones_kernel_equals_inner_product(kernel_type):
    layer = OuterProduct(kernel_type=kernel_type, kernel_initializer="ones")
    np.testing.assert_allclose(layer(E3).numpy(), [[11.0, 17.0, 39.0]])
    e = np.random.default_rng(1).normal(size=(2, 4, 3)).astype(np.float32)
    layer = OuterProduct(kernel_type=kernel_type, kernel_initializer="ones")
    np.testing.assert_allclose(layer(e).numpy(), InnerProduct()(e).numpy(), rtol=1e-5, atol=1e-6)


def test_identity_mat_kernel_equals_inner_product():
    layer = OuterProduct("mat")
    layer.build((None, 3, 2))
    layer.kernel.assign(np.repeat(np.eye(2, dtype=np.float32)[:, None, :], 3, axis=1))
    np.testing.assert_allclose(layer(E3).numpy(), [[11.0, 17.0, 39.0]])


def test_bad_arguments():
    with pytest.raises(ValueError, match="kernel_type.*'matrix'"):
        OuterProduct(kernel_type="matrix")
    with pytest.raises(ValueError, match="input_shape"):
        OuterProduct()(np.zeros((2, 6), np.float32))


def test_rejects_other_field_count_after_build():
    layer = OuterProduct("vec")
    layer(E3)
    with pytest.raises(ValueError, match="axis 1"):
        layer(np.zeros((1, 4, 2), np.float32))


def test_regularizer_loss():
    layer = OuterProduct("vec", kernel_initializer="ones",
                         kernel_regularizer=keras.regularizers.L2(0.5))
    layer(E3)
    np.testing.assert_allclose(float(tf.add_n(layer.losses)), 0.5 * 3 * 2, rtol=1e-6)


@pytest.mark.parametrize("kernel_type", ["mat", "vec", "num"])
def test_generic_properties(kernel_type, tmp_path):
    x = tf.constant(np.random.default_rng(2).normal(size=(3, 4, 2)).astype(np.float32))
    layer = OuterProduct(kernel_type=kernel_type, kernel_regularizer="l2")
    assert_batch_independent(layer, x)
    assert_config_round_trip(layer, x)
    assert_finite_gradients(layer, x)
    assert_saved_model_reload(OuterProduct(kernel_type=kernel_type), x, tmp_path)
