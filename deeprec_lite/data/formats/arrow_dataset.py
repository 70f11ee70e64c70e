"""The C++ tf.data source of the Parquet and CSV / TSV readers (ops/arrow_dataset_op.cc).

A dataset reads a list of work items, each a file's row range (Parquet) or byte range
(CSV / TSV), with Arrow C++ and emits batches of exactly ``batch_size`` rows (the last
one may be shorter) of the schema's columns, converted in C++ as
:mod:`deeprec_lite.data.formats.arrow_columns` converts them in Python: no Python runs
per batch. Its iterator is checkpointable (``tf.train.Checkpoint(iterator=...)``): a
restored iterator goes on after the last batch delivered.
"""
from __future__ import annotations

import ctypes
import itertools
import os
import threading
from typing import Callable, List, Optional, Sequence

from deeprec_lite.compat import tf
from deeprec_lite.data.formats.schema import CategoricalField, LabelField, NumericField, Schema
from deeprec_lite.data.formats.tf_conversion import flat_signature, make_assemble_fn
from deeprec_lite.kv import op_library

# Column kinds and numeric transforms, as ops/arrow_batch_reader.h numbers them.
_LABEL_FLOAT, _LABEL_INT, _NUMERIC, _ID_INT, _ID_STRING, _MULTI_INT, _MULTI_STRING = range(7)
_TRANSFORMS = {None: 0, "log": 1, "minmax": 2}

_LOCK = threading.Lock()
_NATIVE = {}
_LOG_IDS = itertools.count(1)


def _library():
    """(op module, ctypes handle) of the reader op library, loaded once."""
    with _LOCK:
        if not _NATIVE:
            path = op_library.library_path("_arrow_reader_ops", os.path.dirname(__file__))
            _NATIVE["ops"] = op_library.load_library(path)
            native = ctypes.CDLL(path)
            native.DrlBadFileCount.restype = ctypes.c_int64
            native.DrlBadFileCount.argtypes = [ctypes.c_int64]
            native.DrlBadFileEntry.restype = ctypes.c_char_p
            native.DrlBadFileEntry.argtypes = [ctypes.c_int64, ctypes.c_int64, ctypes.c_int]
            native.DrlBadFileDrop.argtypes = [ctypes.c_int64]
            _NATIVE["c"] = native
        return _NATIVE["ops"], _NATIVE["c"]


class NativeBadFileLog:
    """The files a reader op skipped (``skip_bad_files``), kept in C++ under ``log_id``."""

    def __init__(self):
        _library()
        self.log_id = next(_LOG_IDS)

    def entries(self) -> List[tuple]:
        native = _library()[1]
        return [(native.DrlBadFileEntry(self.log_id, i, 0).decode("utf-8", "replace"),
                 native.DrlBadFileEntry(self.log_id, i, 1).decode("utf-8", "replace"))
                for i in range(native.DrlBadFileCount(self.log_id))]

    def __del__(self):
        if _NATIVE:
            _NATIVE["c"].DrlBadFileDrop(self.log_id)


def _kind(field) -> int:
    if isinstance(field, LabelField):
        return _LABEL_INT if field.dtype == "int64" else _LABEL_FLOAT
    if isinstance(field, NumericField):
        return _NUMERIC
    if field.kind == "single":
        return _ID_INT if field.dtype == "int64" else _ID_STRING
    return _MULTI_INT if field.dtype == "int64" else _MULTI_STRING


