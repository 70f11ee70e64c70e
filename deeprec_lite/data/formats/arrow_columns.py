"""Arrow record batches -> schema-typed numpy column batches (vectorized).

Every problem is reported as a :class:`BadFileError` naming the file and the
column: a missing column, a column of the wrong type, ids that do not parse,
missing labels.
"""
from __future__ import annotations

from typing import Union

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from deeprec_lite.data.formats.column_batch import ColumnBatch, RaggedColumn
from deeprec_lite.data.formats.errors import BadFileError
from deeprec_lite.data.formats.id_hashing import hash_string_array
from deeprec_lite.data.formats.numeric_transforms import transform_numeric
from deeprec_lite.data.formats.schema import CategoricalField, LabelField, NumericField, Schema

ArrowData = Union[pa.RecordBatch, pa.Table]


def _plain(arr) -> pa.Array:
    """One contiguous array, dictionary-decoded."""
    if isinstance(arr, pa.ChunkedArray):
        arr = arr.combine_chunks() if arr.num_chunks != 1 else arr.chunk(0)
    if pa.types.is_dictionary(arr.type):
        arr = arr.dictionary_decode()
    return arr


def _is_number(t: pa.DataType) -> bool:
    return pa.types.is_integer(t) or pa.types.is_floating(t) or pa.types.is_boolean(t)


def _is_text(t: pa.DataType) -> bool:
    return pa.types.is_string(t) or pa.types.is_large_string(t)


def _is_list(t: pa.DataType) -> bool:
    return pa.types.is_list(t) or pa.types.is_large_list(t) or pa.types.is_fixed_size_list(t)


def check_arrow_schema(arrow_schema: pa.Schema, schema: Schema, path: str) -> None:
    """Raises BadFileError when a column is missing or has a type the field cannot take."""
    for field in schema.fields:
        found = arrow_schema.get_all_field_indices(field.name)
        if not found:
            raise BadFileError(path, f"column is missing (file has columns "
                               f"{arrow_schema.names})", column=field.name)
        if len(found) > 1:
            raise BadFileError(path, f"column appears {len(found)} times in the file (columns "
                               f"{arrow_schema.names})", column=field.name)
        t = arrow_schema.field(found[0]).type
        if pa.types.is_dictionary(t):
            t = t.value_type
        if pa.types.is_null(t):
            continue
        ok = True
        if isinstance(field, (LabelField, NumericField)):
            ok = _is_number(t)
            want = "a numeric type"
        elif field.kind == "single":
            ok = pa.types.is_integer(t) if field.dtype == "int64" else _is_text(t)
            want = "an integer type" if field.dtype == "int64" else "a string type"
        else:
            inner = t.value_type if _is_list(t) else None
            if inner is not None and pa.types.is_dictionary(inner):
                inner = inner.value_type
            if inner is None:
                ok = _is_text(t)  # separator-joined ids
            elif field.dtype == "int64":
                ok = pa.types.is_integer(inner) or pa.types.is_null(inner)
            else:
                ok = _is_text(inner) or pa.types.is_null(inner)
            want = (f"a list of {'integers' if field.dtype == 'int64' else 'strings'} "
                    f"or a string of ids joined by {field.separator!r}")
        if not ok:
            raise BadFileError(path, f"has type {t}, but schema field {field.name!r} needs "
                               f"{want}", column=field.name)


def check_labels(values: np.ndarray, field: LabelField, path: str, binary: bool) -> None:
    """Rejects non-finite labels and, when `binary`, labels outside [0, 1]."""
    bad = ~np.isfinite(values)
    if bad.any():
        raise BadFileError(path, f"{int(bad.sum())} label(s) are not finite (first: "
                                 f"{values[bad][0]})", column=field.name)
    if binary:
        outside = (values < 0) | (values > 1)
        if outside.any():
            raise BadFileError(path, f"{int(outside.sum())} label(s) of a binary label are "
                                     f"outside [0, 1] (first: {values[outside][0]})",
                               column=field.name)


def _label_column(arr: pa.Array, field: LabelField, path: str) -> np.ndarray:
    if arr.null_count:
        raise BadFileError(path, f"label has {arr.null_count} missing value(s)", column=field.name)
    values = arr.cast(pa.float64()).to_numpy(zero_copy_only=False)
    check_labels(values, field, path, field.binary)
    if field.dtype == "int64":
        return values.astype(np.int64)
    return values.astype(np.float32)


def _numeric_column(arr: pa.Array, field: NumericField, path: str) -> np.ndarray:
    if arr.type != pa.float64():
        arr = arr.cast(pa.float64())
    values = arr.to_numpy(zero_copy_only=False)
    infinite = np.isinf(values)
    if infinite.any():
        raise BadFileError(path, f"{int(infinite.sum())} infinite value(s) (first: "
                                 f"{values[infinite][0]})", column=field.name)
    return transform_numeric(values, field)


