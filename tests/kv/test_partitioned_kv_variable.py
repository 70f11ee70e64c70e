"""PartitionedKVVariable: the shard hash pinned against a numpy model, equivalence with
an unpartitioned KVVariable under every operation, checkpoints across shard counts
(Bloom filters included), Keras training / save / export / warm start, bad input."""
import numpy as np
import pytest

from deeprec_lite.compat import keras, tf
from deeprec_lite.export import export_embeddings, read_embeddings
from deeprec_lite.kv import TableConfig, op_library, sparse_optimizers
from deeprec_lite.kv.partitioned_variable import PartitionedKVVariable
from deeprec_lite.kv.policies import (BloomFilter, CounterFilter, FrequencyEviction,
                                      StalenessEviction)
from deeprec_lite.kv.variable import KVRecords, KVVariable
from deeprec_lite.layers import KVEmbedding
from deeprec_lite.migration import MIGRATED, warm_start
from deeprec_lite.training import checkpoints, optimizers
from kv_reference import mix64, records_by_key
from saved_lookup import save_and_load_lookup

I64_MIN, I64_MAX = -(2 ** 63), 2 ** 63 - 1
MASK64 = (1 << 64) - 1
SALT = 0x6A09E667F3BCC909
GOLDEN = 0x9E3779B97F4A7C15


# ----- an independent model of the shard hash (ops/key_hash.h, ops/kv_partition_ops.cc) --

def np_mulhi(h, n):
    """(h * n) >> 64 of uint64 h and a small n (< 2**32), as 32-bit halves in uint64."""
    n = np.uint64(n)
    hi, lo = h >> np.uint64(32), h & np.uint64(0xFFFFFFFF)
    return (hi * n + ((lo * n) >> np.uint64(32))) >> np.uint64(32)


def np_int64_shards(keys, num_shards):
    """The shard of every int64 key: HashKey(k) = Mix64(uint64(k)), salted and mixed again."""
    h = mix64(mix64(np.asarray(keys, np.int64).view(np.uint64)) ^ np.uint64(SALT))
    return np_mulhi(h, num_shards).astype(np.int32)


def py_mix64(x):
    x ^= x >> 30
    x = (x * 0xBF58476D1CE4E5B9) & MASK64
    x ^= x >> 27
    x = (x * 0x94D049BB133111EB) & MASK64
    return x ^ (x >> 31)


def py_hash_bytes(b):
    """HashBytes of key_hash.h: 8-byte little-endian words, length-seeded state."""
    n = len(b)
    h = py_mix64(0x243F6A8885A308D3 ^ ((n * GOLDEN) & MASK64))
    i = 0
    while n - i >= 8:
        h = (py_mix64(h ^ int.from_bytes(b[i:i + 8], "little")) + GOLDEN) & MASK64
        i += 8
    return py_mix64(h ^ int.from_bytes(b[i:], "little"))


def py_shard(key, num_shards):
    """The shard of one key (int or str / bytes), with Python integers."""
    if isinstance(key, (int, np.integer)):
        h = py_mix64(int(key) & MASK64)
    else:
        h = py_hash_bytes(key.encode() if isinstance(key, str) else bytes(key))
    return (py_mix64(h ^ SALT) * num_shards) >> 64


def shard_index(keys, num_shards):
    return op_library.load().drl_kv_shard_index(keys, num_shards=num_shards).numpy()


# ----- 1. DrlKvShardIndex ---------------------------------------------------------

INT64_PINNED = np.array([0, -1, I64_MAX, I64_MIN, 1, -2, 42, 10 ** 12, -(10 ** 15),
                         I64_MAX - 1, I64_MIN + 1], np.int64)


@pytest.mark.parametrize("num_shards", [1, 2, 3, 7, 1000])
def test_shard_index_of_int64_keys_matches_the_numpy_model(num_shards):
    rng = np.random.default_rng(num_shards)
    keys = np.concatenate([INT64_PINNED,
                           rng.integers(I64_MIN, I64_MAX, 5000, dtype=np.int64, endpoint=True),
                           np.arange(-500, 500, dtype=np.int64)])
    got = shard_index(tf.constant(keys), num_shards)
    assert got.dtype == np.int32 and got.shape == keys.shape
    np.testing.assert_array_equal(got, np_int64_shards(keys, num_shards))
    # the numpy model and a Python big-integer model agree on the pinned keys
    assert [py_shard(int(k), num_shards) for k in INT64_PINNED] == \
        np_int64_shards(INT64_PINNED, num_shards).tolist()
    counts = np.bincount(got, minlength=num_shards)
    assert len(counts) == num_shards  # nothing out of range
    if num_shards < 100:  # every shard gets about its share
        assert counts.min() > 0.8 * len(keys) / num_shards
    else:
        assert (counts > 0).sum() > 990


