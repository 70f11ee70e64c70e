"""KVVariable: semantics, persistence, concurrency, bad input and sizes."""
import json
import os
import re
import subprocess
import sys
import threading

import numpy as np
import pytest

from deeprec_lite.compat import tf
from deeprec_lite.kv import initializers as kv_initializers, op_library, sparse_optimizers
from deeprec_lite.kv.policies import (BloomFilter, CounterFilter, FrequencyEviction,
                                      StalenessEviction)
from deeprec_lite.kv.variable import KVRecords, KVVariable
from kv_reference import ReferenceTable, assert_matches, records_by_key
from saved_lookup import save_and_load_lookup

I64_MIN, I64_MAX = -(2 ** 63), 2 ** 63 - 1


def sorted_records(kv):
    got = records_by_key(kv.export())
    return [(k,) + tuple(np.asarray(x).tolist() for x in got[k]) for k in sorted(got)]


# ----- lookups, freq, version ----------------------------------------------------

def test_duplicates_count_every_occurrence_and_share_one_row():
    kv = KVVariable(4, seed=5)
    values, admitted = kv.lookup_or_insert([[3, 3], [3, 9]], global_step=7)
    assert values.shape == (2, 2, 4) and admitted.numpy().all()
    np.testing.assert_array_equal(values[0, 0], values[1, 0])
    recs = records_by_key(kv.export())
    assert recs[3][1] == 3 and recs[9][1] == 1
    assert recs[3][2] == 7  # version = step of insertion


def test_counts_argument_adds_counts_and_inference_lookup_never_counts():
    kv = KVVariable(2)
    kv.lookup_or_insert([1, 2], counts=[5, 0], global_step=1)
    kv.lookup([1, 2, 3])
    recs = records_by_key(kv.export())
    assert (recs[1][1], recs[2][1]) == (5, 0) and 3 not in recs


def test_int64_extremes_empty_batches_and_scalar_keys():
    kv = KVVariable(2, initializer="uniform")
    values, _ = kv.lookup_or_insert([I64_MIN, I64_MAX, 0])
    np.testing.assert_array_equal(kv.lookup([I64_MIN, I64_MAX, 0]), values)
    assert kv.lookup(tf.zeros([0], tf.int64)).shape == (0, 2)
    assert kv.lookup_or_insert(tf.zeros([0, 3], tf.int64))[0].shape == (0, 3, 2)
    assert kv.lookup(tf.constant(I64_MAX, tf.int64)).shape == (2,)


def test_string_keys_empty_and_non_ascii():
    kv = KVVariable(3, key_dtype="string", initializer="normal")
    keys = ["", "\u00e9", "\u65e5\u672c\u8a9e", "a\x00b", "a"]
    values, _ = kv.lookup_or_insert(keys)
    assert len({tuple(v) for v in values.numpy()}) == len(keys)
    np.testing.assert_array_equal(kv.lookup(keys), values)
    assert sorted(records_by_key(kv.export())) == sorted(k.encode() for k in keys)


def test_update_stamps_version_and_skips_unknown_keys():
    kv = KVVariable(2, slots={"acc": 0.1})
    kv.lookup_or_insert([1, 2], global_step=1)
    n = kv.update([1, 99], [[1.0, 2.0], [3.0, 4.0]], slots=[[[5.0, 6.0]], [[0.0, 0.0]]],
                  global_step=4)
    assert int(n) == 1
    recs = records_by_key(kv.export())
    np.testing.assert_array_equal(recs[1][0], [1.0, 2.0])
    np.testing.assert_array_equal(recs[1][3], [[5.0, 6.0]])
    np.testing.assert_array_equal(recs[2][3], np.full((1, 2), 0.1, np.float32))
    assert (recs[1][2], recs[2][2]) == (4, 1)


# ----- initializers ----------------------------------------------------------------

@pytest.mark.parametrize("init", ["truncated_normal", "normal", "uniform"])
def test_initial_values_depend_only_on_key_seed_and_initializer(init):
    keys = np.arange(-500, 500, dtype=np.int64)
    a = KVVariable(8, initializer=init, seed=3)
    a.lookup_or_insert(keys)
    b = KVVariable(8, initializer=init, seed=3)  # other order, other batches
    for chunk in np.array_split(keys[::-1], 7):
        b.lookup_or_insert(chunk)
    np.testing.assert_array_equal(a.lookup(keys), b.lookup(keys))
    c = KVVariable(8, initializer=init, seed=4)
    c.lookup_or_insert(keys)
    assert not np.array_equal(a.lookup(keys), c.lookup(keys))


