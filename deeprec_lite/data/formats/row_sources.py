"""Row-range sources: what the WorkQueue reads a work item with (Parquet, CSV/TSV, libFM)."""
from __future__ import annotations

import threading
from typing import Dict, Iterator, Optional, Sequence, Tuple

import numpy as np

from deeprec_lite.compat import tf
from deeprec_lite.data.formats.arrow_dataset import CsvOptions
from deeprec_lite.data.formats.column_batch import ColumnBatch
from deeprec_lite.data.formats.csv_reader import (DEFAULT_BLOCK_SIZE, CsvFormat, check_csv_file,
                                                  read_csv_rows)
from deeprec_lite.data.formats.libsvm_reader import (LibsvmLayout, libsvm_row_offsets,
                                                     read_libsvm_rows)
from deeprec_lite.data.formats.line_index import row_offsets
from deeprec_lite.data.formats.parquet_reader import (DEFAULT_CHUNK_ROWS, check_parquet_file,
                                              open_parquet, read_parquet_rows)
from deeprec_lite.data.formats.schema import Schema


class RowSource:
    """Reads rows ``[start, stop)`` of a file as column batches of a schema.

    Subclasses define ``schema``, ``extra_columns`` (columns beyond the schema,
    name -> (tf dtype, ragged)), ``check(path)``, ``num_rows(path)`` and
    ``read(path, start, stop)``. Sources the C++ reader op reads (``native``) also
    define ``native_range(path, start, stop)``: the op's work item for those rows,
    ``(start, stop, rows)`` (rows -1: not checked), and ``csv_options`` (None: Parquet).
    """

    schema: Schema
    extra_columns: Dict = {}
    native = False
    csv_options: Optional[CsvOptions] = None
    batch_rows = DEFAULT_CHUNK_ROWS

    def native_range(self, path: str, start: int, stop: int) -> Tuple[int, int, int]:
        raise NotImplementedError

    def check(self, path: str) -> None:
        """Raises BadFileError when the file cannot be read as the schema says."""
        raise NotImplementedError

    def num_rows(self, path: str) -> int:
        raise NotImplementedError

    def read(self, path: str, start: int, stop: int) -> Iterator[ColumnBatch]:
        raise NotImplementedError


class ParquetSource(RowSource):
    """Parquet files; only the row groups overlapping a range are read."""

    native = True

    def __init__(self, schema: Schema, chunk_rows: int = DEFAULT_CHUNK_ROWS):
        self.schema = schema
        self.chunk_rows = self.batch_rows = chunk_rows
        self._lock = threading.Lock()
        self._footers: Dict[str, object] = {}

    def _footer(self, path):
        with self._lock:
            footer = self._footers.get(path)
        if footer is None:
            footer = open_parquet(path).metadata
            with self._lock:
                self._footers[path] = footer
        return footer

    def check(self, path):
        check_parquet_file(path, self.schema)

    def num_rows(self, path):
        return self._footer(path).num_rows

    def read(self, path, start, stop):
        return read_parquet_rows(path, self.schema, start, stop, chunk_rows=self.chunk_rows,
                                 metadata=self._footer(path))

    def native_range(self, path, start, stop):
        return start, stop, -1


class _LineIndexCache:
    """Row offsets per text file, computed once (a vectorized scan) and shared by threads."""

    def __init__(self, row_offsets_fn):
        self._row_offsets = row_offsets_fn
        self._lock = threading.Lock()
        self._offsets: Dict[str, np.ndarray] = {}

    def get(self, path: str) -> np.ndarray:
        with self._lock:
            cached = self._offsets.get(path)
        if cached is None:
            cached = self._row_offsets(path)
            with self._lock:
                self._offsets[path] = cached
        return cached


class CsvSource(RowSource):
    """CSV / TSV files (see :class:`CsvFormat`); ranges are found through a line index."""

    native = True

    def __init__(self, schema: Schema, delimiter: str = ",", header: bool = True,
                 column_names: Optional[Sequence[str]] = None,
                 missing_values: Sequence[str] = ("",), quote_char="\""):
        self.schema = schema
        self.format = CsvFormat(delimiter, header, column_names, missing_values, quote_char)
        self.csv_options = self.format.options(DEFAULT_BLOCK_SIZE)
        header = self.format.header
        self._index = _LineIndexCache(lambda path: row_offsets(path, header))

    def check(self, path):
        check_csv_file(path, self.schema, self.format)

    def num_rows(self, path):
        return len(self._index.get(path)) - 1

    def read(self, path, start, stop):
        return read_csv_rows(path, self.schema, self.format, start, stop,
                             offsets=self._index.get(path))

    def native_range(self, path, start, stop):
        offsets = self._index.get(path)
        stop = min(stop, len(offsets) - 1)
        return int(offsets[start]), int(offsets[stop]), stop - start


class LibsvmSource(RowSource):
    """libFM / libSVM files (see :class:`LibsvmLayout`)."""

    def __init__(self, layout: Optional[LibsvmLayout] = None):
        self.layout = layout or LibsvmLayout()
        self.schema = self.layout.schema
        self.extra_columns = {n: (tf.float32, r) for n, r in self.layout.value_columns.items()}
        self._index = _LineIndexCache(libsvm_row_offsets)

    def check(self, path):
        return None

    def num_rows(self, path):
        return len(self._index.get(path)) - 1

    def read(self, path, start, stop):
        return read_libsvm_rows(path, self.layout, start, stop, offsets=self._index.get(path))