def test_shard_index_golden_values_and_shapes():
    # Literal values: a change of the hash (which moves every checkpointed key) fails here
    # even if the numpy model above were changed along with it.
    keys = tf.constant([0, -1, I64_MAX, I64_MIN], tf.int64)
    want = {1: [0, 0, 0, 0], 2: [0, 1, 0, 1], 3: [0, 2, 0, 2], 7: [1, 5, 0, 5]}
    for n, shards in want.items():
        assert shard_index(keys, n).tolist() == shards, n
        assert np_int64_shards(keys.numpy(), n).tolist() == shards, n
    strings = ["", "a", "\u00e9", "abcdefghi"]
    assert shard_index(tf.constant(strings), 7).tolist() == [2, 2, 1, 6]
    assert [py_shard(k, 7) for k in strings] == [2, 2, 1, 6]
    assert shard_index(tf.constant([[5, 6], [7, 8]], tf.int64), 3).shape == (2, 2)
    assert shard_index(tf.constant(9, tf.int64), 3).shape == ()
    assert shard_index(tf.zeros([0, 4], tf.int64), 3).shape == (0, 4)


STRINGS = ["", "a", "\u00e9", "\u65e5\u672c\u8a9e", "a\x00b", "a\x00", "abcdefgh", "abcdefghi",
           "x" * 100, "\U0001f600 emoji"] + [f"user_{i}" for i in range(2000)]


@pytest.mark.parametrize("num_shards", [1, 2, 3, 7])
def test_shard_index_of_string_keys(num_shards):
    got = shard_index(tf.constant(STRINGS), num_shards)
    np.testing.assert_array_equal(got, shard_index(tf.constant(STRINGS), num_shards))  # stable
    assert got.min() >= 0 and got.max() < num_shards
    np.testing.assert_array_equal(got, [py_shard(s, num_shards) for s in STRINGS])
    counts = np.bincount(got, minlength=num_shards)
    assert counts.min() > 0.6 * len(STRINGS) / num_shards
    # a key's shard does not depend on the batch it comes in
    single = [int(shard_index(tf.constant(s), num_shards)) for s in STRINGS[:10]]
    assert single == got[:10].tolist()


def test_shard_index_rejects_fewer_than_one_shard():
    for n in (0, -1):
        with pytest.raises((tf.errors.InvalidArgumentError, ValueError), match="num_shards"):
            shard_index(tf.constant([1], tf.int64), n)


# ----- 2. equivalence with an unpartitioned KVVariable -------------------------------

DIM = 3
OPTIMIZERS = {
    "adagrad": lambda: sparse_optimizers.Adagrad(0.3, initial_accumulator_value=0.2),
    "adam": lambda: sparse_optimizers.Adam(0.05),
    "ftrl": lambda: sparse_optimizers.Ftrl(0.2, l1_regularization_strength=0.01,
                                           l2_regularization_strength=0.02),
}
EVICTION = [StalenessEviction(4, every_n_steps=5), FrequencyEviction(3)]


def vocab(key_dtype):
    """40 keys: int64 extremes, or strings with empty, non-ASCII and long ones."""
    if key_dtype == "int64":
        return np.concatenate([[0, -1, I64_MAX, I64_MIN],
                               np.arange(1, 37, dtype=np.int64) * 1_000_003 - 17]).astype(np.int64)
    return np.array(["", "\u00e9", "\u65e5\u672c\u8a9e", "a\x00b", "abcdefghijklmnop"]
                    + [f"k{i}" for i in range(35)], dtype=object)


def new_variable(num_shards, key_dtype="int64", slots=(), admission=None, eviction=None,
                 name="t", dim=DIM):
    args = dict(key_dtype=key_dtype, initializer="truncated_normal", seed=13, slots=slots,
                admission=admission, eviction=eviction, name=name)
    if num_shards is None:
        return KVVariable(dim, **args)
    return PartitionedKVVariable(dim, num_shards, **args)


def empty_keys(key_dtype, shape):
    return tf.zeros(shape, tf.int64 if key_dtype == "int64" else tf.string)