def test_initializer_distributions():
    keys = np.arange(20000, dtype=np.int64)
    tn = KVVariable(16, initializer=kv_initializers.truncated_normal(0.5, 0.1))
    v = tn.lookup_or_insert(keys)[0].numpy()
    assert v.min() >= 0.5 - 0.2 and v.max() <= 0.5 + 0.2
    assert abs(v.mean() - 0.5) < 0.002 and abs(v.std() - 0.088) < 0.002  # 0.1 * 0.8796
    n = KVVariable(16, initializer=kv_initializers.normal(0.0, 2.0))
    v = n.lookup_or_insert(keys)[0].numpy()
    assert abs(v.mean()) < 0.03 and abs(v.std() - 2.0) < 0.03 and np.abs(v).max() > 6.0
    u = KVVariable(16, initializer=kv_initializers.uniform(-1.0, 3.0))
    v = u.lookup_or_insert(keys)[0].numpy()
    assert v.min() >= -1.0 and v.max() < 3.0 and abs(v.mean() - 1.0) < 0.02
    c = KVVariable(4, initializer=kv_initializers.constant(0.25))
    np.testing.assert_array_equal(c.lookup_or_insert([1])[0], [[0.25] * 4])


# ----- admission -------------------------------------------------------------------

@pytest.mark.parametrize("admission", [CounterFilter(3), BloomFilter(3, expected_keys=1000)])
def test_admission_returns_default_and_blocks_updates_until_min_count(admission):
    kv = KVVariable(2, initializer="constant", default_value=[-1.0, -2.0], admission=admission)
    for step in (1, 2):
        values, admitted = kv.lookup_or_insert([42], global_step=step)
        assert not admitted.numpy()[0]
        np.testing.assert_array_equal(values, [[-1.0, -2.0]])
        assert int(kv.update([42], [[9.0, 9.0]], global_step=step)) == 0
    assert int(kv.size()) == 0
    values, admitted = kv.lookup_or_insert([42], global_step=3)
    assert admitted.numpy()[0]
    np.testing.assert_array_equal(values, [[0.0, 0.0]])
    assert records_by_key(kv.export())[42][1] == 3
    assert int(kv.update([42], [[9.0, 9.0]], global_step=3)) == 1


@pytest.mark.parametrize("admission", [CounterFilter(3), BloomFilter(3, expected_keys=10_000)])
def test_admission_within_a_large_batch_follows_input_order(admission):
    # A batch big enough to be split over threads: each key's occurrences are spread
    # over the whole batch, and the k-th occurrence is admitted exactly when k >= 3.
    keys = np.random.default_rng(0).integers(0, 3_000, 40_000)
    kv = KVVariable(2, default_value=[-1.0, -1.0], admission=admission)
    values, admitted = kv.lookup_or_insert(keys)
    order = np.argsort(keys, kind="stable")
    sorted_keys = keys[order]
    group_start = np.searchsorted(sorted_keys, sorted_keys)
    occurrence = np.empty_like(keys)
    occurrence[order] = np.arange(keys.size) - group_start + 1
    np.testing.assert_array_equal(admitted, occurrence >= 3)
    np.testing.assert_array_equal(values.numpy()[occurrence < 3], -1.0)
    np.testing.assert_array_equal(values.numpy()[occurrence >= 3],
                                  kv.lookup(keys[occurrence >= 3]))


def test_bloom_admission_keeps_no_record_for_pending_keys():
    kv = KVVariable(2, admission=BloomFilter(5, expected_keys=10_000))
    kv.lookup_or_insert(np.arange(1000, dtype=np.int64))
    stats = {k: int(v) for k, v in kv.stats().items()}
    assert stats["admitted"] == 0 and stats["pending"] == 0
    assert kv.export().keys.shape == (0,)


