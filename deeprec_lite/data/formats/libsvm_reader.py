"""libFM / libSVM input (``label idx:val idx:val ...``, e.g. Frappe), parsed by pyarrow.

Each line is a label followed by ``index:value`` pairs. The indices are mapped
to named categorical fields by index range (``field_ranges``: name ->
``(low, high)``, inclusive): Frappe has 10 one-hot fields, each a range of
global indices. The raw global index is the feature id (ids of different
fields do not collide). A ``single`` field takes at most one index per line (a
line without one gets the field's default); a ``multi`` field takes any number.
Indices outside every range are dropped. With ``with_values`` each field ``F``
also yields ``F + "_value"`` (float32, same shape as ``F``; 0 for a missing
single value) holding the values; otherwise values are ignored.

Parsing is vectorized: whole blocks of lines are split by pyarrow compute
kernels, never line by line in Python.
"""
from __future__ import annotations

from typing import Dict, Iterator, Mapping, Optional, Tuple

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from deeprec_lite._checks import check_int, is_int
from deeprec_lite.data.formats.arrow_columns import check_labels
from deeprec_lite.compat import tf
from deeprec_lite.data.formats.column_batch import ColumnBatch, RaggedColumn
from deeprec_lite.data.formats.errors import BadFileCounter, BadFileError
from deeprec_lite.data.formats.file_dataset import Paths, files_to_dataset
from deeprec_lite.data.formats.line_index import WHITESPACE, read_row_bytes, row_offsets
from deeprec_lite.data.formats.schema import CategoricalField, LabelField, Schema

DEFAULT_BLOCK_BYTES = 8 << 20
ALL_IDS = (0, np.iinfo(np.int64).max)
_SPACES = WHITESPACE.decode("ascii")   # blank lines and token separators


class LibsvmLayout:
    """Which index ranges form which fields, and how labels are read.

    Args:
      schema: labels (exactly one) and int64 categorical fields; no numeric fields.
        Defaults to label ``"label"`` and one multi-valued field ``"ids"``
        holding every index.
      field_ranges: field name -> (low, high) inclusive index range, for every
        categorical field of the schema (not needed for the default schema).
      binary_label: map labels > 0 to 1.0 and the others (0, -1) to 0.0.
      with_values: also yield ``<field>_value`` float32 columns.
    """

    def __init__(self, schema: Optional[Schema] = None,
                 field_ranges: Optional[Mapping[str, Tuple[int, int]]] = None,
                 binary_label: bool = True, with_values: bool = False):
        if schema is None:
            schema = Schema(labels=[LabelField("label")],
                            categorical=[CategoricalField("ids", kind="multi")])
            field_ranges = field_ranges or {"ids": ALL_IDS}
        if len(schema.labels) != 1:
            raise ValueError(f"libsvm schema needs exactly one label, got {schema.label_names}")
        if schema.numeric:
            raise ValueError("libsvm schema cannot have numeric fields, got "
                             f"{[f.name for f in schema.numeric]}")
        field_ranges = dict(field_ranges or {})
        for field in schema.categorical:
            if field.dtype != "int64":
                raise ValueError(f"libsvm field {field.name!r}: dtype must be 'int64', "
                                 f"got {field.dtype!r}")
            if field.name not in field_ranges:
                raise ValueError(f"field_ranges has no range for field {field.name!r}")
            bounds = field_ranges[field.name]
            if not (isinstance(bounds, (tuple, list)) and len(bounds) == 2
                    and all(is_int(b) for b in bounds) and 0 <= bounds[0] <= bounds[1]):
                raise ValueError(f"field_ranges[{field.name!r}] must be (low, high) ints "
                                 f"with 0 <= low <= high, got {bounds!r}")
        extra = sorted(set(field_ranges) - {f.name for f in schema.categorical})
        if extra:
            raise ValueError(f"field_ranges names fields missing from the schema: {extra}")
        by_low = sorted(field_ranges.items(), key=lambda kv: kv[1][0])
        for (name, (_, high)), (next_name, (next_low, _)) in zip(by_low, by_low[1:]):
            if next_low <= high:
                raise ValueError(f"field_ranges of {name!r} {field_ranges[name]!r} and "
                                 f"{next_name!r} {field_ranges[next_name]!r} overlap: the ids "
                                 f"of different fields must not collide")
        self.schema = schema
        self.field_ranges = {k: (int(v[0]), int(v[1])) for k, v in field_ranges.items()}
        self.binary_label = bool(binary_label)
        self.with_values = bool(with_values)

    @property
    def value_columns(self) -> Dict[str, bool]:
        """Extra value column name -> whether it is ragged."""
        if not self.with_values:
            return {}
        return {f.name + "_value": f.is_ragged for f in self.schema.categorical}


