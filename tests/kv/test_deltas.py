"""Deltas of live tables (deeprec_lite.kv.deltas, ops/kv_table.h Changes): the records
touched since a step and the keys removed since then, against a hand-computed history
and against a copy of the earlier state that the delta must turn into the later one."""
import numpy as np
import pytest

from deeprec_lite.compat import tf
from deeprec_lite.kv import CounterFilter, KVVariable, PartitionedKVVariable, deltas
from kv_reference import assert_records_equal, records_by_key


def history():
    """A table with counter admission (2) and one slot, through five steps:
      1: keys 0..9 counted once (pending)      2: keys 0..4 counted again: admitted
      3: keys 0, 1 updated; key 5 counted again (admitted); then key 2 removed
      5: eviction of versions < 2: pending keys 6..9 go."""
    kv = KVVariable(2, slots={"a": 0.0}, admission=CounterFilter(2), seed=1)
    kv.lookup_or_insert(np.arange(10, dtype=np.int64), global_step=1)
    kv.lookup_or_insert(np.arange(5, dtype=np.int64), global_step=2)
    kv.update(np.array([0, 1]), np.full((2, 2), 7.0, np.float32),
              slots=np.full((2, 1, 2), 3.0, np.float32), global_step=3)
    kv.lookup_or_insert(np.array([5]), global_step=3)
    kv.remove(np.array([2]))  # logged at the table's clock, 3
    kv.evict(5, max_staleness=3)
    return kv


def keyset(keys):
    return sorted(np.asarray(keys).tolist())


@pytest.mark.parametrize("since, touched, removed", [
    (0, [0, 1, 3, 4, 5], [2, 6, 7, 8, 9]),
    (3, [0, 1, 5], [2, 6, 7, 8, 9]),
    (4, [], [6, 7, 8, 9]),
    (6, [], []),
])
def test_changes_are_the_records_touched_since_the_step_and_the_keys_removed(
        since, touched, removed):
    kv = history()
    changes = deltas.changes(kv, since)
    assert keyset(changes.records.keys) == touched
    assert keyset(changes.records.pending_keys) == []
    assert keyset(changes.removed_keys) == removed
    assert len(changes.expired_keys) == 0
    # Each record is the table's own, value, slots, freq and version.
    live = records_by_key(kv.export())
    for i, key in enumerate(changes.records.keys):
        value, freq, version, slots, admitted = live[key]
        np.testing.assert_array_equal(changes.records.values[i], value)
        np.testing.assert_array_equal(changes.records.slots[i], slots)
        assert (changes.records.freqs[i], changes.records.versions[i], admitted) == (
            freq, version, True)


def test_pending_keys_counted_since_the_step_are_changes_too():
    kv = KVVariable(2, admission=CounterFilter(3))
    kv.lookup_or_insert(np.array([1, 2, 3]), global_step=1)
    kv.lookup_or_insert(np.array([2]), global_step=4)
    changes = deltas.changes(kv, 2)
    assert keyset(changes.records.pending_keys) == [2]
    assert changes.records.pending_freqs.tolist() == [2]
    assert changes.records.pending_versions.tolist() == [4]


def test_expired_keys_are_the_untouched_admitted_keys_with_a_version_in_the_range():
    kv = history()
    changes = deltas.changes(kv, 3, expired=(0, 3))
    assert keyset(changes.expired_keys) == [3, 4]  # version 2, untouched since 3
    assert keyset(deltas.changes(kv, 3, expired=(0, 2)).expired_keys) == []


def test_a_lookup_that_does_not_count_and_a_skipped_update_change_nothing():
    kv = KVVariable(2)
    kv.lookup_or_insert(np.array([1, 2]), global_step=1)
    kv.set_freq_counting(False)
    kv.lookup_or_insert(np.array([1]), global_step=5)  # counts 0: freq unchanged
    kv.lookup(np.array([2]))  # inference lookups never count
    assert len(deltas.changes(kv, 2).records.keys) == 0


