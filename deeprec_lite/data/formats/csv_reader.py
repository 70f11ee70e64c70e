"""CSV / TSV input (Criteo, Avazu style) through pyarrow's streaming CSV reader.

Missing values (empty cells by default) become the field's default: ``default``
for a single categorical id, an empty row for a multi-valued field, and
``fill_value`` for a numeric field. A missing label is an error.

Files either start with a header line (``header=True``), or have none and the
caller names every column in file order with ``column_names`` (Criteo's
``train.txt``: label, I1..I13, C1..C26). Only the schema's columns are converted.
Quoted fields may not contain line breaks when rows are read by range
(:func:`read_csv_rows` with ``start``/``stop``, as the WorkQueue does).
"""
from __future__ import annotations

import io
import os
import re
from typing import Iterator, List, Optional, Sequence

import numpy as np
import pyarrow as pa
import pyarrow.csv as pacsv

from deeprec_lite._checks import check_int
from deeprec_lite.compat import tf
from deeprec_lite.data.formats.arrow_columns import arrow_to_columns
from deeprec_lite.data.formats.column_batch import ColumnBatch
from deeprec_lite.data.formats.errors import BadFileCounter, BadFileError
from deeprec_lite.data.formats.arrow_dataset import CsvOptions
from deeprec_lite.data.formats.file_dataset import Paths, native_files_dataset
from deeprec_lite.data.formats.line_index import read_row_bytes, row_offsets
from deeprec_lite.data.formats.schema import CategoricalField, LabelField, NumericField, Schema

DEFAULT_BLOCK_SIZE = 4 << 20


class CsvFormat:
    """How a text file is laid out.

    Args:
      delimiter: ``","`` for CSV, ``"\\t"`` for TSV.
      header: the first line holds the column names.
      column_names: every column of a header-less file, in order (required when
        ``header`` is False, ignored otherwise).
      missing_values: cell texts that mean "missing" (default: the empty cell): a list of
        strings, or one string.
      quote_char: quoting character (one character), or False (or None) for none.
    """

    def __init__(self, delimiter: str = ",", header: bool = True,
                 column_names: Optional[Sequence[str]] = None,
                 missing_values: Sequence[str] = ("",), quote_char="\""):
        if not isinstance(delimiter, str) or len(delimiter) != 1:
            raise ValueError(f"delimiter must be one character, got {delimiter!r}")
        if not header and not column_names:
            raise ValueError("column_names must list the file's columns when header=False, "
                             f"got {column_names!r}")
        if column_names is not None and len(set(column_names)) != len(column_names):
            raise ValueError(f"column_names has duplicates: {list(column_names)!r}")
        self.delimiter = delimiter
        self.header = bool(header)
        self.column_names = list(column_names) if column_names is not None else None
        if isinstance(missing_values, str):
            missing_values = [missing_values]
        elif (isinstance(missing_values, (list, tuple))
              and all(isinstance(v, str) for v in missing_values)):
            missing_values = list(missing_values)
        else:
            raise ValueError("missing_values must be a string or a list of strings, got "
                             f"{missing_values!r}")
        if quote_char is None or quote_char is False:
            quote_char = False
        elif not isinstance(quote_char, str) or len(quote_char) != 1:
            raise ValueError("quote_char must be one character, or False or None for no quoting, "
                             f"got {quote_char!r}")
        self.missing_values = missing_values
        self.quote_char = quote_char

    def options(self, block_size: int) -> CsvOptions:
        """This format as the native reader op takes it, parsing blocks of `block_size` bytes."""
        return CsvOptions(self.delimiter, self.header, self.column_names, self.missing_values,
                          self.quote_char, block_size)


def _arrow_type(field) -> pa.DataType:
    if isinstance(field, (LabelField, NumericField)):
        return pa.float64()
    if isinstance(field, CategoricalField) and field.kind == "single" and field.dtype == "int64":
        return pa.int64()
    return pa.string()


def _header_names(path: str, fmt: CsvFormat) -> List[str]:
    with open(path, "rb") as f:
        first = f.readline()
    if not first.strip():
        raise BadFileError(path, "empty file: no header line")
    text = first.decode("utf-8", errors="replace").rstrip("\r\n")
    names = text.split(fmt.delimiter)
    if fmt.quote_char:
        names = [n.strip(fmt.quote_char) for n in names]
    return names


def file_column_names(path: str, fmt: CsvFormat) -> List[str]:
    """The columns of a file: its header line, or ``fmt.column_names``."""
    return _header_names(path, fmt) if fmt.header else list(fmt.column_names)


def check_csv_file(path: str, schema: Schema, fmt: CsvFormat) -> None:
    """Cheap checks at construction: the header (or column_names) holds every schema column."""
    names = file_column_names(path, fmt)
    for field in schema.fields:
        if field.name not in names:
            source = "header" if fmt.header else "column_names"
            raise BadFileError(path, f"column is missing ({source}: {names})", column=field.name)


def check_block_size(block_size) -> int:
    """`block_size` (bytes per block parsed) if it is an integer in [1, 2**31) (Arrow's
    CSV block size is an int32); else ValueError."""
    return check_int(block_size, "block_size", minimum=1, below=2 ** 31)


