import numpy as np
import pytest

from deeprec_lite.compat import tf
from deeprec_lite.layers.embeddings.double_hashing import DoubleHashingEmbedding
from tests.layers.layer_checks import (
    assert_batch_independent, assert_config_round_trip, assert_finite_gradients,
    assert_saved_model_reload)

FREQUENT = [100, -7, 2 ** 40, 3]


def make(**kw):
    args = dict(output_dim=4, frequent_ids=FREQUENT, num_hash_buckets=11, seed=3,
                embeddings_initializer="random_normal")
    args.update(kw)
    layer = DoubleHashingEmbedding(**args)
    layer.build(None)
    return layer


def numpy_reference(layer, ids):
    """Independent lookup: dict for frequent ids, the layer's two bucket indices otherwise."""
    weights = {w.name.split("/")[-1].split(":")[0]: w.numpy() for w in layer.weights}
    row_of = {int(k): i for i, k in enumerate(layer.frequent_ids)}
    buckets = layer.hash_ids(tf.constant(ids)).numpy()
    table = weights["hash_embeddings"]
    m = layer.num_hash_buckets
    out = np.zeros(ids.shape + (layer.output_dim,), np.float32)
    for idx in np.ndindex(ids.shape):
        if int(ids[idx]) in row_of:
            out[idx] = weights["frequent_embeddings"][row_of[int(ids[idx])]]
            continue
        h1, h2 = buckets[idx]
        second = h2 if layer.shared_hash_table else m + h2
        a, b = table[h1], table[second]
        out[idx] = a + b if layer.combiner == "sum" else np.concatenate([a, b])
    return out


IDS = np.array([[100, 5], [3, -7], [2 ** 40, 2 ** 40 + 1], [-123456789012, 0]], np.int64)


@pytest.mark.parametrize("combiner", ["sum", "concat"])
@pytest.mark.parametrize("shared", [False, True])
def test_matches_numpy_reference(combiner, shared):
    layer = make(combiner=combiner, shared_hash_table=shared)
    np.testing.assert_allclose(layer(tf.constant(IDS)), numpy_reference(layer, IDS), rtol=1e-6)


def test_frequent_ids_map_to_unique_rows():
    layer = make()
    rows = layer.frequent_rows(tf.constant(FREQUENT + [4, 99, 101], tf.int64)).numpy()
    np.testing.assert_array_equal(rows, [0, 1, 2, 3, -1, -1, -1])
    out = layer(tf.constant(FREQUENT, tf.int64)).numpy()
    np.testing.assert_array_equal(out, layer.frequent_embeddings.numpy())
    assert len({r.tobytes() for r in out}) == len(FREQUENT)


def test_deterministic_and_bucket_range():
    a, b = make(), make()
    x = tf.constant(IDS)
    np.testing.assert_array_equal(a.hash_ids(x), b.hash_ids(x))
    buckets = a.hash_ids(tf.range(-500, 500, dtype=tf.int64)).numpy()
    assert buckets.min() >= 0 and buckets.max() < 11
    assert len(np.unique(buckets[:, 0])) == 11 and len(np.unique(buckets[:, 1])) == 11
    assert not np.array_equal(buckets[:, 0], buckets[:, 1])  # two different hash functions


def test_infrequent_ids_differ_unless_both_hashes_collide():
    layer = make(num_hash_buckets=5)
    ids = np.arange(1000, 1200, dtype=np.int64)
    buckets = layer.hash_ids(tf.constant(ids)).numpy()
    out = layer(tf.constant(ids)).numpy()
    one_collision = both_collide = 0
    for i in range(len(ids)):
        for j in range(i + 1, len(ids)):
            same = buckets[i] == buckets[j]
            if same.all():
                both_collide += 1
                np.testing.assert_array_equal(out[i], out[j])
            elif same.any():
                one_collision += 1
                assert not np.allclose(out[i], out[j])
    assert one_collision > 0 and both_collide > 0  # the test exercised both cases


@pytest.mark.parametrize("combiner,shared", [("sum", False), ("sum", True),
                                             ("concat", False), ("concat", True)])
def test_parameter_count_formula(combiner, shared):
    layer = make(combiner=combiner, shared_hash_table=shared, num_hash_buckets=13, output_dim=6)
    n, m, d = len(FREQUENT), 13, 6
    expected = {("sum", False): n * d + 2 * m * d, ("sum", True): n * d + m * d,
                ("concat", False): n * d + m * d, ("concat", True): n * d + m * d // 2}
    assert layer.count_params() == expected[(combiner, shared)]
    assert DoubleHashingEmbedding.parameter_count(n, m, d, combiner, shared) == layer.count_params()


def test_no_frequent_ids_and_select_frequent_ids():
    layer = make(frequent_ids=[])
    assert layer(tf.constant(IDS)).shape == (4, 2, 4)
    assert layer.count_params() == 2 * 11 * 4
    ids = [5, 5, 5, 9, 9, 1, 1, 7]
    np.testing.assert_array_equal(DoubleHashingEmbedding.select_frequent_ids(ids, 3), [5, 1, 9])


@pytest.mark.parametrize("kw", [
    dict(output_dim=0), dict(num_hash_buckets=1), dict(combiner="mean"),
    dict(combiner="concat", output_dim=5), dict(frequent_ids=[1, 2, 1]),
    dict(frequent_ids=["a"]), dict(prime=100), dict(hash_params=[[1, 2, 3]]),
    dict(frequent_ids=[1.5, 2.0]), dict(hash_params=np.full((2, 4), 1.5)), dict(seed=1.9),
    dict(seed=None),
])
def test_bad_arguments_raise_value_error_naming_them(kw):
    with pytest.raises(ValueError, match=next(iter(kw))):
        make(**kw)


def test_generic_layer_properties(tmp_path):
    x = tf.constant(IDS)
    for combiner in ("sum", "concat"):
        layer = make(combiner=combiner)
        assert_batch_independent(layer, x)
        assert_config_round_trip(layer, x)
        assert_finite_gradients(layer, x)
    assert_saved_model_reload(make(), x, tmp_path)