def run_scenario(kv, key_dtype, opt):
    """The same sequence of every operation; returns everything they returned."""
    rng = np.random.default_rng(7)
    v = vocab(key_dtype)
    out = []

    def keep(*tensors):
        out.extend(np.asarray(t) for t in tensors)

    keep(*kv.lookup_or_insert(v[rng.integers(0, 30, 64)], counts=rng.integers(0, 3, 64),
                              global_step=1))                                  # [N], counts
    keep(*kv.lookup_or_insert(v[rng.integers(0, 35, (8, 5))], global_step=2))  # [B, L]
    keep(*kv.lookup_or_insert(v[36], global_step=2))                           # scalar
    keep(*kv.lookup_or_insert(empty_keys(key_dtype, [0])))                    # empty
    keep(*kv.lookup_or_insert(empty_keys(key_dtype, [0, 3]),
                              counts=tf.zeros([0, 3], tf.int64)))
    ukeys = v[[0, 1, 2, 3, 4, 5, 37, 30]].reshape(2, 4)  # incl. unknown and pending keys
    keep(kv.update(ukeys, rng.normal(size=(2, 4, DIM)),
                   rng.normal(size=(2, 4, len(kv.slot_names), DIM)), global_step=3))
    keep(kv.update(v[6], np.ones(DIM), global_step=3))                         # no slots
    for step in (4, 5):
        keep(opt.apply(kv, v[rng.integers(0, 36, (6, 4))],
                       rng.normal(size=(6, 4, DIM)).astype(np.float32), step))
    keep(opt.apply(kv, v[7], np.full(DIM, 0.5, np.float32), 6))
    keep(kv.lookup(v.reshape(8, 5)), kv.lookup(v[39]), kv.lookup(empty_keys(key_dtype, [0])))
    keep(kv.remove(v[[3, 3, 10, 39, 20]]))
    keep(kv.evict(7, max_staleness=3))
    keep(*kv.lookup_or_insert(v[rng.integers(0, 40, 20)], global_step=8))
    keep(kv.evict(9))  # the variable's policies
    keep(kv.evict(9, min_freq=4))
    keep(tf.function(kv.maybe_evict)(tf.constant(10, tf.int64)))
    keep(*kv.lookup_or_insert(v, counts=np.where(np.arange(40) < 30, 3, 1),
                              global_step=11))  # evicted keys come back fresh
    keep(*kv.lookup_or_insert(v[:4], counts=[1, 0, 2, 5], global_step=12))
    keep(opt.apply(kv, v[rng.integers(0, 40, (5, 4))],
                   rng.normal(size=(5, 4, DIM)).astype(np.float32), 12))
    stats = kv.stats()
    keep(kv.evicted, kv.size(), stats["admitted"], stats["pending"])
    return out


def sorted_export(kv):
    """The export's records sorted by key, as numpy arrays (bloom_counts left out)."""
    r = KVRecords(*[t.numpy() for t in kv.export()])
    order = np.argsort(r.keys, kind="stable")
    assert len(np.unique(r.keys)) == len(r.keys), "a key is exported twice"
    return [f[order] for f in r[:6]]


def assert_same_records(a, b):
    ra, rb = sorted_export(a), sorted_export(b)
    for name, x, y in zip(KVRecords._fields, ra, rb):
        assert x.dtype == y.dtype and x.shape == y.shape, (name, x.shape, y.shape)
        np.testing.assert_array_equal(x, y, err_msg=name)


def assert_shards_hold_their_keys(kv):
    for i, shard in enumerate(kv.shards):
        keys = shard.export().keys.numpy()
        if kv.key_dtype == tf.int64:
            want = np_int64_shards(keys, kv.num_shards)
        else:
            want = np.array([py_shard(k, kv.num_shards) for k in keys], np.int32)
        np.testing.assert_array_equal(want, np.full(len(keys), i, np.int32))


CASES = [(n, key_dtype, opt, admission)
         for n in (1, 3, 4) for key_dtype in ("int64", "string")
         for opt, admission in (("adagrad", None), ("adam", CounterFilter(2)),
                                ("ftrl", CounterFilter(3)))]


@pytest.mark.parametrize("num_shards, key_dtype, opt_name, admission", CASES)
def test_partitioned_holds_exactly_what_a_plain_variable_holds(num_shards, key_dtype, opt_name,
                                                                admission):
    opt = OPTIMIZERS[opt_name]()
    plain = new_variable(None, key_dtype, opt.slots, admission, EVICTION)
    part = new_variable(num_shards, key_dtype, opt.slots, admission, EVICTION)
    want = run_scenario(plain, key_dtype, opt)
    got = run_scenario(part, key_dtype, opt)
    assert len(got) == len(want)
    for i, (g, w) in enumerate(zip(got, want)):
        assert g.dtype == w.dtype and g.shape == w.shape, (i, g.shape, w.shape)
        np.testing.assert_array_equal(g, w, err_msg=f"result {i}")
    assert_same_records(part, plain)
    assert_shards_hold_their_keys(part)
    assert part.num_shards == num_shards and len(part.shards) == num_shards
    assert int(part.evicted) == int(plain.evicted) > 0
    # the scenario exercises what it should: evictions, optimizer slots, pending keys
    records = records_by_key(plain.export())
    slots = np.array([r[3] for r in records.values() if r[4]])
    inits = np.array(list(opt.slots.values()), np.float32)[None, :, None]
    assert (slots != inits).any(axis=(1, 2)).sum() >= 3
    if admission is not None:
        assert 0 < sum(not r[4] for r in records.values()) < len(records)
    if num_shards > 1:
        assert all(int(s.size()) > 0 for s in part.shards)


