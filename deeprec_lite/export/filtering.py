"""Vectorized export filter, chunk by chunk: which records are kept, and why the others
are dropped (the frequency / staleness rule is deeprec_lite.kv.snapshots.keep_mask)."""
import dataclasses
from typing import NamedTuple

import numpy as np
import pyarrow as pa

from deeprec_lite.export import arrow_tables, manifest
from deeprec_lite.kv.snapshots import keep_mask

DROP_REASONS = ("not_admitted", "low_freq", "stale")


@dataclasses.dataclass
class FilterResult:
    """`keep`: bool mask over the records; `dropped`: {reason: count}, each dropped
    record counted once, under the first reason of DROP_REASONS that applies."""

    keep: np.ndarray
    dropped: dict

    @property
    def kept(self):
        return int(np.count_nonzero(self.keep))


def filter_records(freqs, versions, admitted, global_step, min_freq, max_staleness):
    """Keeps admitted records with freq >= min_freq and, when max_staleness is not None,
    global_step - version <= max_staleness (exactly, for any int64 versions: no
    wraparound)."""
    admitted = np.asarray(admitted, bool)
    low = admitted & ~keep_mask(freqs, versions, global_step, min_freq=min_freq)
    rest = admitted & ~low
    stale = rest & ~keep_mask(freqs, versions, global_step, max_staleness=max_staleness)
    keep = rest & ~stale
    dropped = {"not_admitted": int(admitted.size - np.count_nonzero(admitted)),
               "low_freq": int(np.count_nonzero(low)), "stale": int(np.count_nonzero(stale))}
    return FilterResult(keep, dropped)


class Kept(NamedTuple):
    """Kept records: keys (numpy, as the table holds them), key_array (the same keys as
    an Arrow array of the export schema), values [k, dim], freqs, versions."""

    keys: np.ndarray
    key_array: pa.Array
    values: np.ndarray
    freqs: np.ndarray
    versions: np.ndarray


class TableFilter:
    """Filters one table (a kv.snapshots.TableSnapshot) chunk by chunk and adds up its
    manifest summary."""

    def __init__(self, snapshot, global_step, min_freq, max_staleness):
        self.snapshot = snapshot
        self._args = (global_step, min_freq, max_staleness)
        self._dropped = dict.fromkeys(DROP_REASONS, 0)
        self._keys_before = self._kept = self._key_bytes_before = self._key_bytes_after = 0
        self.key_type = None  # the Arrow type of the kept keys, once a chunk was seen

    def apply(self, chunk):
        """The kept records of a chunk (a kv.snapshots.RecordChunk), as Kept."""
        n = len(chunk.keys)
        result = filter_records(chunk.freqs, chunk.versions, np.ones(n, bool), *self._args)
        result.dropped["not_admitted"] = len(chunk.pending_keys)
        all_keys = arrow_tables.key_array(chunk.keys)
        keep = None if result.kept == n else np.flatnonzero(result.keep)
        kept_keys = all_keys if keep is None else all_keys.take(keep)
        for reason, count in result.dropped.items():
            self._dropped[reason] += count
        self._keys_before += n + len(chunk.pending_keys)
        self._kept += result.kept
        self._key_bytes_before += (arrow_tables.key_bytes(all_keys) + arrow_tables.key_bytes(
            arrow_tables.key_array(chunk.pending_keys)))
        self._key_bytes_after += arrow_tables.key_bytes(kept_keys)
        # String keys are utf8 unless a chunk holds a key that is not UTF-8: then the
        # table's are binary (the reader casts its utf8 files).
        if self.key_type is None or pa.types.is_binary(kept_keys.type):
            self.key_type = kept_keys.type
        if keep is None:  # nothing dropped: no copies
            return Kept(chunk.keys, kept_keys, chunk.values, chunk.freqs, chunk.versions)
        return Kept(chunk.keys[keep], kept_keys, chunk.values[keep], chunk.freqs[keep],
                    chunk.versions[keep])

    def summary(self):
        """The table's manifest entry (without its files)."""
        return manifest.table_summary(self.snapshot, self._keys_before, self._kept,
                                      self._dropped, self._key_bytes_before,
                                      self._key_bytes_after)