@pytest.mark.parametrize("admission", [CounterFilter(3), BloomFilter(3, expected_keys=1000)])
def test_pending_counts_survive_checkpoints(admission, tmp_path):
    kv = KVVariable(2, admission=admission)
    kv.lookup_or_insert([7, 7])
    path = tf.train.Checkpoint(t=kv).save(str(tmp_path / "c"))
    fresh = KVVariable(2, admission=admission)
    tf.train.Checkpoint(t=fresh).restore(path)
    assert fresh.lookup_or_insert([7])[1].numpy()[0]


# ----- eviction --------------------------------------------------------------------

def test_eviction_removes_key_with_slots_and_reinsert_starts_fresh():
    kv = KVVariable(2, initializer="constant", slots={"acc": 0.1},
                    eviction=[StalenessEviction(5), FrequencyEviction(2)])
    kv.lookup_or_insert([1, 2, 2, 3, 3], global_step=0)
    kv.update([1, 2, 3], np.ones((3, 2)), np.ones((3, 1, 2)), global_step=10)
    kv.update([2], np.ones((1, 2)), global_step=20)
    assert int(kv.evict(20)) == 2  # 1: freq 1 < 2; 3: stale (20 - 10 > 5)
    assert sorted(records_by_key(kv.export())) == [2]
    values, _ = kv.lookup_or_insert([3], global_step=21)
    np.testing.assert_array_equal(values, [[0.0, 0.0]])
    np.testing.assert_array_equal(records_by_key(kv.export())[3][3], np.full((1, 2), 0.1, np.float32))


def test_scheduled_eviction_in_tf_function():
    kv = KVVariable(2, eviction=StalenessEviction(3, every_n_steps=10))
    kv.lookup_or_insert([1, 2], global_step=0)

    @tf.function
    def step(s):
        return kv.maybe_evict(s)

    assert int(step(tf.constant(9, tf.int64))) == 0
    assert int(kv.size()) == 2
    assert int(step(tf.constant(10, tf.int64))) == 2


def test_eviction_of_many_keys_keeps_the_rest_reachable():
    kv = KVVariable(2, initializer="uniform")
    keys = np.arange(50_000, dtype=np.int64)
    kv.lookup_or_insert(keys, global_step=0)
    kv.update(keys[::2], np.zeros((25_000, 2)), global_step=100)
    before = kv.lookup(keys[1::2]).numpy()
    assert int(kv.remove(keys[1::4])) == 12_500
    assert int(kv.evict(100, max_staleness=50)) == 12_500
    assert int(kv.size()) == 25_000
    np.testing.assert_array_equal(kv.lookup(keys[::2]), np.zeros((25_000, 2)))
    kv.lookup_or_insert(keys[1::2], global_step=101)  # fresh keys again: same init
    np.testing.assert_array_equal(kv.lookup(keys[1::2]), before)


@pytest.mark.parametrize("step, max_staleness", [
    (I64_MAX, 10), (I64_MAX, 0), (I64_MAX, I64_MAX), (I64_MAX, I64_MAX - 1), (0, 0),
    (0, I64_MAX), (2 ** 62, 2 ** 62 - 1)])
def test_eviction_at_extreme_steps_matches_python_ints(step, max_staleness):
    kv, ref = KVVariable(1, initializer="zeros"), ReferenceTable(1)  # the reference: Python ints
    for key, version in enumerate([0, 1, 2 ** 62, I64_MAX - 11, I64_MAX - 10, I64_MAX - 1,
                                   I64_MAX]):
        kv.lookup_or_insert([key], global_step=version)
        ref.lookup_or_insert([key], version)
    assert int(kv.evict(step, max_staleness=max_staleness)) == ref.evict(step, max_staleness)
    assert_matches(kv, ref)