def _single_ids(arr: pa.Array, field: CategoricalField, path: str) -> np.ndarray:
    if field.dtype == "int64":
        if pa.types.is_null(arr.type):
            return np.full(len(arr), field.default, dtype=np.int64)
        if arr.type != pa.int64():
            arr = arr.cast(pa.int64())
        if arr.null_count:
            arr = pc.fill_null(arr, field.default)
        return arr.to_numpy(zero_copy_only=False)
    if pa.types.is_null(arr.type):
        return np.full(len(arr), field.default, dtype=object)
    if arr.type != pa.string():
        arr = arr.cast(pa.string())
    if arr.null_count:
        arr = pc.fill_null(arr, field.default)
    return arr.to_numpy(zero_copy_only=False)


def _truncate(values: np.ndarray, lengths: np.ndarray, max_len: int, keep: str):
    """Keeps at most max_len values per row (first or last ones), vectorized."""
    if len(lengths) == 0 or lengths.max(initial=0) <= max_len:
        return values, lengths
    starts = np.repeat(np.cumsum(lengths) - lengths, lengths)
    position = np.arange(len(values), dtype=np.int64) - starts
    if keep == "first":
        mask = position < max_len
    else:
        mask = position >= np.repeat(lengths, lengths) - max_len
    return values[mask], np.minimum(lengths, max_len)


def _multi_ids(arr: pa.Array, field: CategoricalField, path: str) -> RaggedColumn:
    n = len(arr)
    if pa.types.is_null(arr.type):
        empty = np.zeros(0, dtype=np.int64 if field.dtype == "int64" else object)
        return RaggedColumn(empty, np.zeros(n, dtype=np.int64))
    if _is_text(arr.type):
        arr = pc.split_pattern(arr.cast(pa.string()), field.separator)
    lengths = pc.fill_null(pc.list_value_length(arr), 0).to_numpy(zero_copy_only=False)
    lengths = lengths.astype(np.int64)
    flat = _plain(pc.list_flatten(arr))
    # Drop null and empty elements (e.g. "a||b"), keeping the per-row counts right.
    drop = flat.is_null()
    if _is_text(flat.type):
        drop = pc.or_(pc.fill_null(drop, True), pc.equal(pc.utf8_length(flat), 0))
    drop = pc.fill_null(drop, True).to_numpy(zero_copy_only=False)
    if drop.any():
        row_of_value = np.repeat(np.arange(n, dtype=np.int64), lengths)
        lengths = lengths - np.bincount(row_of_value[drop], minlength=n).astype(np.int64)
        flat = flat.filter(pa.array(~drop))
    if field.dtype == "int64":
        try:
            values = flat.cast(pa.int64()).to_numpy(zero_copy_only=False).astype(np.int64, copy=False)
        except (pa.ArrowInvalid, pa.ArrowNotImplementedError) as e:
            raise BadFileError(path, f"ids do not parse as int64: {e}", column=field.name) from None
    else:
        values = flat.cast(pa.string()).to_numpy(zero_copy_only=False)
    if field.max_len is not None:
        values, lengths = _truncate(values, lengths, field.max_len, field.keep)
    return RaggedColumn(values, lengths)


def _hashed(column):
    if isinstance(column, RaggedColumn):
        return RaggedColumn(hash_string_array(column.values), column.row_lengths)
    return hash_string_array(column)


def arrow_to_columns(data: ArrowData, schema: Schema, path: str,
                     schema_checked: bool = False) -> ColumnBatch:
    """Converts an arrow batch or table holding the schema's columns into a column batch.

    Labels come out as float32/int64 arrays, single ids as int64 / object (str)
    arrays (int64 for ``hash_to_int64`` fields), multi-valued ids as RaggedColumn,
    numeric fields transformed float32.
    ``schema_checked``: the caller already ran :func:`check_arrow_schema` on
    this file's schema.
    """
    if not schema_checked:
        check_arrow_schema(data.schema, schema, path)
    out: ColumnBatch = {}
    for field in schema.fields:
        arr = _plain(data.column(field.name))
        try:
            if isinstance(field, LabelField):
                out[field.name] = _label_column(arr, field, path)
            elif isinstance(field, NumericField):
                out[field.name] = _numeric_column(arr, field, path)
            elif field.kind == "single":
                out[field.name] = _single_ids(arr, field, path)
            else:
                out[field.name] = _multi_ids(arr, field, path)
            if isinstance(field, CategoricalField) and field.hash_to_int64:
                out[field.name] = _hashed(out[field.name])
        except BadFileError:
            raise
        except (pa.ArrowInvalid, pa.ArrowNotImplementedError, pa.ArrowTypeError) as e:
            raise BadFileError(path, f"cannot convert for schema field: {e}",
                               column=field.name) from None
    return out
