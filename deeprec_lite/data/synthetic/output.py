"""Synthetic data out: Arrow tables, Parquet / CSV files (written atomically), tf.data."""
from __future__ import annotations

import dataclasses
import os
import tempfile
from typing import List

import numpy as np
import pyarrow as pa
import pyarrow.csv as pacsv
import pyarrow.parquet as pq

from deeprec_lite._checks import check_positive_int
from deeprec_lite.data.auc import bayes_auc
from deeprec_lite.data.synthetic.generator import CHUNK_ROWS, SyntheticCTR, check_rows


@dataclasses.dataclass
class SyntheticFiles:
    """What a writer produced: the files, the rows, and the best achievable AUC on them."""

    paths: List[str]
    num_rows: int
    day: int
    bayes_auc: float
    ctr: float


def _atomic_target(directory: str, name: str):
    fd, tmp = tempfile.mkstemp(prefix=f".{name}.", suffix=".tmp", dir=directory)
    os.close(fd)
    return tmp, os.path.join(directory, name)


def _write_files(generator: SyntheticCTR, directory: str, num_rows: int, day: int,
                 rows_per_file: int, suffix: str, write_table) -> SyntheticFiles:
    check_rows(num_rows, day, 0)
    check_positive_int(rows_per_file, "rows_per_file")
    os.makedirs(directory, exist_ok=True)
    paths, probabilities, clicks = [], [], 0.0
    for index, first in enumerate(range(0, num_rows, rows_per_file)):
        count = min(rows_per_file, num_rows - first)
        tmp, final = _atomic_target(directory, f"day{day:03d}-part{index:05d}.{suffix}")
        try:
            pieces = generator.iter_rows(count, day=day, start_row=first, max_rows=CHUNK_ROWS)
            for rows in write_table(tmp, pieces, generator):
                probabilities.append(rows.probabilities)
                clicks += float(rows.labels.sum())
            os.replace(tmp, final)
        except BaseException:
            if os.path.exists(tmp):
                os.unlink(tmp)
            raise
        paths.append(final)
    p = np.concatenate(probabilities) if probabilities else np.zeros(0)
    return SyntheticFiles(paths, num_rows, day, bayes_auc(p) if len(p) > 1 else float("nan"),
                          clicks / max(num_rows, 1))


def write_parquet(generator: SyntheticCTR, directory: str, num_rows: int, day: int = 0,
                  rows_per_file: int = 1_000_000, row_group_rows: int = CHUNK_ROWS) -> SyntheticFiles:
    """Writes ``num_rows`` rows of ``day`` as ``day<DDD>-part<NNNNN>.parquet`` files.

    Each file is written to a temporary name and renamed into place.
    Returns the paths and the Bayes AUC of the written rows.
    """
    def write_table(tmp, pieces, gen):
        writer = None
        try:
            for rows in pieces:
                table = gen.to_arrow(rows)
                if writer is None:
                    writer = pq.ParquetWriter(tmp, table.schema)
                writer.write_table(table, row_group_size=row_group_rows)
                yield rows
        finally:
            if writer is not None:
                writer.close()

    return _write_files(generator, directory, num_rows, day, rows_per_file, "parquet", write_table)


def write_csv(generator: SyntheticCTR, directory: str, num_rows: int, day: int = 0,
              rows_per_file: int = 1_000_000, delimiter: str = ",",
              header: bool = True) -> SyntheticFiles:
    """Writes ``num_rows`` rows of ``day`` as CSV (or TSV with ``delimiter="\\t"``) files.

    Missing values are empty cells. Columns: label, C*, I* (``generator.schema.column_names``).
    """
    suffix = "tsv" if delimiter == "\t" else "csv"

    def write_table(tmp, pieces, gen):
        with pa.OSFile(tmp, "wb") as sink:
            writer = None
            try:
                for rows in pieces:
                    table = gen.to_arrow(rows)
                    if writer is None:
                        options = pacsv.WriteOptions(include_header=header, delimiter=delimiter,
                                                     quoting_style="none")
                        writer = pacsv.CSVWriter(sink, table.schema, write_options=options)
                    writer.write_table(table)
                    yield rows
            finally:
                if writer is not None:
                    writer.close()

    return _write_files(generator, directory, num_rows, day, rows_per_file, suffix, write_table)