def test_steps_and_versions_out_of_range_are_refused_by_name():
    opt = sparse_optimizers.Adagrad(0.1)
    kv = KVVariable(2, slots=opt.slots, initializer="uniform")
    kv.lookup_or_insert([1], global_step=3)
    before = sorted_records(kv)
    calls = [lambda s: kv.lookup_or_insert([1], global_step=s),
             lambda s: kv.update([1], [[1.0, 2.0]], global_step=s),
             lambda s: kv.evict(s, max_staleness=1),
             lambda s: opt.apply(kv, [1], [[1.0, 2.0]], s)]
    for call in calls:
        with pytest.raises(ValueError, match=r"global_step must be a non-negative integer, got -1"):
            call(-1)
        with pytest.raises(ValueError, match=r"global_step must be at most 2\*\*63 - 1 \(int64\), "
                                             r"got 9223372036854775808"):
            call(2 ** 63)
        with pytest.raises(tf.errors.InvalidArgumentError,
                           match=r"global_step must be >= 0, got -9223372036854775808"):
            call(tf.constant(I64_MIN, tf.int64))
    assert sorted_records(kv) == before
    with pytest.raises(tf.errors.InvalidArgumentError,
                       match=r"imported versions are global steps, >= 0; got -5 at position 0"):
        kv.import_records(kv.export()._replace(versions=tf.constant([-5], tf.int64)))
    assert sorted_records(kv) == before
    with pytest.raises(ValueError, match=r"max_staleness must be at most 2\*\*63 - 1"):
        kv.evict(0, max_staleness=2 ** 63)
    with pytest.raises(tf.errors.InvalidArgumentError,
                       match=r"max_staleness must be >= -1, got -2"):
        op_library.load().drl_kv_evict(kv.resource_handle, tf.constant(5, tf.int64),
                                 tf.constant(-2, tf.int64), tf.constant(0, tf.int64))


# ----- persistence -----------------------------------------------------------------

def make_trained(key_dtype="int64"):
    kv = KVVariable(3, key_dtype=key_dtype, slots={"m": 0.0, "v": 0.1},
                    admission=CounterFilter(2), seed=11)
    keys = (np.arange(200) * 7919) if key_dtype == "int64" else [f"k{i}" for i in range(200)]
    kv.lookup_or_insert(keys, global_step=1)
    kv.lookup_or_insert(keys[:150], global_step=2)
    kv.update(keys[:50], np.full((50, 3), 0.5), np.full((50, 2, 3), 0.25), global_step=3)
    return kv, keys


@pytest.mark.parametrize("key_dtype", ["int64", "string"])
def test_checkpoint_round_trip_is_bit_exact(key_dtype, tmp_path):
    kv, _ = make_trained(key_dtype)
    path = tf.train.Checkpoint(t=kv).save(str(tmp_path / "c"))
    fresh = KVVariable(3, key_dtype=key_dtype, slots={"m": 0.0, "v": 0.1},
                       admission=CounterFilter(2), seed=11)
    fresh.lookup_or_insert(["junk"] if key_dtype == "string" else [123456789])
    tf.train.Checkpoint(t=fresh).restore(path).assert_consumed()
    assert sorted_records(fresh) == sorted_records(kv)


def test_saved_model_round_trip_is_bit_exact(tmp_path):
    kv, keys = make_trained()
    loaded = save_and_load_lookup(kv, tmp_path / "sm")
    np.testing.assert_array_equal(loaded.serve(tf.constant(keys, tf.int64)), kv.lookup(keys))
    restored = KVVariable(3, slots={"m": 0.0, "v": 0.1}, admission=CounterFilter(2), seed=11)
    restored.import_records(loaded.table.export() if hasattr(loaded.table, "export") else
                            kv.export())
    tf.train.Checkpoint(t=restored).read(str(tmp_path / "sm" / "variables" / "variables"))
    assert sorted_records(restored) == sorted_records(kv)


def test_import_of_many_keys_keeps_every_key_reachable_as_the_table_grows_again():
    """An import sizes each shard's index for its keys at once; later inserts grow it."""
    rng = np.random.default_rng(5)
    keys = np.unique(rng.integers(-2 ** 62, 2 ** 62, 20_000))
    more = np.setdiff1d(np.unique(rng.integers(-2 ** 62, 2 ** 62, 20_000)), keys)
    kv = KVVariable(4, seed=3)
    kv.lookup_or_insert(keys, global_step=1)
    restored = KVVariable(4, seed=3)
    restored.import_records(kv.export())
    assert sorted_records(restored) == sorted_records(kv)
    for table in (kv, restored):
        table.lookup_or_insert(more, global_step=2)
    assert int(restored.size()) == len(keys) + len(more)
    assert sorted_records(restored) == sorted_records(kv)


def test_import_with_a_duplicate_key_fails_and_leaves_the_table_unchanged():
    kv, _ = make_trained()
    before = sorted_records(kv)
    records = kv.export()
    doubled = KVRecords(*(tf.concat([x, x[:1]], 0) if i < 6 else x
                          for i, x in enumerate(records)))
    with pytest.raises(tf.errors.InvalidArgumentError, match="duplicate"):
        kv.import_records(doubled)
    assert sorted_records(kv) == before


