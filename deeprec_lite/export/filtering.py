"""Vectorized export filter: which records are kept, and why the others are dropped."""
import dataclasses

import numpy as np

from deeprec_lite.export import arrow_tables, manifest

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
    low = admitted & (np.asarray(freqs) < min_freq)
    rest = admitted & ~low
    if max_staleness is None:
        stale = np.zeros_like(rest)
    else:
        # version < step - max_staleness in Python ints: int64 step - version can wrap
        stale = rest & (np.asarray(versions, np.int64) < int(global_step) - int(max_staleness))
    keep = rest & ~stale
    dropped = {"not_admitted": int(admitted.size - np.count_nonzero(admitted)),
               "low_freq": int(np.count_nonzero(low)), "stale": int(np.count_nonzero(stale))}
    return FilterResult(keep, dropped)


def filter_table(records, global_step, min_freq, max_staleness):
    """Filters one table's records (sources.TableRecords). Returns (indices of the kept
    records, None when every record is kept; the kept keys as an Arrow array; the
    table's manifest summary)."""
    result = filter_records(records.freqs, records.versions, records.admitted, global_step,
                            min_freq, max_staleness)
    all_keys = arrow_tables.key_array(records.keys)
    keep = None if result.kept == len(records.keys) else np.flatnonzero(result.keep)
    kept_keys = all_keys if keep is None else all_keys.take(keep)
    summary = manifest.table_summary(records, result, arrow_tables.key_bytes(all_keys),
                                     arrow_tables.key_bytes(kept_keys))
    return keep, kept_keys, summary
