"""The shared machinery of the file readers: files -> batched, parallel tf.data.Dataset.

A reader supplies ``check_file(path)`` (cheap, at construction: raises BadFileError
for a missing column, a wrong type, a truncated file) and either ``read_file(path)``
(a Python generator of column batches of any size: :func:`files_to_dataset`) or the
C++ reader op's file format (:func:`native_files_dataset`: Parquet, CSV / TSV). This
module expands the paths, checks the files (skipping and counting bad ones when
asked), splits the files into ``num_parallel_reads`` shards read in parallel, cuts
each shard into batches of exactly ``batch_size`` rows (the last batch of each shard
may be shorter), and assembles feature dicts with ragged multi-valued fields.
"""
from __future__ import annotations

import glob
import os
from typing import Callable, Iterator, List, Optional, Sequence, Tuple, Union

from deeprec_lite._checks import check_positive_int
from deeprec_lite.compat import tf
from deeprec_lite.data.formats import arrow_dataset
from deeprec_lite.data.formats.column_batch import ColumnBatch, rebatch_chunks
from deeprec_lite.data.formats.errors import BadFileCounter, BadFileError
from deeprec_lite.data.formats.schema import Schema
from deeprec_lite.data.formats.tf_conversion import (ExtraColumns, chunk_batches,
                                             column_batches_to_dataset)

Paths = Union[str, os.PathLike, Sequence[Union[str, os.PathLike]]]


def expand_paths(paths: Paths) -> List[str]:
    """Files named by a path, a glob pattern or a list of them, in sorted order per pattern."""
    if isinstance(paths, (str, os.PathLike)):
        paths = [paths]
    out: List[str] = []
    for p in paths:
        p = os.fspath(p)
        if any(ch in p for ch in "*?["):
            matched = sorted(glob.glob(p))
            if not matched:
                raise ValueError(f"paths: pattern {p!r} matches no file")
            out.extend(matched)
        else:
            if not os.path.isfile(p):
                raise ValueError(f"paths: file {p!r} does not exist")
            out.append(p)
    if not out:
        raise ValueError("paths: no input file given")
    return out


def _good_files(paths: Paths, schema: Schema, check_file: Callable[[str], None],
                batch_size: int, num_parallel_reads: int, skip_bad_files: bool,
                bad_files: Optional[BadFileCounter]) -> List[str]:
    """The files that pass ``check_file`` (bad ones raise, or are counted and left out)."""
    check_positive_int(batch_size, "batch_size")
    check_positive_int(num_parallel_reads, "num_parallel_reads")
    if not isinstance(schema, Schema):
        raise ValueError(f"schema must be a deeprec_lite.data.Schema, got {type(schema).__name__}")
    good: List[str] = []
    for path in expand_paths(paths):
        try:
            check_file(path)
            good.append(path)
        except BadFileError as e:
            if not skip_bad_files:
                raise
            if bad_files is not None:
                bad_files.add(path, str(e))
    return good


def _round_robin(things: list, count: int) -> List[list]:
    count = max(1, min(count, len(things)))
    return [things[i::count] for i in range(count)]


