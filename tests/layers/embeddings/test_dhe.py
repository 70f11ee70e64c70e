import numpy as np
import pytest

from deeprec_lite.compat import tf
from deeprec_lite.layers.embeddings.dhe import DHEEmbedding
from tests.layers.layer_checks import (
    assert_batch_independent, assert_config_round_trip, assert_finite_gradients,
    assert_saved_model_reload)

P = 2 ** 31 - 1


def small(**kw):
    args = dict(output_dim=3, num_hashes=8, num_buckets=97, hidden_units=(6,), seed=7)
    args.update(kw)
    return DHEEmbedding(**args)


def reference_hash(x, params, prime, m):
    """Python big-int reference: limbs of the 64-bit pattern, then ((a.x + b) mod p) mod m."""
    u = int(x) & (2 ** 64 - 1)
    limbs = (u & (2 ** 22 - 1), (u >> 22) & (2 ** 21 - 1), (u >> 43) & (2 ** 21 - 1))
    return [((a0 * limbs[0] + a1 * limbs[1] + a2 * limbs[2] + b) % prime) % m
            for a0, a1, a2, b in (map(int, row) for row in params)]


IDS = np.array([[0, 1], [5, -5], [2 ** 62 + 3, -2 ** 63], [P, 2 * P + 1]], dtype=np.int64)


def test_uniform_encoding_matches_reference_and_range():
    layer = small()
    code = layer.encode(tf.constant(IDS)).numpy()
    assert code.shape == (4, 2, 8) and code.dtype == np.float32
    for idx in np.ndindex(IDS.shape):
        h = np.array(reference_hash(IDS[idx], layer.hash_params, P, 97), dtype=np.float64)
        np.testing.assert_allclose(code[idx], 2 * h / 96 - 1, rtol=0, atol=1e-7)
    assert code.min() >= -1.0 and code.max() <= 1.0


def test_encoding_is_deterministic_across_instances_and_calls():
    a, b = small(), small()
    x = tf.constant(IDS)
    np.testing.assert_array_equal(a.encode(x), b.encode(x))
    np.testing.assert_array_equal(a.encode(x), a.encode(x))
    other_seed = small(seed=8)
    assert not np.array_equal(a.encode(x), other_seed.encode(x))


def test_distinct_ids_give_distinct_codes_even_when_congruent_mod_p():
    layer = small(num_hashes=16, num_buckets=1_000_000)
    rng = np.random.RandomState(0)
    ids = np.unique(np.concatenate([rng.randint(-2 ** 62, 2 ** 62, size=300, dtype=np.int64),
                                    np.array([3, 3 + P, 3 + 2 * P, 3 - P])]))
    codes = layer.encode(tf.constant(ids)).numpy()
    assert len({c.tobytes() for c in codes}) == len(ids)


def test_gaussian_encoding_is_roughly_standard_normal():
    layer = small(num_hashes=2048, num_buckets=1_000_000, encoding="gaussian")
    code = layer.encode(tf.constant([12345], tf.int64)).numpy().ravel()
    assert np.all(np.isfinite(code))
    assert abs(code.mean()) < 0.1 and abs(code.std() - 1.0) < 0.1


def test_encoder_has_no_weights_only_the_decoder_is_trained():
    layer = small(hidden_units=(6, 5))
    layer(tf.constant(IDS))
    n_vars_before = len(layer.weights)
    layer.encode(tf.constant(IDS))
    assert len(layer.weights) == n_vars_before
    # 3 Dense (kernel + bias) + 2 BatchNorm (gamma, beta) trainable; 2 x moving stats not.
    assert len(layer.trainable_weights) == 3 * 2 + 2 * 2
    assert len(layer.non_trainable_weights) == 2 * 2
    names = [w.name for w in layer.trainable_weights]
    assert all(("hidden_" in n) or ("batch_norm_" in n) or ("output" in n) for n in names)


def test_output_shapes_and_unseen_ids_are_valid():
    layer = small()
    assert layer(tf.constant([1, 2, 3], tf.int64)).shape == (3, 3)
    out = layer(tf.constant(IDS), training=False).numpy()
    assert out.shape == (4, 2, 3) and np.all(np.isfinite(out))
    # int32 ids give the same output as the same ids in int64 (same batch shape, so the
    # dense layers run the same kernels and the outputs match bit for bit).
    np.testing.assert_array_equal(layer(tf.constant(IDS[:2], tf.int32), training=False),
                                  layer(tf.constant(IDS[:2]), training=False))


def test_hash_params_survive_config():
    layer = small()
    cfg = layer.get_config()
    assert cfg["prime"] == P and np.array_equal(cfg["hash_params"], layer.hash_params)
    clone = DHEEmbedding.from_config(cfg)
    np.testing.assert_array_equal(clone.encode(tf.constant(IDS)), layer.encode(tf.constant(IDS)))


@pytest.mark.parametrize("kw", [
    dict(output_dim=0), dict(num_hashes=-1), dict(num_buckets=1), dict(num_buckets=P + 1),
    dict(prime=2 ** 31 - 3), dict(prime=2 ** 61 - 1), dict(encoding="cauchy"),
    dict(encoding="gaussian", num_hashes=7), dict(hidden_units=5), dict(hidden_units=(4, 0)),
    dict(hash_params=[[1, 2, 3, 4]]), dict(hash_params=np.full((8, 4), P)),
    dict(hash_params=np.full((8, 4), 1.5)), dict(seed=1.9), dict(seed="x"), dict(seed=None),
    dict(seed=-1), dict(seed=2 ** 32),
])
def test_bad_arguments_raise_value_error_naming_them(kw):
    arg = next(iter(kw))
    with pytest.raises(ValueError, match=arg):
        small(**kw)


def test_non_integer_ids_rejected():
    with pytest.raises(ValueError, match="integer"):
        small()(tf.constant([1.0, 2.0]))


def test_generic_layer_properties(tmp_path):
    x = tf.constant(IDS)
    for encoding in ("uniform", "gaussian"):
        layer = small(encoding=encoding)
        layer(x, training=True)  # move the BatchNorm statistics away from their initial values
        assert_batch_independent(layer, x)
        assert_config_round_trip(layer, x)
        assert_finite_gradients(layer, x)
    assert_saved_model_reload(small(), x, tmp_path)