def random_training(kv, rng, steps, first_step, num_keys=3000):
    """Lookups (with admission), updates of what was looked up, removals and eviction."""
    for step in range(first_step, first_step + steps):
        ids = np.unique(rng.integers(0, num_keys, 400))
        keys = ids if kv.key_dtype == tf.int64 else np.array([b"k%d" % k for k in ids], object)
        kv.lookup_or_insert(keys, global_step=step)
        kv.update(keys, rng.normal(size=(len(keys), kv.dim)).astype(np.float32),
                  slots=rng.normal(size=(len(keys), 1, kv.dim)).astype(np.float32),
                  global_step=step)
        if step % 3 == 0:
            kv.remove(keys[:20])
        if step % 4 == 0:
            kv.evict(step, max_staleness=8)


def copy_of(kv, make):
    """A new table holding kv's records (as a restore would)."""
    copy = make()
    copy.import_records(kv.export())
    return copy


@pytest.mark.parametrize("key_dtype", ["int64", "string"])
@pytest.mark.parametrize("partitions", [1, 3])
def test_a_copy_of_the_earlier_state_plus_the_changes_is_the_later_state(key_dtype, partitions):
    def make():
        kwargs = dict(key_dtype=key_dtype, slots={"a": 0.5}, admission=CounterFilter(2), seed=4)
        if partitions > 1:
            return PartitionedKVVariable(3, partitions, **kwargs)
        return KVVariable(3, **kwargs)

    rng = np.random.default_rng(0)
    kv = make()
    random_training(kv, rng, 10, first_step=1)
    since = 10  # the latest step so far: later changes are stamped >= 10
    earlier = copy_of(kv, make)
    random_training(kv, rng, 3, first_step=10)
    changes = deltas.changes(kv, since)
    assert 0 < len(changes.records.keys) < kv.size()
    assert len(changes.removed_keys) > 0
    deltas.apply(earlier, changes.records, changes.removed_keys)
    assert_records_equal(records_by_key(earlier.export()), records_by_key(kv.export()))


def test_applied_and_restored_records_are_not_changes_of_the_table_they_went_into():
    rng = np.random.default_rng(1)
    kv = KVVariable(3, slots={"a": 0.0})
    random_training(kv, rng, 5, first_step=1)
    copy = copy_of(kv, lambda: KVVariable(3, slots={"a": 0.0}))
    assert len(deltas.changes(copy, 0).records.keys) == 0
    changes = deltas.changes(kv, 0)
    deltas.apply(copy, changes.records, changes.removed_keys)
    after = deltas.changes(copy, 0)
    assert len(after.records.keys) == 0 and len(after.removed_keys) == 0


def test_a_restore_or_an_import_starts_a_new_timeline():
    kv = KVVariable(2)
    kv.lookup_or_insert(np.array([1, 2]), global_step=1)
    before = deltas.change_state(kv)[0]
    assert before.clock == 1 and before.removals_since == 0
    kv.import_records(kv.export())
    after = deltas.change_state(kv)[0]
    assert after.timeline != before.timeline and after.clock == 0
    other = KVVariable(2)
    assert deltas.change_state(other)[0].timeline != before.timeline


def test_a_delta_further_back_than_the_removal_log_is_an_error():
    # Each of the 32 internal shards remembers at least 16,384 removals, or half its
    # records: removing 1M keys of a table that keeps none forgets the first ones.
    kv = KVVariable(1, initializer="zeros")
    keys = np.arange(1 << 20, dtype=np.int64)
    kv.lookup_or_insert(keys, global_step=1)
    kv.lookup_or_insert(np.array([-1]), global_step=2)
    kv.remove(keys)  # at step 2
    state = deltas.change_state(kv)[0]
    assert state.removals_since == 3
    with pytest.raises(tf.errors.FailedPreconditionError, match="since step 3 only, not since "
                                                                "step 2"):
        deltas.changes(kv, 2)
    assert len(deltas.changes(kv, 3).removed_keys) == 0