def _parse_lines(data: bytes, path: str, first_row: int):
    """bytes of whole lines -> labels (float64), row lengths, flat ids, flat values."""
    text = pa.array([data], type=pa.large_binary()).cast(pa.large_string())
    lines = pc.list_flatten(pc.split_pattern(text, "\n"))
    lines = pc.utf8_trim(lines, characters=_SPACES)
    lines = lines.filter(pc.greater(pc.utf8_length(lines), 0))   # the blank lines of row_offsets
    tokens = pc.split_pattern_regex(lines, "[" + _SPACES + "]+")
    counts = pc.list_value_length(tokens).to_numpy(zero_copy_only=False).astype(np.int64)
    try:
        labels = pc.list_element(tokens, 0).cast(pa.float64()).to_numpy(zero_copy_only=False)
    except pa.ArrowInvalid as e:
        raise BadFileError(path, f"rows {first_row}+: label does not parse: {e}",
                           column="label") from None
    pairs = pc.split_pattern(pc.list_flatten(pc.list_slice(tokens, 1)), ":", max_splits=1)
    pair_len = pc.list_value_length(pairs).to_numpy(zero_copy_only=False)
    if len(pair_len) and pair_len.min() != 2:
        bad = int(np.flatnonzero(pair_len != 2)[0])
        row = int(np.searchsorted(np.cumsum(counts - 1), bad, side="right"))
        raise BadFileError(path, f"row {first_row + row}: feature token is not 'index:value'")
    try:
        ids = pc.list_element(pairs, 0).cast(pa.int64()).to_numpy(zero_copy_only=False)
        values = pc.list_element(pairs, 1).cast(pa.float32()).to_numpy(zero_copy_only=False)
    except pa.ArrowInvalid as e:
        raise BadFileError(path, f"rows {first_row}+: index or value does not parse: {e}") from None
    return labels, counts - 1, ids.astype(np.int64, copy=False), values


def _to_columns(labels, lengths, ids, values, layout: LibsvmLayout, path: str,
                first_row: int) -> ColumnBatch:
    label_field = layout.schema.labels[0]
    # binary_label maps any finite label to 0 / 1 below, so only raw labels are range-checked
    check_labels(labels, label_field, path, label_field.binary and not layout.binary_label)
    if layout.binary_label:
        labels = (labels > 0).astype(np.float64)
    out: ColumnBatch = {label_field.name: labels.astype(
        np.float32 if label_field.dtype == "float32" else np.int64)}
    n = len(labels)
    row = np.repeat(np.arange(n, dtype=np.int64), lengths)
    for field in layout.schema.categorical:
        low, high = layout.field_ranges[field.name]
        mask = (ids >= low) & (ids <= high)
        f_rows, f_ids, f_vals = row[mask], ids[mask], values[mask]
        if field.kind == "single":
            per_row = np.bincount(f_rows, minlength=n)
            if n and per_row.max(initial=0) > 1:
                bad = int(np.flatnonzero(per_row > 1)[0])
                raise BadFileError(path, f"row {first_row + bad}: {per_row[bad]} indices in "
                                   f"range {low}..{high} of single-valued field",
                                   column=field.name)
            col = np.full(n, field.default, dtype=np.int64)
            col[f_rows] = f_ids
            out[field.name] = col
            if layout.with_values:
                val = np.zeros(n, dtype=np.float32)
                val[f_rows] = f_vals
                out[field.name + "_value"] = val
        else:
            f_len = np.bincount(f_rows, minlength=n).astype(np.int64)
            if field.max_len is not None and n and f_len.max(initial=0) > field.max_len:
                position = np.arange(len(f_rows)) - np.repeat(np.cumsum(f_len) - f_len, f_len)
                keep = (position < field.max_len if field.keep == "first"
                        else position >= np.repeat(f_len, f_len) - field.max_len)
                f_ids, f_vals = f_ids[keep], f_vals[keep]
                f_len = np.minimum(f_len, field.max_len)
            out[field.name] = RaggedColumn(f_ids, f_len)
            if layout.with_values:
                out[field.name + "_value"] = RaggedColumn(f_vals.astype(np.float32), f_len.copy())
    return out