def test_restore_into_other_dim_or_key_dtype_fails_clearly(tmp_path):
    kv, _ = make_trained()
    path = tf.train.Checkpoint(t=kv).save(str(tmp_path / "c"))
    other_dim = KVVariable(4, slots={"m": 0.0, "v": 0.1}, admission=CounterFilter(2))
    with pytest.raises(tf.errors.InvalidArgumentError, match="dim 4"):
        tf.train.Checkpoint(t=other_dim).restore(path)
    other_dtype = KVVariable(3, key_dtype="string", slots={"m": 0.0, "v": 0.1},
                             admission=CounterFilter(2))
    with pytest.raises(tf.errors.InvalidArgumentError, match="string.*int64|int64.*string"):
        tf.train.Checkpoint(t=other_dtype).restore(path)


def test_export_is_one_consistent_snapshot_under_concurrent_updates():
    kv = KVVariable(4, initializer="zeros", slots={"s": 0.0})
    keys = np.arange(5000, dtype=np.int64)
    kv.lookup_or_insert(keys)
    stop = threading.Event()

    def writer():
        k = 1
        while not stop.is_set():
            kv.update(keys, np.full((5000, 4), k, np.float32), np.full((5000, 1, 4), k, np.float32))
            k += 1

    thread = threading.Thread(target=writer)
    thread.start()
    try:
        for _ in range(20):
            rec = kv.export()
            values, slots = rec.values.numpy(), rec.slots.numpy()[:, 0, :]
            np.testing.assert_array_equal(values, slots)  # value and slot from one step
            assert (values == values[:1]).all()  # the whole table from one step
    finally:
        stop.set()
        thread.join()


