"""An independent numpy model of the KV table: a dict of records.

Used as the oracle in tests. It models the contract, not the implementation:
freq counting, admission by exact counts, version stamping, slot rows and
eviction. Initial values are the initializer's constant (tests that compare
against this model use constant initializers).
"""
import dataclasses

import numpy as np


def mix64(x):
    """The splitmix64 finalizer (ops/key_hash.h Mix64) on numpy uint64 values."""
    x = np.asarray(x, np.uint64)
    with np.errstate(over="ignore"):
        x = x ^ (x >> np.uint64(30))
        x = x * np.uint64(0xBF58476D1CE4E5B9)
        x = x ^ (x >> np.uint64(27))
        x = x * np.uint64(0x94D049BB133111EB)
        return x ^ (x >> np.uint64(31))


@dataclasses.dataclass
class Record:
    freq: int
    version: int
    admitted: bool
    value: np.ndarray
    slots: np.ndarray


class ReferenceTable:
    def __init__(self, dim, init_value=0.0, slot_inits=(), default_value=0.0,
                 admission=None, min_count=0):
        self.dim = dim
        self.init_value = np.float32(init_value)
        self.slot_inits = np.asarray(slot_inits, np.float32)
        self.default = np.full(dim, default_value, np.float32)
        self.admission = admission  # None, "counter" or "bloom"
        self.min_count = min_count
        self.records = {}
        self.bloom_counts = {}  # exact counts stand in for the Bloom filter's

    def _new_row(self, freq, step):
        slots = np.repeat(self.slot_inits[:, None], self.dim, axis=1).astype(np.float32)
        return Record(freq, step, True, np.full(self.dim, self.init_value, np.float32), slots)

    def lookup_or_insert(self, keys, step, counts=None):
        counts = np.ones(len(keys), np.int64) if counts is None else counts
        values, admitted = [], []
        for key, count in zip(keys, counts):
            rec = self.records.get(key)
            if rec is not None:
                rec.freq += int(count)
                if not rec.admitted:
                    rec.version = step
                    if rec.freq >= self.min_count:
                        promoted = self._new_row(rec.freq, rec.version)
                        self.records[key] = rec = promoted
            elif self.admission == "counter" and count < self.min_count:
                self.records[key] = rec = Record(int(count), step, False,
                                                 np.zeros(self.dim, np.float32),
                                                 np.zeros((len(self.slot_inits), self.dim),
                                                          np.float32))
            elif self.admission == "bloom":
                total = self.bloom_counts.get(key, 0) + int(count)
                self.bloom_counts[key] = total
                if total >= self.min_count:
                    self.records[key] = rec = self._new_row(total, step)
            else:
                self.records[key] = rec = self._new_row(int(count), step)
            ok = rec is not None and rec.admitted
            values.append(rec.value.copy() if ok else self.default.copy())
            admitted.append(ok)
        return np.array(values, np.float32).reshape(len(keys), self.dim), np.array(admitted)

    def lookup(self, keys):
        out = [self.records[k].value if k in self.records and self.records[k].admitted
               else self.default for k in keys]
        return np.array(out, np.float32).reshape(len(keys), self.dim)

    def update(self, keys, values, slots, step):
        n = 0
        for i, key in enumerate(keys):
            rec = self.records.get(key)
            if rec is None or not rec.admitted:
                continue
            rec.value = values[i].astype(np.float32).copy()
            if slots is not None:
                rec.slots = slots[i].astype(np.float32).copy()
            rec.version = step
            n += 1
        return n

    def remove(self, keys):
        n = 0
        for key in set(keys):
            if self.records.pop(key, None) is not None:
                n += 1
        return n

    def evict(self, step, max_staleness=-1, min_freq=0):
        doomed = [k for k, r in self.records.items()
                  if (max_staleness >= 0 and step - r.version > max_staleness)
                  or (min_freq > 0 and r.admitted and r.freq < min_freq)]
        for k in doomed:
            del self.records[k]
        return len(doomed)


def records_by_key(records):
    """{key: (value, freq, version, slots, admitted)} from a KVRecords of tensors."""
    keys, values, freqs, versions, slots, admitted = (x.numpy() for x in records[:6])
    out = {}
    for i, key in enumerate(keys):
        out[key] = (values[i], int(freqs[i]), int(versions[i]), slots[i], bool(admitted[i]))
    assert len(out) == len(keys), "export returned a key twice"
    return out


def assert_records_equal(got, want):
    """Two {key: (value, freq, version, slots, admitted)} maps (records_by_key's) hold
    the same keys with the same freq, version and admission, and bit-equal values and
    slots for admitted keys (a pending key's value and slots are not compared)."""
    assert set(got) == set(want), (
        f"keys differ: {len(set(got) - set(want))} only in got, "
        f"{len(set(want) - set(got))} only in want")
    for key, (value, freq, version, slots, admitted) in want.items():
        g = got[key]
        assert (g[1], g[2], g[4]) == (freq, version, admitted), key
        if admitted:
            np.testing.assert_array_equal(g[0], value)
            np.testing.assert_array_equal(g[3], slots)


def assert_matches(variable, reference):
    """Every record of the variable equals the reference's, bit for bit."""
    got = records_by_key(variable.export())
    assert set(got) == set(reference.records), (
        f"keys differ: only in table {set(got) - set(reference.records)}, "
        f"only in reference {set(reference.records) - set(got)}")
    for key, rec in reference.records.items():
        value, freq, version, slots, admitted = got[key]
        assert (freq, version, admitted) == (rec.freq, rec.version, rec.admitted), (
            key, (freq, version, admitted), (rec.freq, rec.version, rec.admitted))
        if rec.admitted:
            np.testing.assert_array_equal(value, rec.value)
            np.testing.assert_array_equal(slots, rec.slots)