def _options(names: List[str], schema: Schema, fmt: CsvFormat, block_size: int, skip_header: bool):
    read = pacsv.ReadOptions(column_names=names, skip_rows=1 if skip_header else 0,
                             block_size=block_size, use_threads=True)
    parse = pacsv.ParseOptions(delimiter=fmt.delimiter, quote_char=fmt.quote_char)
    convert = pacsv.ConvertOptions(
        column_types={f.name: _arrow_type(f) for f in schema.fields},
        include_columns=schema.column_names, null_values=fmt.missing_values,
        strings_can_be_null=True, quoted_strings_can_be_null=True)
    return read, parse, convert


_COLUMN_INDEX = re.compile(r"column #(\d+)")


def _csv_error(path: str, names: List[str], error: Exception) -> BadFileError:
    message = str(error)
    match = _COLUMN_INDEX.search(message)
    column = None
    if match and int(match.group(1)) < len(names):
        column = names[int(match.group(1))]
    return BadFileError(path, f"cannot parse: {message}", column=column)


def read_csv_rows(path: str, schema: Schema, fmt: CsvFormat, start: int = 0,
                  stop: Optional[int] = None, block_size: int = DEFAULT_BLOCK_SIZE,
                  offsets: Optional[np.ndarray] = None) -> Iterator[ColumnBatch]:
    """Streams one file as column batches; with start/stop only data rows ``[start, stop)``.

    ``offsets`` (from :func:`deeprec_lite.data.formats.line_index.row_offsets`) saves the
    line scan when reading many ranges of one file.
    """
    block_size = check_block_size(block_size)
    names = file_column_names(path, fmt)
    if os.path.getsize(path) == 0:
        return
    if start == 0 and stop is None:
        read, parse, convert = _options(names, schema, fmt, block_size, fmt.header)
        try:
            reader = pacsv.open_csv(path, read_options=read, parse_options=parse,
                                    convert_options=convert)
            for batch in reader:
                yield arrow_to_columns(batch, schema, path)
        except pa.ArrowInvalid as e:
            if "Empty CSV file" in str(e):
                return
            raise _csv_error(path, names, e) from None
        return
    if offsets is None:
        offsets = row_offsets(path, fmt.header)
    total = len(offsets) - 1
    stop = total if stop is None else min(stop, total)
    if start >= stop:
        return
    data = read_row_bytes(path, offsets, start, stop)
    read, parse, convert = _options(names, schema, fmt, block_size, False)
    try:
        table = pacsv.read_csv(io.BytesIO(data), read_options=read, parse_options=parse,
                               convert_options=convert)
    except pa.ArrowInvalid as e:
        raise _csv_error(path, names, e) from None
    if table.num_rows != stop - start:
        raise BadFileError(path, f"rows {start}..{stop} parsed into {table.num_rows} rows; "
                           "quoted line breaks are not supported when reading by row range")
    yield arrow_to_columns(table, schema, path)


def csv_num_rows(path: str, header: bool) -> int:
    """Number of data rows (blank lines and the header excluded)."""
    return len(row_offsets(path, header)) - 1


def read_csv(paths: Paths, schema: Schema, batch_size: int, *, delimiter: str = ",",
             header: bool = True, column_names: Optional[Sequence[str]] = None,
             missing_values: Sequence[str] = ("",), quote_char="\"",
             num_parallel_reads: int = 2, block_size: int = DEFAULT_BLOCK_SIZE,
             drop_remainder: bool = False, deterministic: bool = True,
             skip_bad_files: bool = False, bad_files: Optional[BadFileCounter] = None,
             prefetch: Optional[int] = tf.data.AUTOTUNE) -> tf.data.Dataset:
    """A tf.data.Dataset of ``(features, label)`` batches from CSV / TSV files, read in C++
    (Arrow's streaming CSV reader inside a tf.data op).

    See :class:`CsvFormat` for ``delimiter``, ``header``, ``column_names``,
    ``missing_values`` and ``quote_char``, and
    :func:`deeprec_lite.data.formats.parquet_reader.read_parquet` for the other arguments.
    A cell that does not parse as its field's type raises
    ``tf.errors.InvalidArgumentError`` naming the file and the column while the file is
    read (or skips the file with ``skip_bad_files``).
    """
    fmt = CsvFormat(delimiter, header, column_names, missing_values, quote_char)
    block_size = check_block_size(block_size)
    return native_files_dataset(
        paths, schema,
        check_file=lambda p: check_csv_file(p, schema, fmt),
        csv=fmt.options(block_size),
        batch_size=batch_size, num_parallel_reads=num_parallel_reads,
        drop_remainder=drop_remainder, deterministic=deterministic,
        skip_bad_files=skip_bad_files, bad_files=bad_files, prefetch=prefetch)


def read_tsv(paths: Paths, schema: Schema, batch_size: int, **kwargs) -> tf.data.Dataset:
    """:func:`read_csv` with a tab delimiter (Criteo ``train.txt`` style)."""
    kwargs.setdefault("delimiter", "\t")
    return read_csv(paths, schema, batch_size, **kwargs)