def test_slots_added_later_with_ensure_slots_and_lookup_in_a_tf_function():
    opt = sparse_optimizers.Adagrad(0.1, initial_accumulator_value=0.7)
    plain, part = new_variable(None), new_variable(3)
    for kv in (plain, part):
        kv.lookup_or_insert(vocab("int64"), global_step=1)
        kv.ensure_slots(opt.slots)
    assert part.slot_names == ("accumulator",) and part.slot_initial_values == (0.7,)
    assert all(s.slot_names == ("accumulator",) for s in part.shards)

    @tf.function
    def step(kv, keys, grads, global_step):
        opt.apply(kv, keys, grads, global_step)
        return kv.lookup_or_insert(keys, global_step=global_step)

    keys = tf.constant(vocab("int64")[:12].reshape(3, 4))
    grads = tf.reshape(tf.range(36, dtype=tf.float32) / 10.0, [3, 4, DIM])
    want, got = [step(kv, keys, grads, tf.constant(2, tf.int64))[0] for kv in (plain, part)]
    assert got.shape == (3, 4, DIM)
    np.testing.assert_array_equal(got, want)
    assert_same_records(part, plain)
    with pytest.raises(ValueError, match=r"cannot switch to slots \['m', 'v'\]"):
        part.ensure_slots({"m": 0.0, "v": 0.0})


def test_nonfinite_gradients_fail_before_any_shard_changes_and_skips_are_summed():
    opt = OPTIMIZERS["adagrad"]()
    plain, part = (new_variable(n, slots=opt.slots, name="ctr") for n in (None, 3))
    v = vocab("int64")
    for kv in (plain, part):
        kv.lookup_or_insert(v, global_step=1)
    grads = np.random.default_rng(8).normal(size=(40, DIM)).astype(np.float32)
    # non-finite rows only in shards 1 and 2: shard 0 alone would apply its rows
    bad = np.flatnonzero(shard_index(v, 3) != 0)[:4]
    assert set(shard_index(v[bad], 3)) == {1, 2}
    grads[bad, [0, 1, 2, 0]] = [np.nan, np.inf, -np.inf, np.nan]
    before = sorted_export(part)
    with pytest.raises(tf.errors.InvalidArgumentError,
                       match=r"table 'ctr': 4 of 40 gradient rows hold NaN or Inf; nothing of the "
                             r"batch was applied"):
        opt.apply(part, v, grads, 2)
    for x, y, name in zip(sorted_export(part), before, KVRecords._fields):
        np.testing.assert_array_equal(x, y, err_msg=name)
    skip = sparse_optimizers.Adagrad(**dict(opt.get_config(), nonfinite_gradients="skip"))
    for kv in (plain, part):
        assert int(skip.apply(kv, v, grads, 2)) == 36
    assert_same_records(part, plain)
    assert [int(s.stats()["nonfinite_skipped"]) for s in part.shards] == [
        int((shard_index(v[bad], 3) == i).sum()) for i in range(3)]
    assert int(part.stats()["nonfinite_skipped"]) == int(plain.stats()["nonfinite_skipped"]) == 4


def test_counter_admission_pending_counts_match_unpartitioned():
    plain = new_variable(None, "string", admission=CounterFilter(4))
    part = new_variable(3, "string", admission=CounterFilter(4))
    v = vocab("string")
    for step, counts in enumerate([[1, 0, 2, 3], [1, 1, 1, 0], [2, 0, 0, 1]], start=1):
        keys = np.repeat(v[:4][None], 2, axis=0)  # every key twice in the batch
        results = [kv.lookup_or_insert(keys, counts=np.array([counts] * 2), global_step=step)
                   for kv in (plain, part)]
        np.testing.assert_array_equal(results[1][0], results[0][0])
        np.testing.assert_array_equal(results[1][1], results[0][1])
        assert_same_records(part, plain)
    # key i has 2 * sum(counts): 8 (admitted at step 3), 2, 6 (admitted at step 2), 8
    got = records_by_key(part.export())
    assert {k: (r[1], r[4]) for k, r in got.items()} == {
        v[0].encode(): (8, True), v[1].encode(): (2, False), v[2].encode(): (6, True),
        v[3].encode(): (8, True)}
    assert {k: int(x) for k, x in part.stats().items() if k != "bytes"} == \
        {"admitted": 3, "pending": 1, "nonfinite_skipped": 0}


# ----- 3. checkpoints across shard counts ----------------------------------------------

def trained(num_shards, key_dtype="int64", admission=CounterFilter(2), name="t"):
    opt = OPTIMIZERS["adam"]()
    kv = new_variable(num_shards, key_dtype, opt.slots, admission, EVICTION, name=name)
    run_scenario(kv, key_dtype, opt)
    kv.step.assign(12)
    return kv


def save(kv, directory):
    return tf.train.Checkpoint(t=kv).save(str(directory / "c"))


@pytest.mark.parametrize("key_dtype", ["int64", "string"])
def test_checkpoint_of_three_shards_restores_into_any_shard_count(key_dtype, tmp_path):
    src = trained(3, key_dtype)
    pending = [k for k, r in records_by_key(src.export()).items() if not r[4]]
    assert pending and int(src.evicted) > 0
    path = save(src, tmp_path)
    for target_shards in (1, 2, 5, None):
        # created without slots and holding a junk key: restore replaces everything
        target = new_variable(target_shards, key_dtype, admission=CounterFilter(2))
        target.lookup_or_insert(["junk"] if key_dtype == "string" else [123456789])
        tf.train.Checkpoint(t=target).restore(path).assert_consumed()
        assert_same_records(target, src)
        assert target.slot_names == ("m", "v")
        assert (int(target.step), int(target.evicted)) == (int(src.step), int(src.evicted))
        if target_shards is not None:
            assert_shards_hold_their_keys(target)
    # pending counts survive: one more lookup admits every pending key (CounterFilter(2))
    keys = np.array(pending, dtype=object) if key_dtype == "string" else pending
    (want, admitted), (got, _) = [kv.lookup_or_insert(keys, global_step=13)
                                  for kv in (src, target)]
    assert admitted.numpy().all()
    np.testing.assert_array_equal(got, want)
    assert_same_records(target, src)


