import numpy as np
import pytest

from deeprec_lite.compat import tf
from deeprec_lite.layers.interactions.cin import CIN
from tests.layers.layer_checks import (
    assert_batch_independent, assert_config_round_trip, assert_finite_gradients,
    assert_saved_model_reload)

E3 = np.array([[[1., 2.], [3., 4.], [5., 6.]]], dtype=np.float32)


def reference(e, layer, act=lambda t: t):
    """Explicit loops over maps h and field pairs (i, j), as in the xDeepFM paper."""
    b, f, d = e.shape
    hidden, outputs = e.astype(np.float64), []
    for k, size in enumerate(layer.layer_sizes):
        w = layer.kernels[k].numpy()
        maps = np.zeros((b, size, d))
        for h in range(size):
            for i in range(f):
                for j in range(hidden.shape[1]):
                    maps[:, h] += w[h, i, j] * e[:, i] * hidden[:, j]
            if layer.use_bias:
                maps[:, h] += layer.biases[k].numpy()[h]
        maps = act(maps)
        if layer.split_half and k < len(layer.layer_sizes) - 1:
            hidden, direct = maps[:, :size // 2], maps[:, size // 2:]
        else:
            hidden = direct = maps
        outputs.append(direct.sum(-1))
    return np.concatenate(outputs, 1)


def test_one_map_with_half_off_diagonal_kernel_is_fm():
    layer = CIN(layer_sizes=[1], use_bias=False)
    layer.build((None, 3, 2))
    layer.kernels[0].assign(0.5 * (1.0 - np.eye(3, dtype=np.float32))[None])
    np.testing.assert_allclose(layer(E3).numpy(), [[67.0]])


@pytest.mark.parametrize("kwargs,width", [
    ({"layer_sizes": [4, 2], "split_half": True}, 4),
    ({"layer_sizes": [3, 2], "split_half": False}, 5),
    ({"layer_sizes": [4, 4, 3], "split_half": True, "activation": "relu"}, 7),
])
def test_matches_loop_reference(kwargs, width):
    e = np.random.default_rng(0).normal(size=(2, 3, 4)).astype(np.float32)
    layer = CIN(bias_initializer="random_normal", **kwargs)
    out = layer(e).numpy()
    assert out.shape == (2, width) and layer.output_dim == width
    act = (lambda t: np.maximum(t, 0.0)) if kwargs.get("activation") else (lambda t: t)
    np.testing.assert_allclose(out, reference(e, layer, act), rtol=1e-4, atol=1e-5)


def test_kernel_shapes_follow_split():
    layer = CIN(layer_sizes=[4, 6, 2], split_half=True)
    layer.build((None, 5, 3))
    assert [k.shape for k in layer.kernels] == [(4, 5, 5), (6, 5, 2), (2, 5, 3)]


def test_bad_arguments():
    with pytest.raises(ValueError, match=r"layer_sizes=\[3, 2\]"):
        CIN(layer_sizes=[3, 2], split_half=True)
    CIN(layer_sizes=[3, 2], split_half=False)
    CIN(layer_sizes=[4, 3], split_half=True)  # the last size may be odd
    for bad in ([], [4, 0], [2, -2], 8):
        with pytest.raises(ValueError, match="layer_sizes"):
            CIN(layer_sizes=bad)
    with pytest.raises(ValueError, match="input_shape"):
        CIN()(np.zeros((2, 6), np.float32))


def test_generic_properties(tmp_path):
    x = tf.constant(np.random.default_rng(1).normal(size=(3, 3, 2)).astype(np.float32))
    layer = CIN(layer_sizes=[4, 2], activation="tanh", bias_initializer="random_normal",
                kernel_regularizer="l2")
    assert_batch_independent(layer, x)
    assert_config_round_trip(layer, x)
    assert_finite_gradients(layer, x)
    assert_saved_model_reload(CIN(layer_sizes=[4, 2]), x, tmp_path)
