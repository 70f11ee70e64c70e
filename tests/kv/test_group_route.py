"""DrlKvGroupRoute: the distinct ids of several features routed to their shards."""
import numpy as np
import pytest

from deeprec_lite.compat import tf
from deeprec_lite.kv import op_library


def route(ids, num_shards):
    return op_library.load().drl_kv_group_route(ids, M=sum(num_shards), num_shards=num_shards)


def reference(ids, num_shards, dtype):
    """Per shard: (the distinct ids in order of first occurrence, their counts), by plain
    Python; each id's shard from DrlKvShardIndex."""
    distinct = list(dict.fromkeys(ids))
    keys = tf.constant(distinct, dtype, shape=[len(distinct)])
    shard = op_library.load().drl_kv_shard_index(keys, num_shards=num_shards).numpy()
    return [([k for k, t in zip(distinct, shard) if t == s],
             [ids.count(k) for k, t in zip(distinct, shard) if t == s])
            for s in range(num_shards)]


def check(ids, num_shards, dtype):
    """The op's keys, counts and index for features `ids` against reference()."""
    if dtype == tf.string:
        ids = [[v.encode() for v in x] for x in ids]
    out = route([tf.constant(x, dtype, shape=[len(x)]) for x in ids], num_shards)
    first = 0
    for x, n, index in zip(ids, num_shards, out.index):
        keys = [k.numpy().tolist() for k in out.keys[first:first + n]]
        counts = [c.numpy().tolist() for c in out.counts[first:first + n]]
        assert list(zip(keys, counts)) == [tuple(r) for r in reference(x, n, dtype)]
        # each id is found again at its index among the concatenated shards' keys
        joined = sum(keys, [])
        assert [joined[i] for i in index.numpy()] == x
        first += n


def test_int64_features_with_repeats_and_different_shard_counts():
    rng = np.random.default_rng(0)
    ids = [rng.integers(-50, 50, 400).tolist(), rng.integers(0, 7, 30).tolist(), [9], []]
    check(ids, [3, 2, 1, 4], tf.int64)


def test_string_features():
    rng = np.random.default_rng(1)
    words = [f"w{i}" for i in range(40)]
    ids = [[words[i] for i in rng.integers(0, 40, 200)], ["", "a", "", "b", "a"]]
    check(ids, [4, 2], tf.string)


def test_bad_attributes_and_ids_are_named():
    with pytest.raises(tf.errors.InvalidArgumentError,
                       match=r"num_shards needs one entry per feature \(2\), got 1"):
        op_library.load().drl_kv_group_route([tf.constant([1], tf.int64)] * 2, M=2,
                                              num_shards=[2])
    with pytest.raises(tf.errors.InvalidArgumentError, match="num_shards must be >= 1, got 0"):
        op_library.load().drl_kv_group_route([tf.constant([1], tf.int64)], M=1, num_shards=[0])
    with pytest.raises(tf.errors.InvalidArgumentError,
                       match=r"M must be the sum of num_shards \(3\), got 2"):
        op_library.load().drl_kv_group_route([tf.constant([1], tf.int64)], M=2, num_shards=[3])
    with pytest.raises(tf.errors.InvalidArgumentError,
                       match=r"ids\[0\] must be a vector, got shape \[1,1\]"):
        route([tf.constant([[1]], tf.int64)], [2])
