import numpy as np
import pytest

from deeprec_lite.compat import tf
from deeprec_lite.layers.embeddings.autodis import AutoDis
from tests.layers.layer_checks import (
    assert_batch_independent, assert_config_round_trip, assert_finite_gradients,
    assert_saved_model_reload)

X = np.array([[0.1, 0.9, -0.3], [0.5, 0.0, 1.2], [0.7, 0.2, 0.4], [0.0, 1.0, -1.0]], np.float32)


def make(**kw):
    args = dict(embedding_dim=4, num_buckets=5)
    args.update(kw)
    layer = AutoDis(**args)
    layer(tf.constant(X))
    return layer


def softmax(z):
    z = z - z.max(-1, keepdims=True)
    e = np.exp(z)
    return e / e.sum(-1, keepdims=True)


def reference_weights(layer, x):
    w = layer.projection.numpy()
    logits = x[:, :, None] * w[None]
    if layer.discretizer == "paper":
        h = np.where(logits > 0, logits, layer.leaky_relu_alpha * logits)
        big_w = layer.bucket_kernel.numpy()
        mixed = np.stack([h[:, j] @ big_w[j] for j in range(x.shape[1])], 1)
        logits = mixed + layer.skip_factor * h
    return softmax(logits / layer.temperature)


@pytest.mark.parametrize("discretizer", ["paper", "linear"])
def test_weighted_average_matches_numpy(discretizer):
    layer = make(discretizer=discretizer, temperature=0.5)
    p = reference_weights(layer, X)
    me = layer.meta_embeddings.numpy()
    expected = np.stack([p[:, j] @ me[j] for j in range(3)], 1)
    np.testing.assert_allclose(layer.bucket_weights(X), p, rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(layer(X), expected, rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(np.sum(layer.bucket_weights(X), -1), 1.0, rtol=1e-6)


def test_equal_logits_give_the_mean_meta_embedding():
    layer = make()
    layer.projection.assign(tf.zeros_like(layer.projection))
    mean = np.broadcast_to(layer.meta_embeddings.numpy().mean(1), (4, 3, 4))
    np.testing.assert_allclose(layer(X), mean, rtol=1e-6, atol=1e-7)


def test_output_lies_in_the_convex_hull_of_the_meta_embeddings():
    layer = make(kernel_initializer="random_normal", temperature=0.3)
    out = layer(np.random.RandomState(0).uniform(-2, 2, (50, 3)).astype(np.float32)).numpy()
    me = layer.meta_embeddings.numpy()
    assert np.all(out >= me.min(1)[None] - 1e-6) and np.all(out <= me.max(1)[None] + 1e-6)
    assert out.std() > 0  # not a degenerate constant


def test_small_temperature_selects_one_meta_embedding():
    x = X + 0.05  # x = 0 would give equal logits (no winner) with the linear discretizer
    layer = make(discretizer="linear", temperature=1e-6)
    p = layer.bucket_weights(x).numpy()
    assert np.all(np.isin(np.round(p, 6), [0.0, 1.0]))
    hard = make(discretizer="linear", temperature=1e-6, aggregation="max")
    hard.set_weights(layer.get_weights())
    np.testing.assert_allclose(layer(x), hard(x), atol=1e-6)


def test_max_and_top_k_aggregations():
    soft = make(temperature=0.7)
    me = soft.meta_embeddings.numpy()
    p = reference_weights(soft, X)
    order = np.argsort(-p, axis=-1)
    for agg, k in (("max", 1), ("top_k", 2), ("top_k", 5)):
        layer = make(temperature=0.7, aggregation=agg, top_k=k)
        layer.set_weights(soft.get_weights())
        expected = np.stack([[me[j][order[b, j, :k]].sum(0) for j in range(3)] for b in range(4)])
        np.testing.assert_allclose(layer(X), expected, rtol=1e-6, atol=1e-6)


@pytest.mark.parametrize("kw", [
    dict(embedding_dim=0), dict(num_buckets=0), dict(temperature=0.0), dict(temperature=-1),
    dict(discretizer="tree"), dict(aggregation="mean"), dict(top_k=6), dict(top_k=0),
    dict(leaky_relu_alpha=-0.1), dict(skip_factor="a"),
])
def test_bad_arguments_raise_value_error_naming_them(kw):
    with pytest.raises(ValueError, match=next(iter(kw))):
        make(**kw)


def test_bad_input_rank():
    with pytest.raises(ValueError, match="num_fields"):
        AutoDis(4)(tf.zeros((2, 3, 1)))


def test_generic_layer_properties(tmp_path):
    x = tf.constant(X)
    for kw in (dict(), dict(discretizer="linear"), dict(aggregation="top_k", top_k=2)):
        layer = make(**kw)
        assert_batch_independent(layer, x)
        assert_config_round_trip(layer, x)
        hard = kw.get("aggregation") in ("max", "top_k")
        assert_finite_gradients(layer, x, allow_unused_weights=(
            ("projection", "bucket_kernel", "Variable") if hard else ()))
    assert_saved_model_reload(make(), x, tmp_path)
