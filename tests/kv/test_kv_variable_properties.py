"""Random sequences of lookups, updates, removals, evictions and checkpoint
round trips, compared record by record against the numpy reference table."""
import numpy as np
import pytest
from hypothesis import settings, strategies as st
from hypothesis.stateful import RuleBasedStateMachine, initialize, invariant, rule

from deeprec_lite.compat import tf
from deeprec_lite.kv.variable import KVVariable
from deeprec_lite.kv.policies import BloomFilter, CounterFilter
from kv_reference import ReferenceTable, assert_matches

DIM = 3
SLOTS = {"m": 0.5, "v": -1.0}
INT_KEYS = [-(2 ** 63), 2 ** 63 - 1, 0, -1, 1, 7, 2 ** 40, -12345]
STR_KEYS = [b"", b"a", "\u00e9t\u00e9".encode(), "\u65e5\u672c".encode(), b"a\x00b",
            b"long key " * 4, b"x", b"y"]


def make_machine(key_dtype, admission):
    pool = INT_KEYS if key_dtype == "int64" else STR_KEYS
    keys_strategy = st.lists(st.sampled_from(pool), min_size=0, max_size=12)

    class KVMachine(RuleBasedStateMachine):
        @initialize()
        def create(self):
            policy = {"none": None, "counter": CounterFilter(3),
                      "bloom": BloomFilter(2, expected_keys=100_000)}[admission]
            self.kv = KVVariable(DIM, key_dtype=key_dtype, initializer="constant", seed=1,
                                 slots=SLOTS, default_value=-7.0, admission=policy)
            self.ref = ReferenceTable(DIM, init_value=0.0, slot_inits=list(SLOTS.values()),
                                      default_value=-7.0,
                                      admission=None if admission == "none" else admission,
                                      min_count=getattr(policy, "min_count", 0))
            self.step = 0

        def _tensor(self, keys):
            dtype = tf.int64 if key_dtype == "int64" else tf.string
            return tf.constant(keys, dtype=dtype, shape=[len(keys)])

        @rule(keys=keys_strategy, counted=st.booleans())
        def train_lookup(self, keys, counted):
            self.step += 1
            counts = np.arange(1, len(keys) + 1, dtype=np.int64) % 3 if counted else None
            values, admitted = self.kv.lookup_or_insert(self._tensor(keys), counts=counts,
                                                        global_step=self.step)
            want_values, want_admitted = self.ref.lookup_or_insert(keys, self.step, counts)
            np.testing.assert_array_equal(admitted.numpy(), want_admitted)
            np.testing.assert_array_equal(values.numpy(), want_values)

        @rule(keys=keys_strategy)
        def serve_lookup(self, keys):
            np.testing.assert_array_equal(self.kv.lookup(self._tensor(keys)).numpy(),
                                          self.ref.lookup(keys))

        @rule(keys=st.lists(st.sampled_from(pool), unique=True, max_size=6),
              data=st.data())
        def update(self, keys, data):
            self.step += 1
            n = len(keys)
            values = np.array(data.draw(st.lists(st.floats(-1e6, 1e6, width=32),
                                                 min_size=n * DIM, max_size=n * DIM)),
                              np.float32).reshape(n, DIM)
            slots = np.arange(n * len(SLOTS) * DIM, dtype=np.float32).reshape(n, len(SLOTS), DIM)
            got = self.kv.update(self._tensor(keys), values, slots, global_step=self.step)
            assert int(got) == self.ref.update(keys, values, slots, self.step)

        @rule(keys=keys_strategy)
        def remove(self, keys):
            assert int(self.kv.remove(self._tensor(keys))) == self.ref.remove(keys)

        @rule(max_staleness=st.integers(0, 6), min_freq=st.integers(0, 4))
        def evict(self, max_staleness, min_freq):
            got = self.kv.evict(self.step, max_staleness=max_staleness, min_freq=min_freq)
            assert int(got) == self.ref.evict(self.step, max_staleness, min_freq)

        @rule()
        def checkpoint_round_trip(self):
            import tempfile
            with tempfile.TemporaryDirectory() as d:
                path = tf.train.Checkpoint(table=self.kv).save(d + "/ckpt")
                fresh = KVVariable(DIM, key_dtype=key_dtype, initializer="constant", seed=1,
                                   slots=SLOTS, default_value=-7.0, admission=self.kv.admission)
                tf.train.Checkpoint(table=fresh).restore(path).assert_consumed()
            self.kv = fresh

        @invariant()
        def records_match(self):
            if hasattr(self, "kv"):
                assert_matches(self.kv, self.ref)
                stats = self.kv.stats()
                assert int(stats["admitted"]) == sum(r.admitted for r in self.ref.records.values())
                assert int(stats["pending"]) == sum(not r.admitted
                                                    for r in self.ref.records.values())

    return KVMachine


@pytest.mark.parametrize("key_dtype", ["int64", "string"])
@pytest.mark.parametrize("admission", ["none", "counter", "bloom"])
def test_random_operation_sequences_match_reference(key_dtype, admission):
    machine = make_machine(key_dtype, admission)
    machine.TestCase.settings = settings(max_examples=15, stateful_step_count=25, deadline=None)
    machine.TestCase().runTest()