def native_files_dataset(paths: Paths, schema: Schema, *, check_file: Callable[[str], None],
                         batch_size: int, csv: Optional[arrow_dataset.CsvOptions] = None,
                         batch_rows: int = 65536, num_parallel_reads: int = 1,
                         drop_remainder: bool = False, deterministic: bool = True,
                         skip_bad_files: bool = False, bad_files: Optional[BadFileCounter] = None,
                         prefetch: Optional[int] = tf.data.AUTOTUNE,
                         worker_shard: Optional[Tuple[int, int]] = None,
                         row_groups: Optional[Callable[[str], List[Tuple[int, int]]]] = None
                         ) -> tf.data.Dataset:
    """Like :func:`files_to_dataset`, the files read by the C++ reader op: Parquet, or CSV /
    TSV when ``csv`` is given. The shards' batches interleave in the same order as there
    (``chunk_batches(batch_size)`` batches of a shard at a time). The op decodes, converts
    and copies a file's columns in parallel itself, so tf.data tunes how many threads read
    the shards (a fixed thread per shard halved the rate on 2 cores).

    ``worker_shard=(index, count)`` with ``row_groups(path)`` (the row ranges of a file's
    row groups): this reader takes every ``count``-th row group of the files, starting at
    ``index``, so ``count`` workers read each row exactly once.
    """
    good = _good_files(paths, schema, check_file, batch_size, num_parallel_reads,
                       skip_bad_files, bad_files)
    items = [(path, 0, -1) for path in good]
    if worker_shard is not None:
        index, count = worker_shard
        groups = [(path, start, stop) for path in good for start, stop in row_groups(path)]
        items = groups[index::count]
    shards = _round_robin(items, num_parallel_reads)
    log = None
    if skip_bad_files:
        log = arrow_dataset.NativeBadFileLog()
        if bad_files is not None:
            bad_files.attach(log)

    def read_shard(shard_paths, starts, stops):
        return arrow_dataset.items_dataset(
            schema, shard_paths, starts, stops, batch_size, csv=csv, batch_rows=batch_rows,
            drop_remainder=drop_remainder, bad_file_log=log)

    dtypes = (tf.string, tf.int64, tf.int64)  # the items' paths, starts and stops
    if len(shards) == 1:
        ds = read_shard(*(tf.constant([item[k] for item in shards[0]], dtype,
                                      shape=[len(shards[0])]) for k, dtype in enumerate(dtypes)))
    else:
        tables = [tf.ragged.constant([[item[k] for item in shard] for shard in shards],
                                     dtype=dtype) for k, dtype in enumerate(dtypes)]
        ds = tf.data.Dataset.range(len(shards)).interleave(
            lambda i: read_shard(*(table[i] for table in tables)), cycle_length=len(shards),
            block_length=chunk_batches(batch_size), num_parallel_calls=tf.data.AUTOTUNE,
            deterministic=deterministic)
    return ds.prefetch(prefetch) if prefetch else ds


def files_to_dataset(paths: Paths, schema: Schema, *,
                     check_file: Callable[[str], None],
                     read_file: Callable[[str], Iterator[ColumnBatch]],
                     batch_size: int,
                     num_parallel_reads: int = 1,
                     drop_remainder: bool = False,
                     deterministic: bool = True,
                     skip_bad_files: bool = False,
                     bad_files: Optional[BadFileCounter] = None,
                     prefetch: Optional[int] = tf.data.AUTOTUNE,
                     extra_columns: Optional[ExtraColumns] = None) -> tf.data.Dataset:
    """Builds the dataset of ``(features, label)`` batches; see the module docstring.

    With ``skip_bad_files`` a bad file is skipped and recorded in ``bad_files``
    (rows read from a file before a mid-file error are kept); otherwise the
    first bad file raises BadFileError (at construction when ``check_file``
    finds it, else while iterating, as a tf error whose message names the file
    and column). ``extra_columns`` (name -> (dtype, ragged)) are columns that
    ``read_file`` yields beyond the schema; they end up in the features dict.
    """
    shards = _round_robin(_good_files(paths, schema, check_file, batch_size, num_parallel_reads,
                                      skip_bad_files, bad_files), num_parallel_reads)
    counter = bad_files if bad_files is not None else BadFileCounter()
    num_shards = len(shards)

    def read_shard_files(shard_files):
        for path in shard_files:
            try:
                yield from read_file(path)
            except BadFileError as e:
                if not skip_bad_files:
                    raise
                counter.add(path, str(e))

    def generate(shard_index):
        return rebatch_chunks(read_shard_files(shards[shard_index]), batch_size,
                              chunk_batches(batch_size), drop_remainder)

    return column_batches_to_dataset(generate, num_shards, schema, extra_columns=extra_columns,
                                     deterministic=deterministic, batch_size=batch_size,
                                     prefetch=prefetch)
