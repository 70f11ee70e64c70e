"""Parquet input: column projection, streaming record batches, several files in parallel.

:func:`read_parquet` reads in C++ (Arrow's Parquet reader inside a tf.data op, see
:mod:`deeprec_lite.data.formats.arrow_dataset`); :func:`read_parquet_rows` streams numpy
column batches through pyarrow. Only the schema's columns are read; files are read
record batch by record batch (memory stays bounded by ``chunk_rows``).
"""
from __future__ import annotations

from typing import Iterator, List, Optional, Tuple

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from deeprec_lite._checks import check_positive_int, is_int
from deeprec_lite.compat import tf
from deeprec_lite.data.formats.arrow_columns import arrow_to_columns, check_arrow_schema
from deeprec_lite.data.formats.column_batch import ColumnBatch
from deeprec_lite.data.formats.errors import BadFileCounter, BadFileError
from deeprec_lite.data.formats.file_dataset import Paths, native_files_dataset
from deeprec_lite.data.formats.schema import Schema

DEFAULT_CHUNK_ROWS = 65536


def open_parquet(path: str, metadata: Optional[pq.FileMetaData] = None) -> pq.ParquetFile:
    """Opens a Parquet file, BadFileError when it is truncated, corrupt or not Parquet.

    ``metadata`` (the file's footer, read before) saves parsing the footer again.
    """
    try:
        return pq.ParquetFile(path, metadata=metadata)
    except (pa.ArrowInvalid, OSError) as e:
        raise BadFileError(path, f"not a readable Parquet file (truncated or corrupt?): {e}") from None


def check_parquet_file(path: str, schema: Schema) -> None:
    """Reads only the footer: BadFileError for a bad file, a missing column or a wrong type."""
    check_arrow_schema(open_parquet(path).schema_arrow, schema, path)


def parquet_num_rows(path: str) -> int:
    """Row count from the footer."""
    return open_parquet(path).metadata.num_rows


def row_group_ranges(path: str) -> List[Tuple[int, int]]:
    """The ``[start, stop)`` rows of each row group of a file (from the footer)."""
    meta = open_parquet(path).metadata
    sizes = [meta.row_group(i).num_rows for i in range(meta.num_row_groups)]
    stops = np.cumsum(sizes, dtype=np.int64)
    return [(int(stop - size), int(stop)) for size, stop in zip(sizes, stops)]


def read_parquet_rows(path: str, schema: Schema, start: int = 0, stop: Optional[int] = None,
                      chunk_rows: int = DEFAULT_CHUNK_ROWS,
                      metadata: Optional[pq.FileMetaData] = None) -> Iterator[ColumnBatch]:
    """Streams rows ``[start, stop)`` of one file as column batches of at most ``chunk_rows``.

    Only the row groups overlapping the range are read. ``metadata``: the file's
    footer if already read (see :func:`open_parquet`).
    """
    pf = open_parquet(path, metadata)
    check_arrow_schema(pf.schema_arrow, schema, path)
    meta = pf.metadata
    total = meta.num_rows
    stop = total if stop is None else min(stop, total)
    if start >= stop:
        return
    sizes = np.array([meta.row_group(i).num_rows for i in range(meta.num_row_groups)], np.int64)
    group_starts = np.concatenate([[0], np.cumsum(sizes)[:-1]])
    groups = [i for i in range(len(sizes))
              if group_starts[i] < stop and group_starts[i] + sizes[i] > start]
    position = int(group_starts[groups[0]])
    columns = schema.column_names
    try:
        for batch in pf.iter_batches(batch_size=chunk_rows, row_groups=groups, columns=columns,
                                     use_threads=True):
            lo = max(start - position, 0)
            hi = min(stop - position, batch.num_rows)
            position += batch.num_rows
            if hi > lo:
                yield arrow_to_columns(batch.slice(lo, hi - lo), schema, path, schema_checked=True)
            if position >= stop:
                break
    except (pa.ArrowInvalid, pa.ArrowException, OSError) as e:
        raise BadFileError(path, f"error while reading (truncated or corrupt?): {e}") from None


def read_parquet(paths: Paths, schema: Schema, batch_size: int, *,
                 num_parallel_reads: int = 2, chunk_rows: int = DEFAULT_CHUNK_ROWS,
                 drop_remainder: bool = False, deterministic: bool = True,
                 skip_bad_files: bool = False, bad_files: Optional[BadFileCounter] = None,
                 prefetch: Optional[int] = tf.data.AUTOTUNE,
                 shard: Optional[Tuple[int, int]] = None) -> tf.data.Dataset:
    """A tf.data.Dataset of ``(features, label)`` batches from Parquet files, read in C++.

    Args:
      paths: a file, a glob pattern, or a list of them.
      schema: the Schema; only its columns are read.
      batch_size: rows per batch (the last batch of each of the
        ``num_parallel_reads`` file shards may be shorter unless ``drop_remainder``).
      num_parallel_reads: files read at the same time.
      chunk_rows: rows per Parquet record batch read.
      deterministic: keep a fixed order across the parallel reads.
      skip_bad_files: skip (and count in ``bad_files``) unreadable files instead
        of raising BadFileError.
      bad_files: a BadFileCounter to record skipped files in.
      prefetch: batches to prefetch (None or 0 for none).
      shard: ``(index, count)``: read only every ``count``-th row group of the files
        (in file order), starting at ``index``; ``count`` workers, one per index, read
        every row exactly once (e.g. ``(task_id, num_workers)``).

    A file that turns out unreadable while it is read (a corrupt page, a bad label)
    raises ``tf.errors.InvalidArgumentError`` naming the file and the column. The
    iterator can be checkpointed (``tf.train.Checkpoint(iterator=iter(ds))``): a
    restored one goes on after the last batch it delivered.
    """
    check_positive_int(chunk_rows, "chunk_rows")
    if shard is not None:
        if (not isinstance(shard, (tuple, list)) or len(shard) != 2 or not all(map(is_int, shard))
                or not 0 <= shard[0] < shard[1]):
            raise ValueError(f"shard must be (index, count) with 0 <= index < count, got {shard!r}")
    return native_files_dataset(
        paths, schema,
        check_file=lambda p: check_parquet_file(p, schema),
        batch_rows=chunk_rows,
        batch_size=batch_size, num_parallel_reads=num_parallel_reads,
        drop_remainder=drop_remainder, deterministic=deterministic,
        skip_bad_files=skip_bad_files, bad_files=bad_files, prefetch=prefetch,
        worker_shard=tuple(shard) if shard is not None else None, row_groups=row_group_ranges)