def test_checkpoint_of_a_plain_variable_restores_into_four_shards(tmp_path):
    src = trained(None)
    path = save(src, tmp_path)
    target = new_variable(4, slots={"m": 0.0, "v": 0.0}, admission=CounterFilter(2))
    tf.train.Checkpoint(t=target).restore(path).assert_consumed()
    assert_same_records(target, src)
    assert_shards_hold_their_keys(target)
    assert (int(target.step), int(target.evicted)) == (12, int(src.evicted))
    assert int(src.evicted) > 0
    # and back: four shards saved, one plain variable restored
    path = tf.train.Checkpoint(t=target).save(str(tmp_path / "again"))
    plain = new_variable(None, admission=CounterFilter(2))
    tf.train.Checkpoint(t=plain).restore(path).assert_consumed()
    assert_same_records(plain, src)


def test_saved_model_serves_lookups_and_holds_the_logical_table(tmp_path):
    kv = trained(3)
    loaded = save_and_load_lookup(kv, tmp_path / "sm")
    keys = vocab("int64")
    np.testing.assert_array_equal(loaded.serve(tf.constant(keys)), kv.lookup(keys))
    target = new_variable(2, admission=CounterFilter(2))
    tf.train.Checkpoint(table=target).read(
        str(tmp_path / "sm" / "variables" / "variables")).expect_partial()
    assert_same_records(target, kv)
    assert int(target.step) == 12


def bloom_of(kv):
    return kv.export().bloom_counts.numpy()


BLOOM = BloomFilter(4, expected_keys=500)


def bloom_trained(num_shards):
    """Keys counted 1, 2 and 3 times (pending) and some counted 4+ times (admitted)."""
    kv = new_variable(num_shards, admission=BLOOM)
    keys = np.arange(60, dtype=np.int64) * 7919
    counts = {int(k): 1 + i % 3 for i, k in enumerate(keys[:45])}
    counts.update({int(k): 4 + i % 2 for i, k in enumerate(keys[45:])})
    for k, c in counts.items():
        kv.lookup_or_insert(np.full(c, k, np.int64), global_step=1)
    return kv, counts


def test_bloom_filters_come_back_exactly_into_the_same_shard_count(tmp_path):
    src, counts = bloom_trained(3)
    plain, _ = bloom_trained(None)
    assert_same_records(src, plain)  # only the 15 admitted keys have records
    assert len(src.export().keys.numpy()) == 15
    assert [len(bloom_of(s)) for s in src.shards] == [BLOOM.num_counters] * 3
    path = save(src, tmp_path)
    target = new_variable(3, admission=BLOOM)
    target.lookup_or_insert(np.arange(1000, 1100, dtype=np.int64))  # counts to be replaced
    tf.train.Checkpoint(t=target).restore(path).assert_consumed()
    for s, t in zip(src.shards, target.shards):
        np.testing.assert_array_equal(bloom_of(t), bloom_of(s))
    assert_same_records(target, src)
    # exact filters: a key counted c times is admitted after 4 - c more lookups, not before
    for k, c in counts.items():
        if c >= 4:
            continue
        for i in range(4 - c):
            admitted = bool(target.lookup_or_insert([k], global_step=2)[1].numpy()[0])
            assert admitted == (i == 3 - c), (k, c, i)


@pytest.mark.parametrize("target_shards", [1, 2, 5, None])
def test_bloom_filters_merge_when_the_shard_count_changes(target_shards, tmp_path):
    src, counts = bloom_trained(3)
    saved = np.stack([bloom_of(s) for s in src.shards])
    path = save(src, tmp_path)
    target = new_variable(target_shards, admission=BLOOM)
    tf.train.Checkpoint(t=target).restore(path).assert_consumed()
    merged = np.minimum(saved.astype(np.int64).sum(0), 0xFFFF)
    shards = target.shards if target_shards is not None else [target]
    for shard in shards:  # every shard holds the sum of the saved filters
        np.testing.assert_array_equal(bloom_of(shard), merged)
    assert_same_records(target, src)
    initial = new_variable(None)  # no admission: a key's initial value
    for k, c in counts.items():  # never under-counts: admitted after 4 - c more lookups
        if c < 4:
            values, admitted = [target.lookup_or_insert([k], global_step=2)
                                for _ in range(4 - c)][-1]
            assert bool(admitted.numpy()[0]), (k, c)
            np.testing.assert_array_equal(values, initial.lookup_or_insert([k])[0])