def _column_attrs(schema: Schema):
    """The op's per-column attributes and its numeric_bounds input (min, max, fill)."""
    attrs = {k: [] for k in ("column_names", "column_kinds", "transforms", "binary",
                             "default_ints", "default_strings", "separators", "max_lens",
                             "keep_last", "hash_ids")}
    bounds = []
    for field in schema.fields:
        categorical = isinstance(field, CategoricalField)
        numeric = isinstance(field, NumericField)
        attrs["column_names"].append(field.name)
        attrs["column_kinds"].append(_kind(field))
        attrs["transforms"].append(_TRANSFORMS[field.transform] if numeric else 0)
        attrs["binary"].append(isinstance(field, LabelField) and field.binary)
        attrs["default_ints"].append(field.default if categorical and field.dtype == "int64"
                                     else 0)
        attrs["default_strings"].append(field.default if categorical and field.dtype == "string"
                                        else "")
        attrs["separators"].append(field.separator if categorical else "|")
        attrs["max_lens"].append(field.max_len if categorical and field.max_len else -1)
        attrs["keep_last"].append(categorical and field.keep == "last")
        attrs["hash_ids"].append(categorical and field.hash_to_int64)
        if numeric and field.transform == "minmax":
            bounds += [float(field.min), float(field.max), float(field.fill_value)]
        else:
            bounds += [0.0, 1.0, float(field.fill_value) if numeric else 0.0]
    return attrs, bounds


class CsvOptions:
    """The CSV / TSV layout the op parses (see :class:`deeprec_lite.data.CsvFormat`)."""

    def __init__(self, delimiter: str, header: bool, column_names: Optional[Sequence[str]],
                 missing_values: Sequence[str], quote_char, block_size: int):
        self.attrs = dict(file_format="csv", delimiter=delimiter, header=header,
                          file_columns=list(column_names or []),
                          null_values=list(missing_values),
                          quote_char=quote_char if quote_char else "", block_size=block_size)


def items_dataset(schema: Schema, paths, starts, stops, batch_size: int, *, row_counts=None,
                  csv: Optional[CsvOptions] = None, batch_rows: int = 65536,
                  drop_remainder: bool = False,
                  bad_file_log: Optional[NativeBadFileLog] = None,
                  element_fn: Optional[Callable] = None) -> tf.data.Dataset:
    """A dataset of batches read from the work items ``(paths[i], starts[i], stops[i])`` in
    order (lists or 1-D tensors): ``(features, label)`` as the readers give them, or, with
    ``element_fn``, ``element_fn(flat)`` of the flat dict of columns (the names of
    ``tf_conversion.flat_signature``).

    Parquet items are row ranges, CSV items (``csv`` given) byte ranges; a stop of -1 means
    the end of the file. ``row_counts``: rows each item must hold (-1: not checked).
    ``bad_file_log``: skip unreadable items, recording them there; else the first one
    raises ``tf.errors.InvalidArgumentError`` naming the file and column.
    """
    ops, _ = _library()
    attrs, bounds = _column_attrs(schema)
    attrs.update(csv.attrs if csv is not None else dict(file_format="parquet"))
    signature = flat_signature(schema)
    names, types = list(signature), [spec.dtype for spec in signature.values()]
    paths = tf.reshape(tf.convert_to_tensor(paths, tf.string), [-1])
    if row_counts is None:
        row_counts = tf.fill(tf.shape(paths), tf.constant(-1, tf.int64))
    variant = ops.drl_arrow_reader_dataset(
        paths=paths,
        starts=tf.reshape(tf.convert_to_tensor(starts, tf.int64), [-1]),
        stops=tf.reshape(tf.convert_to_tensor(stops, tf.int64), [-1]),
        row_counts=tf.reshape(tf.convert_to_tensor(row_counts, tf.int64), [-1]),
        numeric_bounds=tf.constant(bounds, tf.float64),
        batch_size=batch_size, batch_rows=batch_rows, drop_remainder=drop_remainder,
        skip_bad_files=bad_file_log is not None,
        bad_file_log=bad_file_log.log_id if bad_file_log is not None else 0,
        output_types=types, output_shapes=[[None]] * len(types), **attrs)
    spec = tuple(tf.TensorSpec([None], t) for t in types)
    ds = tf.data.experimental.from_variant(variant, spec)
    finish = element_fn or make_assemble_fn(schema)
    return ds.map(tf.autograph.experimental.do_not_convert(
        lambda *tensors: finish(dict(zip(names, tensors)))))
