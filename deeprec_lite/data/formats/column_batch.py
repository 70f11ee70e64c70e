"""Column batches: a dict of numpy columns, the currency between readers and tf.data.

A column batch maps a column name to either a 1-D numpy array (one value per
row) or a :class:`RaggedColumn` (a flat value array plus one length per row).
All operations here are vectorized: no Python loop over rows.
"""
from __future__ import annotations

import dataclasses
from typing import Dict, Iterable, Iterator, List, Union

import numpy as np


@dataclasses.dataclass
class RaggedColumn:
    """A multi-valued column: ``values`` flat, ``row_lengths[i]`` values for row i."""

    values: np.ndarray
    row_lengths: np.ndarray  # int64

    def __len__(self):
        return len(self.row_lengths)

    def row_splits(self) -> np.ndarray:
        """Offsets of each row in ``values`` (length ``num_rows + 1``)."""
        splits = np.zeros(len(self.row_lengths) + 1, dtype=np.int64)
        np.cumsum(self.row_lengths, out=splits[1:])
        return splits

    def slice(self, start: int, stop: int) -> "RaggedColumn":
        """Rows ``[start, stop)``."""
        splits = self.row_splits()
        return RaggedColumn(self.values[splits[start]:splits[stop]],
                            self.row_lengths[start:stop])

    def to_lists(self) -> List[list]:
        """Python lists per row (for tests and debugging, not for hot paths)."""
        splits = self.row_splits()
        return [self.values[splits[i]:splits[i + 1]].tolist() for i in range(len(self))]


Column = Union[np.ndarray, RaggedColumn]
ColumnBatch = Dict[str, Column]


def num_rows(batch: ColumnBatch) -> int:
    """Number of rows of a column batch (0 for an empty dict)."""
    for column in batch.values():
        return len(column)
    return 0


def slice_batch(batch: ColumnBatch, start: int, stop: int) -> ColumnBatch:
    """Rows ``[start, stop)`` of every column."""
    return {name: (col.slice(start, stop) if isinstance(col, RaggedColumn) else col[start:stop])
            for name, col in batch.items()}


def concat_batches(batches: List[ColumnBatch]) -> ColumnBatch:
    """Concatenates column batches with the same columns, row-wise."""
    if len(batches) == 1:
        return batches[0]
    out: ColumnBatch = {}
    for name, first in batches[0].items():
        if isinstance(first, RaggedColumn):
            out[name] = RaggedColumn(
                np.concatenate([b[name].values for b in batches]),
                np.concatenate([b[name].row_lengths for b in batches]))
        else:
            out[name] = np.concatenate([b[name] for b in batches])
    return out


def rebatch(batches: Iterable[ColumnBatch], batch_size: int,
            drop_remainder: bool = False) -> Iterator[ColumnBatch]:
    """Turns a stream of column batches of any sizes into batches of ``batch_size`` rows.

    The last batch has fewer rows unless ``drop_remainder``. Rows keep their order.
    """
    if batch_size <= 0:
        raise ValueError(f"batch_size must be positive, got {batch_size!r}")
    pending: List[ColumnBatch] = []
    pending_rows = 0
    for batch in batches:
        n = num_rows(batch)
        if n == 0:
            continue
        pending.append(batch)
        pending_rows += n
        if pending_rows < batch_size:
            continue
        merged = concat_batches(pending)
        full = pending_rows // batch_size
        for i in range(full):
            yield slice_batch(merged, i * batch_size, (i + 1) * batch_size)
        rest = pending_rows - full * batch_size
        pending = [slice_batch(merged, full * batch_size, pending_rows)] if rest else []
        pending_rows = rest
    if pending_rows and not drop_remainder:
        yield concat_batches(pending)


def rebatch_chunks(batches: Iterable[ColumnBatch], batch_size: int, batches_per_chunk: int,
                   drop_remainder: bool = False) -> Iterator[ColumnBatch]:
    """Like :func:`rebatch`, but yields chunks of ``batches_per_chunk * batch_size`` rows.

    Every chunk but the last holds a whole number of batches; the last one is
    cut to a whole number of batches when ``drop_remainder``. Splitting the
    chunks into batches is left to the consumer (in-graph, see
    :func:`deeprec_lite.data.formats.tf_conversion.split_into_batches`): handing
    TensorFlow few large chunks instead of many batches saves per-element cost.
    """
    if batches_per_chunk <= 0:
        raise ValueError(f"batches_per_chunk must be positive, got {batches_per_chunk!r}")
    for chunk in rebatch(batches, batch_size * batches_per_chunk, drop_remainder=False):
        n = num_rows(chunk)
        if drop_remainder and n % batch_size:
            n -= n % batch_size
            if n == 0:
                return
            chunk = slice_batch(chunk, 0, n)
        yield chunk
