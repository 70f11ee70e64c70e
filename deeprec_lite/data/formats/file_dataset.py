"""The shared machinery of the file readers: files -> batched, parallel tf.data.Dataset.

A reader supplies two functions: ``check_file(path)`` (cheap, at construction:
raises BadFileError for a missing column, a wrong type, a truncated file) and
``read_file(path)`` (yields column batches of any size). This module expands
the paths, checks the files (skipping and counting bad ones when asked), splits
the files into ``num_parallel_reads`` shards read in parallel, cuts each shard
into batches of exactly ``batch_size`` rows (the last batch of each shard may
be shorter), and assembles feature dicts with ragged multi-valued fields.
"""
from __future__ import annotations

import glob
import os
from typing import Callable, Iterator, List, Optional, Sequence, Union

from deeprec_lite._checks import check_positive_int
from deeprec_lite.compat import tf
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
    check_positive_int(batch_size, "batch_size")
    check_positive_int(num_parallel_reads, "num_parallel_reads")
    if not isinstance(schema, Schema):
        raise ValueError(f"schema must be a deeprec_lite.data.Schema, got {type(schema).__name__}")
    files = expand_paths(paths)
    counter = bad_files if bad_files is not None else BadFileCounter()
    good: List[str] = []
    for path in files:
        try:
            check_file(path)
            good.append(path)
        except BadFileError as e:
            if not skip_bad_files:
                raise
            counter.add(path, str(e))
    num_shards = max(1, min(num_parallel_reads, len(good)))
    shards = [good[i::num_shards] for i in range(num_shards)]

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