def test_bloom_checkpoint_of_a_plain_variable_into_four_shards(tmp_path):
    src, counts = bloom_trained(None)
    path = save(src, tmp_path)
    target = new_variable(4, admission=BLOOM)
    tf.train.Checkpoint(t=target).restore(path).assert_consumed()
    for shard in target.shards:
        np.testing.assert_array_equal(bloom_of(shard), bloom_of(src))
    assert_same_records(target, src)
    pending = [k for k, c in counts.items() if c == 3]
    assert target.lookup_or_insert(pending)[1].numpy().all()


def test_import_records_routes_keys_and_keeps_bloom_filters():
    src, _ = bloom_trained(3)
    target = new_variable(3, admission=BLOOM)
    target.import_records(src.export())
    assert_same_records(target, src)
    assert_shards_hold_their_keys(target)
    for s, t in zip(src.shards, target.shards):
        np.testing.assert_array_equal(bloom_of(t), bloom_of(s))


# ----- 4. Keras: training, checkpoints, export, warm start ----------------------------

def keras_data(n=192, seed=0):
    rng = np.random.default_rng(seed)
    user = rng.integers(0, 50, n) * 1_000_003 - 25_000_000
    items = np.array([f"i{j}\u00e9" for j in rng.integers(0, 40, n * 3)]).reshape(n, 3)
    y = ((user % 3 == 0) ^ (rng.random(n) < 0.2)).astype(np.float32)
    return {"user": user.astype(np.int64), "items": items}, y


def keras_model(num_shards):
    user = keras.Input((), dtype=tf.int64, name="user")
    items = keras.Input((3,), dtype=tf.string, name="items")
    u = KVEmbedding(TableConfig(4, initializer="uniform", seed=1, num_shards=num_shards),
                    name="user_emb")(user)
    i = KVEmbedding(TableConfig(4, key_dtype="string", seed=2, num_shards=num_shards),
                    combiner="mean", name="items_emb")(items)
    h = keras.layers.Dense(8, activation="relu", name="hidden",
                           kernel_initializer=keras.initializers.GlorotUniform(seed=3))(
        keras.layers.Concatenate()([u, i]))
    out = keras.layers.Dense(1, activation="sigmoid", name="out",
                             kernel_initializer=keras.initializers.GlorotUniform(seed=4))(h)
    model = keras.Model({"user": user, "items": items}, out)
    model.compile(optimizer=optimizers.Adagrad(0.2), loss="binary_crossentropy")
    return model


def tables(model):
    return {n: model.get_layer(n).kv for n in ("user_emb", "items_emb")}


def export_dict(export, name):
    keys, values, freqs, versions = export.numpy(name)
    order = np.argsort(keys, kind="stable")
    return [np.asarray(keys)[order], values[order], freqs[order], versions[order]]


@pytest.fixture(scope="module")
def fitted():
    x, y = keras_data()
    models = {}
    for n in (None, 3):
        model = keras_model(n)
        model.fit(x, y, batch_size=32, epochs=2, shuffle=False, verbose=0)
        models[n] = model
    return models, x, y


def test_fit_with_three_shards_equals_unpartitioned(fitted):
    models, x, y = fitted
    plain, part = models[None], models[3]
    for name, kv in tables(part).items():
        assert isinstance(kv, PartitionedKVVariable) and kv.num_shards == 3
        assert isinstance(tables(plain)[name], KVVariable)
        assert_same_records(kv, tables(plain)[name])
        assert_shards_hold_their_keys(kv)
        assert int(kv.step) == int(tables(plain)[name].step) == 12
    np.testing.assert_array_equal(part.predict(x, verbose=0), plain.predict(x, verbose=0))
    assert len(records_by_key(tables(part)["user_emb"].export())) == len(np.unique(x["user"]))
    assert [w.shape for w in part.get_weights()] == [w.shape for w in plain.get_weights()]
    for a, b in zip(part.get_weights(), plain.get_weights()):
        np.testing.assert_array_equal(a, b)


def test_checkpoints_save_load_round_trip_of_the_partitioned_model(fitted, tmp_path):
    models, x, y = fitted
    part = models[3]
    checkpoints.save(part, str(tmp_path / "ckpt"))
    loaded = checkpoints.load(str(tmp_path / "ckpt"))
    for name, kv in tables(loaded).items():
        assert isinstance(kv, PartitionedKVVariable) and kv.num_shards == 3
        assert_same_records(kv, tables(part)[name])
        assert int(kv.step) == 12
    np.testing.assert_array_equal(loaded.predict(x, verbose=0), part.predict(x, verbose=0))
    # the checkpoint of three shards is the same logical table as the plain model's
    export_embeddings(str(tmp_path / "ckpt"), tmp_path / "from_ckpt")
    export_embeddings(models[None], tmp_path / "plain")
    a, b = read_embeddings(tmp_path / "from_ckpt"), read_embeddings(tmp_path / "plain")
    assert sorted(a.manifest["tables"]) == sorted(b.manifest["tables"]) == ["items_emb",
                                                                            "user_emb"]
    for name in b.manifest["tables"]:
        for x1, x2 in zip(export_dict(a, name), export_dict(b, name)):
            np.testing.assert_array_equal(x1, x2)