def read_libsvm_rows(path: str, layout: LibsvmLayout, start: int = 0, stop: Optional[int] = None,
                     block_bytes: int = DEFAULT_BLOCK_BYTES,
                     offsets: Optional[np.ndarray] = None) -> Iterator[ColumnBatch]:
    """Streams one file as column batches; with start/stop only rows ``[start, stop)``.

    ``offsets`` (from :func:`libsvm_row_offsets`) saves the line scan when reading many
    ranges of one file. Lines of whitespace only are blank: not rows.
    """
    start = check_int(start, "start", minimum=0)
    stop = check_int(stop, "stop", minimum=start, none_ok=True)
    if start != 0 or stop is not None:
        if offsets is None:
            offsets = libsvm_row_offsets(path)
        stop = len(offsets) - 1 if stop is None else min(stop, len(offsets) - 1)
        if start < stop:
            data = read_row_bytes(path, offsets, start, stop)
            yield _to_columns(*_parse_lines(data, path, start), layout, path, start)
        return
    first_row = 0
    carry = b""
    with open(path, "rb") as f:
        while True:
            block = f.read(block_bytes)
            if not block:
                break
            block = carry + block
            cut = block.rfind(b"\n")
            if cut < 0:
                carry = block
                continue
            carry = block[cut + 1:]
            parsed = _parse_lines(block[:cut + 1], path, first_row)
            if len(parsed[0]):
                yield _to_columns(*parsed, layout, path, first_row)
                first_row += len(parsed[0])
    if carry.strip(WHITESPACE):
        yield _to_columns(*_parse_lines(carry, path, first_row), layout, path, first_row)


def libsvm_row_offsets(path: str) -> np.ndarray:
    """:func:`row_offsets` of a libsvm file: lines of whitespace only are blank, not rows."""
    return row_offsets(path, whitespace_blank=True)


def libsvm_num_rows(path: str) -> int:
    """Number of non-blank lines."""
    return len(libsvm_row_offsets(path)) - 1


def read_libsvm(paths: Paths, batch_size: int, *, schema: Optional[Schema] = None,
                field_ranges: Optional[Mapping[str, Tuple[int, int]]] = None,
                binary_label: bool = True, with_values: bool = False,
                num_parallel_reads: int = 2, drop_remainder: bool = False,
                deterministic: bool = True, skip_bad_files: bool = False,
                bad_files: Optional[BadFileCounter] = None,
                prefetch: Optional[int] = tf.data.AUTOTUNE) -> tf.data.Dataset:
    """A tf.data.Dataset of ``(features, label)`` batches from libFM / libSVM files.

    See :class:`LibsvmLayout` for ``schema``, ``field_ranges``, ``binary_label``
    and ``with_values``, and :func:`deeprec_lite.data.formats.parquet_reader.read_parquet`
    for the other arguments.
    """
    layout = LibsvmLayout(schema, field_ranges, binary_label, with_values)
    return files_to_dataset(
        paths, layout.schema,
        check_file=lambda p: None,
        read_file=lambda p: read_libsvm_rows(p, layout),
        batch_size=batch_size, num_parallel_reads=num_parallel_reads,
        drop_remainder=drop_remainder, deterministic=deterministic,
        skip_bad_files=skip_bad_files, bad_files=bad_files, prefetch=prefetch,
        extra_columns={name: (tf.float32, ragged) for name, ragged in layout.value_columns.items()})