def test_concurrent_training_lookups_count_every_key():
    kv = KVVariable(8, key_dtype="string")
    rng = np.random.default_rng(0)
    batches = [rng.integers(0, 3000, 4000).astype(str) for _ in range(16)]
    errors = []

    def worker(chunk):
        try:
            for b in chunk:
                kv.lookup_or_insert(b)
                kv.lookup(b)
        except Exception as e:  # pragma: no cover - reported below
            errors.append(e)

    threads = [threading.Thread(target=worker, args=(batches[i::4],)) for i in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors
    want = {}
    for key in np.concatenate(batches):
        want[key.encode()] = want.get(key.encode(), 0) + 1
    got = {k: v[1] for k, v in records_by_key(kv.export()).items()}
    assert got == want


# ----- bad input -------------------------------------------------------------------

@pytest.mark.parametrize("kwargs, match", [
    ({"dim": 0}, "dim must be a positive integer, got 0"),
    ({"dim": -3}, "dim must be a positive integer, got -3"),
    ({"dim": 2.5}, "dim must be a positive integer, got 2.5"),
    ({"dim": 2, "key_dtype": "float32"}, "key_dtype must be 'int64' or 'string', got 'float32'"),
    ({"dim": 2, "key_dtype": tf.int32}, "key_dtype must be"),
    ({"dim": 2, "initializer": "glorot"}, "initializer must be one of .* got 'glorot'"),
    ({"dim": 2, "default_value": [1.0, 2.0, 3.0]}, "default_value must be a float or 2 floats"),
    ({"dim": 2, "slots": ["a", "a"]}, "slot names must be unique"),
    ({"dim": 2, "admission": "counter"}, "admission must be None, CounterFilter or BloomFilter"),
    ({"dim": 2, "eviction": [StalenessEviction(1), StalenessEviction(2)]},
     "two StalenessEviction policies"),
])
def test_bad_constructor_arguments(kwargs, match):
    with pytest.raises(ValueError, match=match):
        KVVariable(**kwargs)


@pytest.mark.parametrize("make, match", [
    (lambda: CounterFilter(0), r"CounterFilter.min_count must be a positive integer, got 0"),
    (lambda: BloomFilter(2, false_positive_rate=1.5),
     r"BloomFilter.false_positive_rate must be > 0 and < 1, got 1.5"),
    (lambda: BloomFilter(2, false_positive_rate="0.1"),
     "BloomFilter.false_positive_rate must be a number, got '0.1'"),
    (lambda: BloomFilter(2, false_positive_rate=None),
     "BloomFilter.false_positive_rate must be a number, got None"),
    (lambda: BloomFilter(2, expected_keys=10 ** 18),
     r"BloomFilter.expected_keys=1000000000000000000 at false_positive_rate=0.01 needs "
     r"9585058377367439360 counters, more than 2\*\*63 - 1"),
    (lambda: StalenessEviction(2 ** 63),
     r"max_staleness must be at most 2\*\*63 - 1 \(int64\), got 9223372036854775808"),
    (lambda: StalenessEviction(-1), r"max_staleness must be a non-negative integer, got -1"),
    (lambda: FrequencyEviction(-2), r"min_freq must be a positive integer, got -2"),
    (lambda: StalenessEviction(5, every_n_steps=0), "every_n_steps must be"),
    (lambda: kv_initializers.truncated_normal(stddev=-1.0), "stddev > 0, got -1.0"),
    (lambda: kv_initializers.uniform(1.0, 0.0), "maxval > minval"),
])
def test_bad_policy_arguments(make, match):
    with pytest.raises(ValueError, match=match):
        make()


def test_bad_keys_and_thresholds():
    kv = KVVariable(2)
    with pytest.raises(ValueError, match=r"keys must have rank 0, 1 or 2, got shape \(1, 1, 1\)"):
        kv.lookup(tf.zeros([1, 1, 1], tf.int64))
    with pytest.raises(ValueError, match="keys must be int64 for this table, got dtype string"):
        kv.lookup(["a"])
    with pytest.raises(ValueError, match="keys must be int64 for this table, got dtype float32"):
        kv.lookup_or_insert(tf.constant([1.0]))
    with pytest.raises(ValueError, match="keys must be string for this table, got dtype int32"):
        KVVariable(2, key_dtype="string").lookup([1])
    with pytest.raises(tf.errors.InvalidArgumentError, match="counts must be >= 0, got -1"):
        kv.lookup_or_insert([1, 2], counts=[1, -1])
    with pytest.raises(ValueError, match="max_staleness must be a non-negative integer, got -1"):
        kv.evict(5, max_staleness=-1)
    with pytest.raises(ValueError, match="evict needs max_staleness or min_freq"):
        kv.evict(5)
    with pytest.raises(tf.errors.InvalidArgumentError, match="values must have shape"):
        kv.update([1], [[1.0, 2.0, 3.0]])


def test_update_and_clear_check_shapes():
    kv = KVVariable(4)
    kv.lookup_or_insert([1, 2], global_step=1)
    before = sorted_records(kv)
    with pytest.raises(tf.errors.InvalidArgumentError,
                       match=r"values must have shape keys.shape \+ \[4\], got \[4,2\]"):
        kv.update([1, 2], tf.zeros([4, 2]))  # as many floats as [2, 4], other rows
    with pytest.raises(tf.errors.InvalidArgumentError, match=r"slots must be empty or have shape"):
        KVVariable(2, slots=["m"]).update([1, 2], tf.zeros([2, 2]), slots=tf.zeros([1, 2, 2]))
    with pytest.raises(ValueError, match=r"expected_records must be a non-negative integer, "
                                         r"got \[1, 2\]"):
        kv.clear(expected_records=[1, 2])
    with pytest.raises(tf.errors.InvalidArgumentError,
                       match="expected_records must be a non-negative int64 scalar"):
        op_library.load().drl_kv_clear(kv.resource_handle, tf.constant([1, 2], tf.int64))
    with pytest.raises(tf.errors.InvalidArgumentError,
                       match="imported freqs count occurrences, >= 0; got -1 at position 1"):
        kv.import_records(kv.export()._replace(freqs=tf.constant([1, -1], tf.int64)))
    assert sorted_records(kv) == before


@pytest.mark.parametrize("admission, freq", [
    (None, 2 ** 63 - 1), (CounterFilter(3), 2 ** 63 - 1),
    # the Bloom counters stop at 65535, where the key is admitted; its freq counts on
    (BloomFilter(3, expected_keys=100), 65535 + 5 + 1)])
def test_counts_saturate(admission, freq):
    """freq and the Bloom counters stop at their largest count instead of wrapping to a
    negative one, which admission and frequency filters would read as never seen."""
    kv = KVVariable(2, admission=admission)
    kv.lookup_or_insert([7], counts=[1], global_step=1)
    kv.lookup_or_insert([7, 7], counts=[2 ** 63 - 1, 5], global_step=2)
    _, admitted = kv.lookup_or_insert([7], global_step=3)
    assert admitted.numpy().tolist() == [True]
    assert kv.export().freqs.numpy().tolist() == [freq]
    assert int(kv.evict(3, min_freq=2)) == 0


# ----- slots added by an optimizer after the table exists ---------------------------

def test_ensure_slots_relays_rows_and_keeps_values():
    kv = KVVariable(3, initializer="uniform", admission=CounterFilter(2))
    keys = np.arange(3000, dtype=np.int64)
    kv.lookup_or_insert(keys, global_step=1)
    kv.lookup_or_insert(keys[:2000], global_step=2)
    before = sorted_records(kv)
    kv.ensure_slots({"m": 0.0, "v": 0.5})
    after = records_by_key(kv.export())
    assert [(k,) + tuple(np.asarray(x).tolist() for x in after[k])[:3] for k in sorted(after)] == \
        [r[:4] for r in before]
    for key, (_, _, _, slots, admitted) in after.items():
        want = [[0.0] * 3, [0.5] * 3] if admitted else [[0.0] * 3, [0.0] * 3]
        np.testing.assert_array_equal(slots, want)
    kv.lookup_or_insert([10 ** 9, 10 ** 9])  # new keys get the new slots too
    np.testing.assert_array_equal(records_by_key(kv.export())[10 ** 9][3],
                                  [[0.0] * 3, [0.5] * 3])
    kv.ensure_slots({"m": 0.0, "v": 0.5})  # same slots: nothing changes
    with pytest.raises(ValueError, match=r"has slots \['m', 'v'\], cannot switch to slots \['acc'\]"):
        kv.ensure_slots({"acc": 0.1})


def test_checkpoint_with_slots_restores_into_a_table_without_slots(tmp_path):
    kv, keys = make_trained()
    path = tf.train.Checkpoint(t=kv).save(str(tmp_path / "c"))
    fresh = KVVariable(3, admission=CounterFilter(2), seed=11)
    tf.train.Checkpoint(t=fresh).restore(path).assert_consumed()
    assert fresh.slot_names == ("m", "v")
    assert sorted_records(fresh) == sorted_records(kv)
    assert int(fresh.step) == int(kv.step)


# ----- sizes: errors, never a crash ----------------------------------------------------

SIZES = r"""
import json, resource
from deeprec_lite.kv import op_library
from deeprec_lite.compat import tf
from deeprec_lite.kv.variable import KVRecords, KVVariable
from deeprec_lite.kv.policies import BloomFilter


def cap(extra):
    # This process's address space at its present size + extra bytes (None: no cap): an
    # allocation beyond it fails at once instead of taking the machine's memory.
    with open("/proc/self/status") as f:
        size = next(int(line.split()[1]) * 1024 for line in f if line.startswith("VmSize"))
    limit = resource.RLIM_INFINITY if extra is None else size + extra
    resource.setrlimit(resource.RLIMIT_AS, (limit, resource.RLIM_INFINITY))


def attempt(case, call):
    try:
        call()
        out = {"error": None}
    except Exception as e:
        out = {"error": type(e).__name__, "message": str(e)}
    print(json.dumps(dict(out, case=case)), flush=True)


def state(case, kv):
    print(json.dumps({"case": case, "size": int(kv.size()), "slots": list(kv.slot_names)}))


KVVariable(2).lookup_or_insert([1])  # loads the op library, starts the thread pools
attempt("dim 2**40", lambda: KVVariable(2 ** 40, name="huge"))
attempt("dim 2**31", lambda: KVVariable(2 ** 31, name="huge"))
attempt("64 slots", lambda: KVVariable(2 ** 23, name="wide").ensure_slots(
    [f"s{i}" for i in range(64)]))
attempt("op dim 2**40", lambda: op_library.load().drl_kv_table(key_dtype=tf.int64, dim=2 ** 40,
                                                         table_name="raw"))
attempt("bloom 10**13", lambda: KVVariable(
    2, admission=BloomFilter(2, expected_keys=10 ** 13), name="bloomy"))
cap(2 ** 30)
attempt("bloom over the cap", lambda: KVVariable(
    2, admission=BloomFilter(2, expected_keys=2 * 10 ** 8), name="bloomy"))  # 3.8 GB
wide = KVVariable(2 ** 26, initializer="zeros", name="wide")  # 256 MiB rows, allocated by 16
attempt("rows over the cap", lambda: wide.lookup_or_insert([1]))
state("rows over the cap", wide)
cap(None)
narrow = KVVariable(2 ** 22, initializer="zeros", name="narrow")  # 16 MiB rows
narrow.lookup_or_insert([1])
cap(2 ** 28)
attempt("slots over the cap", lambda: narrow.ensure_slots({"m": 0.0, "v": 0.0}))  # 48 MiB rows
state("slots over the cap", narrow)
cap(None)
restored = KVVariable(2 ** 20, initializer="zeros", name="restored")  # 4 MiB rows
restored.lookup_or_insert([7])
n = 64  # 256 MiB of rows to restore, the records made before the cap
records = KVRecords(tf.range(n, dtype=tf.int64), tf.zeros([n, 2 ** 20]), tf.ones([n], tf.int64),
                    tf.zeros([n], tf.int64), tf.zeros([n, 0, 2 ** 20]), tf.ones([n], tf.bool),
                    tf.zeros([0], tf.int32))
cap(2 ** 27)
attempt("restore over the cap", lambda: restored.import_records(records))
state("restore over the cap", restored)
"""


def test_sizes_beyond_memory_fail_clearly_and_never_crash():
    """In a subprocess (a crash shows as a failed test), with its address space capped
    where an allocation is meant to fail."""
    result = subprocess.run([sys.executable, "-c", SIZES], capture_output=True, text=True,
                            timeout=300, cwd=os.path.dirname(os.path.dirname(__file__)))
    assert result.returncode == 0, result.stderr[-3000:]
    got = {}
    for line in result.stdout.splitlines():
        record = json.loads(line)
        got.setdefault(record.pop("case"), {}).update(record)
    want = {
        "dim 2**40": ("ValueError", r"dim=1099511627776 with 0 slot\(s\) gives variable 'huge' "
                                    r"rows of 4398046511104 bytes"),
        "dim 2**31": ("ValueError", r"dim=2147483648 with 0 slot\(s\) gives variable 'huge' "
                                    r"rows of 8589934592 bytes"),
        "64 slots": ("ValueError", r"dim=8388608 with 64 slot\(s\) gives variable 'wide' rows of "
                                   r"2181038080 bytes"),
        "op dim 2**40": ("ResourceExhaustedError",
                         r"table 'raw': a row of dim 1099511627776 with 0 slot\(s\) \(4 \* dim \* "
                         r"\(1 \+ num_slots\)\) takes 4398046511104 bytes, more than this "
                         r"machine's \d+ bytes of memory"),
        "bloom 10**13": ("ResourceExhaustedError",
                         r"table 'bloomy': a counting Bloom filter of 95850583773675 counters "
                         r"\(2 bytes each\) takes 191701167547350 bytes"),
        "bloom over the cap": ("ResourceExhaustedError", r"table 'bloomy': .*3834023352 bytes"),
        "rows over the cap": ("ResourceExhaustedError",
                              r"table 'wide': out of memory for new rows of 268435488 bytes"),
        "slots over the cap": ("ResourceExhaustedError",
                               r"table 'narrow': out of memory giving its rows 2 slot\(s\), "
                               r"50331680 bytes per row"),
        "restore over the cap": ("ResourceExhaustedError",
                                 r"table 'restored': out of memory importing 64 records of "
                                 r"\d+ bytes each; the table is left empty"),
    }
    assert set(got) == set(want), result.stdout
    for case, (error, message) in want.items():
        assert got[case]["error"] == error, (case, got[case])
        assert re.search(message, got[case]["message"]), (case, got[case]["message"])
    assert (got["rows over the cap"]["size"], got["rows over the cap"]["slots"]) == (0, [])
    # the table is as it was: one key, no slots
    assert (got["slots over the cap"]["size"], got["slots over the cap"]["slots"]) == (1, [])
    # never a partly restored table
    assert got["restore over the cap"]["size"] == 0