def test_keras_saved_model_round_trip_of_the_partitioned_model(fitted, tmp_path):
    models, x, _ = fitted
    part = models[3]
    part.save(str(tmp_path / "sm"))
    loaded = keras.models.load_model(str(tmp_path / "sm"))
    for name, kv in tables(loaded).items():
        assert isinstance(kv, PartitionedKVVariable) and kv.num_shards == 3
        assert_same_records(kv, tables(part)[name])
    np.testing.assert_array_equal(loaded.predict(x, verbose=0), part.predict(x, verbose=0))


def test_export_embeddings_of_the_partitioned_model_equals_the_plain_one(fitted, tmp_path):
    models, _, _ = fitted
    manifests = {n: export_embeddings(models[n], tmp_path / str(n), max_file_bytes=512)
                 for n in (None, 3)}
    exports = {n: read_embeddings(tmp_path / str(n)) for n in (None, 3)}
    assert manifests[None]["global_step"] == manifests[3]["global_step"] == 12
    for name in ("user_emb", "items_emb"):
        want = export_dict(exports[None], name)
        got = export_dict(exports[3], name)
        assert len(want[0]) == len(records_by_key(tables(models[None])[name].export()))
        for g, w in zip(got, want):
            np.testing.assert_array_equal(g, w)
        summary = {k: v for k, v in manifests[3]["tables"][name].items() if k != "files"}
        assert summary == {k: v for k, v in manifests[None]["tables"][name].items()
                           if k != "files"}


def test_warm_start_from_three_shards_into_two(fitted, tmp_path):
    models, x, y = fitted
    old = models[3]
    checkpoints.save(old, str(tmp_path / "ckpt"))
    new = keras_model(2)
    new.optimizer.build(new.trainable_variables)
    report = warm_start(new, str(tmp_path / "ckpt"), migrate_slots=True)
    for name, kv in tables(new).items():
        assert report.entries[f"table:{name}"][0] == MIGRATED
        assert kv.num_shards == 2
        assert_same_records(kv, tables(old)[name])  # no admission: every record is admitted
        assert_shards_hold_their_keys(kv)
        assert int(kv.step) == 12
    np.testing.assert_array_equal(new.predict(x, verbose=0), old.predict(x, verbose=0))


# ----- 5. bad input -------------------------------------------------------------------

@pytest.mark.parametrize("kwargs, match", [
    ({"num_shards": 0}, r"num_shards must be a positive integer, got 0$"),
    ({"num_shards": -1}, r"num_shards must be a positive integer, got -1$"),
    ({"num_shards": True}, r"num_shards must be a positive integer, got True$"),
    ({"num_shards": 2.0}, r"num_shards must be a positive integer, got 2\.0$"),
    ({"num_shards": 2, "devices": ""}, r"devices must be a non-empty list of device strings, "
                                       r"got ''$"),
    ({"num_shards": 2, "devices": []}, r"devices must be a non-empty list of device strings, "
                                       r"got \[\]$"),
    ({"num_shards": 2, "devices": ["/cpu:0", 3]}, r"devices must be .* got \['/cpu:0', 3\]$"),
])
def test_bad_constructor_arguments(kwargs, match):
    with pytest.raises(ValueError, match=match):
        PartitionedKVVariable(2, **kwargs)


@pytest.mark.parametrize("index", [[0, -1], [0, 2]])
def test_an_index_out_of_range_is_an_error_not_a_dropped_row(index):
    kv = new_variable(3, slots=sparse_optimizers.Adagrad().slots)
    kv.lookup_or_insert([1, 2], global_step=1)
    before = sorted_export(kv)
    with pytest.raises(tf.errors.InvalidArgumentError,
                       match=r"variable 't': index must be in \[0, number of keys\)"):
        sparse_optimizers.Adagrad().apply_indexed([kv], [tf.constant([1, 2], tf.int64)],
                                                  [tf.constant(index, tf.int64)],
                                                  [tf.ones([2, DIM])], 2)
    for a, b in zip(sorted_export(kv), before):
        np.testing.assert_array_equal(a, b)


def test_bloom_counts_of_the_wrong_length_are_named():
    kv = new_variable(2, admission=BloomFilter(2, expected_keys=100))
    with pytest.raises(ValueError, match=rf"variable 't': counts must hold 2 shards x "
                                         rf"{kv.bloom_filter_size} Bloom filter counters, got "
                                         r"shape \(3,\)"):
        kv.set_bloom_counts([1, 2, 3])


def test_shards_are_placed_on_the_given_devices():
    kv = PartitionedKVVariable(2, 3, devices=["/cpu:0"])
    kv.lookup_or_insert([1, 2, 3])
    assert [s.resource_handle.device.endswith("device:CPU:0") for s in kv.shards] == [True] * 3


def test_import_with_the_wrong_key_dtype_is_refused():
    kv = new_variable(3)
    strings = new_variable(None, "string")
    strings.lookup_or_insert(["a", "b"])
    with pytest.raises(ValueError, match="cannot import string keys into variable 't' with "
                                         "int64 keys"):
        kv.import_records(strings.export())
    with pytest.raises(ValueError, match="keys must be int64 for this table, got dtype string"):
        kv.lookup(["a"])


@pytest.mark.parametrize("num_shards", [0, -1, True, 2.0])
def test_kv_embedding_rejects_bad_num_shards(num_shards):
    with pytest.raises(ValueError, match=rf"num_shards must be a positive integer or None, "
                                         rf"got {num_shards!r}$"):
        KVEmbedding(TableConfig(2, num_shards=num_shards))


def test_kv_embedding_config_keeps_num_shards():
    layer = KVEmbedding(TableConfig(2, num_shards=3), name="cfg")
    clone = KVEmbedding.from_config(layer.get_config())
    assert clone.get_config()["table"]["num_shards"] == 3 and clone.kv.num_shards == 3
    assert isinstance(KVEmbedding(2).kv, KVVariable)


def test_kv_embedding_tables_per_parameter_server(monkeypatch):
    # Under a ParameterServerStrategy: one shard per ps; with one ps, the plain table on
    # it (no shard routing ops); an explicit num_shards always splits.
    from deeprec_lite.layers.embeddings import kv_embedding
    here = "/job:localhost/replica:0/task:0/device:CPU:0"  # stands for the ps devices
    for devices, config, want in [([here], TableConfig(2), None),
                                  ([here, here], TableConfig(2), 2),
                                  ([here], TableConfig(2, num_shards=3), 3),
                                  (None, TableConfig(2), None)]:
        monkeypatch.setattr(kv_embedding, "parameter_server_devices", lambda d=devices: d)
        kv = KVEmbedding(config).kv
        if want is None:
            assert isinstance(kv, KVVariable)
        else:
            assert isinstance(kv, PartitionedKVVariable) and kv.num_shards == want


@pytest.mark.parametrize("call, message", [
    (lambda kv: kv.update(tf.constant([1, 2], tf.int64), tf.zeros([1, 4])),
     r"values must have shape keys.shape \+ \[2\] = \(2, 2\), got \(1, 4\)"),
    (lambda kv: kv.update(tf.constant([1, 2], tf.int64), tf.zeros([2, 2]), slots=tf.zeros([2, 2])),
     r"slots must have shape keys.shape \+ \[0, 2\]"),
    (lambda kv: kv.lookup_or_insert(tf.constant([1, 2], tf.int64), counts=[1, 2, 3]),
     r"counts must have shape keys.shape \+ \[\] = \(2,\), got \(3,\)"),
])
def test_per_key_arguments_of_another_shape_are_refused_by_name(call, message):
    kv = PartitionedKVVariable(2, 3)
    with pytest.raises(ValueError, match=message):
        call(kv)


def _table_entries(path):
    """{entry under t/.KV_TABLE/ with chunk ids as <s>} of a checkpoint of `t` (without
    the markers of the writing threads)."""
    import re
    return {re.sub(r"chunk-\d{5}", "<s>", name[len("t/.KV_TABLE/"):])
            for name, _ in tf.train.list_variables(path)
            if name.startswith("t/.KV_TABLE/") and "/writer-" not in name}


def test_checkpoint_holds_one_logical_table_in_parts_and_nothing_per_shard(tmp_path):
    plain, part = KVVariable(2), PartitionedKVVariable(2, 3)
    for kv in (plain, part):
        kv.lookup_or_insert(tf.constant(np.arange(100), tf.int64))
    a = tf.train.Checkpoint(t=plain).save(str(tmp_path / "plain"))
    b = tf.train.Checkpoint(t=part).save(str(tmp_path / "part"))
    fields = ["keys", "values", "slots", "freqs", "versions", "pending_keys", "pending_freqs",
              "pending_versions"]

    def entries(num_parts):
        dirs = [f"part-{p:05d}-of-{num_parts:05d}/" for p in range(num_parts)]
        return ({"slot_names", "slot_inits"} | {d + "bloom_counts" for d in dirs}
                | {d + "<s>/" + f for d in dirs for f in fields})

    assert _table_entries(a) == entries(1)
    assert _table_entries(b) == entries(3)
    assert not [n for n, _ in tf.train.list_variables(b) if "_shards" in n]
    stored = sum(shape[0] for n, shape in tf.train.list_variables(b) if n.endswith("/keys"))
    assert stored == 100


def test_bloom_counters_of_another_filter_size_are_refused(tmp_path):
    saved = PartitionedKVVariable(2, 2, admission=BloomFilter(3, expected_keys=100))
    saved.lookup_or_insert(tf.constant([1, 2], tf.int64))
    path = tf.train.Checkpoint(t=saved).save(str(tmp_path / "c"))
    other = PartitionedKVVariable(2, 3, admission=BloomFilter(3, expected_keys=1000))
    with pytest.raises(tf.errors.InvalidArgumentError, match="Bloom filter counters of shape"):
        tf.train.Checkpoint(t=other).restore(path)
