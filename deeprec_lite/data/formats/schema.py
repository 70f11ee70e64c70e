"""Feature schema: which columns are labels, categorical ids and numeric values.

A :class:`Schema` is a set of frozen dataclasses that every reader, the synthetic
generator and the models read. It can be built in Python, or loaded from a dict,
a JSON file or a YAML file (YAML needs PyYAML, which is not a dependency of
deeprec-lite; JSON always works) with :mod:`deeprec_lite.data.formats.schema_io`.

Conventions (what the readers produce for each kind of field):

* label: a float32 (or int64) tensor of shape ``[B]``.
* categorical ``kind="single"``: an int64 or string tensor of shape ``[B]``.
  A missing value becomes ``default`` (``-1`` for int64, ``"__missing__"`` for
  strings unless configured). String ids of a field with ``hash_to_int64=True``
  come out as int64 (see :func:`hash_string_ids`).
* categorical ``kind="multi"`` or ``"sequence"``: a ``tf.RaggedTensor`` of shape
  ``[B, None]``; a missing value is an empty row. ``max_len`` caps the row
  length (``keep="first"`` keeps the first values, ``"last"`` the last ones,
  the usual choice for behaviour sequences). Sequences must set ``max_len``.
* numeric: a float32 tensor of shape ``[B]`` after the transform; a missing
  value becomes ``fill_value`` (in the transformed space).
* Several categorical fields may share one embedding table by naming the same
  ``table``; it defaults to the field name. Fields sharing a table must have the
  same key dtype.
"""
from __future__ import annotations

import dataclasses
from typing import Dict, List, Optional, Tuple, Union

from deeprec_lite._checks import check_int, check_number, check_positive_int

ID_DTYPES = ("int64", "string")
CATEGORICAL_KINDS = ("single", "multi", "sequence")
NUMERIC_TRANSFORMS = (None, "log", "minmax")
LABEL_DTYPES = ("float32", "int64")
KEEP_CHOICES = ("first", "last")

DEFAULT_MISSING_INT = -1
DEFAULT_MISSING_STRING = "__missing__"


def _check_name(kind: str, name) -> None:
    if not isinstance(name, str) or not name:
        raise ValueError(f"{kind} field name must be a non-empty string, got {name!r}")
    if name.startswith("__"):
        raise ValueError(
            f"{kind} field name {name!r} is reserved: names starting with '__' are "
            "used internally by the readers")


@dataclasses.dataclass(frozen=True)
class LabelField:
    """A label column (e.g. click). ``dtype`` is ``"float32"`` or ``"int64"``.

    Readers reject a file whose labels are missing or not finite (NaN, +-Inf) and, with
    ``binary=True`` (click / conversion labels), one with a label outside [0, 1]: a
    BadFileError naming the file and the column, or the file is skipped and counted
    with ``skip_bad_files``.
    """

    name: str
    dtype: str = "float32"
    binary: bool = False

    def __post_init__(self):
        _check_name("label", self.name)
        if self.dtype not in LABEL_DTYPES:
            raise ValueError(
                f"label field {self.name!r}: dtype must be one of {LABEL_DTYPES}, "
                f"got {self.dtype!r}")
        if not isinstance(self.binary, bool):
            raise ValueError(f"label field {self.name!r}: binary must be True or False, got "
                             f"{self.binary!r}")


@dataclasses.dataclass(frozen=True)
class CategoricalField:
    """A column of raw feature ids (int64 or string) fed to a KV embedding table.

    Args:
      name: column name.
      dtype: ``"int64"`` or ``"string"``.
      kind: ``"single"`` (one id per row), ``"multi"`` (a bag of ids) or
        ``"sequence"`` (ordered ids, e.g. a behaviour history; needs ``max_len``).
      max_len: at most this many ids per row are kept (multi / sequence only).
      keep: ``"first"`` or ``"last"``: which ids survive ``max_len``.
      table: name of the embedding table; defaults to ``name``. Fields naming
        the same table share it.
      default: id used for a missing single-valued entry; defaults to ``-1``
        (int64) or ``"__missing__"`` (string).
      separator: separator of the ids of a multi-valued field in text files.
      hash_to_int64: string ids only: the readers hash each id (after ``default``
        replaced a missing one) to an int64 id in [0, 2**63 - 2] with
        :func:`hash_string_ids` (FarmHash Fingerprint64, as
        ``tf.strings.to_hash_bucket_fast(ids, 2**63 - 1)``), so the field's table is
        keyed by int64 (``key_dtype``): no string is stored or copied after the file is
        decoded. A serving graph hashes its raw ids with the same function. Two ids
        collide with probability about n**2 / 2**64 for n distinct ids.
    """

    name: str
    dtype: str = "int64"
    kind: str = "single"
    max_len: Optional[int] = None
    keep: str = "first"
    table: Optional[str] = None
    default: Optional[Union[int, str]] = None
    separator: str = "|"
    hash_to_int64: bool = False

    def __post_init__(self):
        _check_name("categorical", self.name)
        where = f"categorical field {self.name!r}"
        if self.dtype not in ID_DTYPES:
            raise ValueError(f"{where}: dtype must be one of {ID_DTYPES}, got {self.dtype!r}")
        if self.kind not in CATEGORICAL_KINDS:
            raise ValueError(
                f"{where}: kind must be one of {CATEGORICAL_KINDS}, got {self.kind!r}")
        if self.max_len is not None:
            check_positive_int(self.max_len, "max_len", owner=where)
            if self.kind == "single":
                raise ValueError(
                    f"{where}: max_len={self.max_len} only applies to kind 'multi' or "
                    "'sequence', but kind is 'single'")
        if self.kind == "sequence" and self.max_len is None:
            raise ValueError(f"{where}: kind 'sequence' needs max_len, got None")
        if self.keep not in KEEP_CHOICES:
            raise ValueError(f"{where}: keep must be one of {KEEP_CHOICES}, got {self.keep!r}")
        table = self.name if self.table is None else self.table
        if not isinstance(table, str) or not table:
            raise ValueError(f"{where}: table must be a non-empty string, got {self.table!r}")
        object.__setattr__(self, "table", table)
        default = self.default
        if default is None:
            default = DEFAULT_MISSING_INT if self.dtype == "int64" else DEFAULT_MISSING_STRING
        elif self.dtype == "int64":
            default = check_int(default, "default", owner=where)
        elif self.dtype == "string" and not isinstance(default, str):
            raise ValueError(f"{where}: default for string ids must be a str, got {default!r}")
        object.__setattr__(self, "default", default)
        if not isinstance(self.separator, str) or len(self.separator) == 0:
            raise ValueError(
                f"{where}: separator must be a non-empty string, got {self.separator!r}")
        if not isinstance(self.hash_to_int64, bool):
            raise ValueError(
                f"{where}: hash_to_int64 must be True or False, got {self.hash_to_int64!r}")
        if self.hash_to_int64 and self.dtype != "string":
            raise ValueError(
                f"{where}: hash_to_int64=True needs dtype 'string', got dtype {self.dtype!r}")

    @property
    def key_dtype(self) -> str:
        """The dtype of the ids the readers give, and so of the table's keys: ``"int64"``
        for a hashed string field, else ``dtype``."""
        return "int64" if self.hash_to_int64 else self.dtype

    @property
    def is_ragged(self) -> bool:
        """True when the readers return this field as a tf.RaggedTensor."""
        return self.kind != "single"


@dataclasses.dataclass(frozen=True)
class NumericField:
    """A numeric column, optionally transformed.

    Args:
      name: column name.
      transform: ``None``; ``"log"``: signed log, ``sign(x) * log1p(|x|)``
        (Criteo counts, negatives allowed); ``"minmax"``:
        ``(clip(x, min, max) - min) / (max - min)``, needs ``min < max``.
      min, max: bounds for ``"minmax"``.
      fill_value: value the model sees for a missing entry (after the transform).

    A missing entry (null, empty text, NaN) is ``fill_value``; an infinite value is an
    error that names the file and the column (or, with ``skip_bad_files``, the file is
    skipped and counted): it is corrupt input, not a missing one.
    """

    name: str
    transform: Optional[str] = None
    min: Optional[float] = None
    max: Optional[float] = None
    fill_value: float = 0.0

    def __post_init__(self):
        _check_name("numeric", self.name)
        where = f"numeric field {self.name!r}"
        if self.transform not in NUMERIC_TRANSFORMS:
            raise ValueError(
                f"{where}: transform must be one of {NUMERIC_TRANSFORMS}, got {self.transform!r}")
        for attr in ("min", "max", "fill_value"):
            value = getattr(self, attr)
            if value is not None or attr == "fill_value":
                check_number(value, attr, owner=where)
        if self.transform == "minmax":
            if self.min is None or self.max is None:
                raise ValueError(
                    f"{where}: transform 'minmax' needs min and max, got min={self.min!r} "
                    f"max={self.max!r}")
            if not self.min < self.max:
                raise ValueError(
                    f"{where}: transform 'minmax' needs min < max, got min={self.min!r} "
                    f"max={self.max!r}")
        elif self.min is not None or self.max is not None:
            raise ValueError(
                f"{where}: min/max only apply to transform 'minmax', but transform is "
                f"{self.transform!r}")


Field = Union[LabelField, CategoricalField, NumericField]


def _as_tuple(kind: str, values, cls):
    if values is None:
        return ()
    if isinstance(values, (str, bytes)) or not hasattr(values, "__iter__"):
        raise ValueError(f"schema {kind} must be a list of {cls.__name__}, got {values!r}")
    out = tuple(values)
    for v in out:
        if not isinstance(v, cls):
            raise ValueError(f"schema {kind} must hold {cls.__name__} objects, got {v!r}")
    return out


@dataclasses.dataclass(frozen=True)
class Schema:
    """The features and labels of a data set.

    ``labels`` may be empty (inference data). Field names are unique across the
    schema; fields sharing a ``table`` must have the same key dtype.
    """

    labels: Tuple[LabelField, ...] = ()
    categorical: Tuple[CategoricalField, ...] = ()
    numeric: Tuple[NumericField, ...] = ()

    def __post_init__(self):
        object.__setattr__(self, "labels", _as_tuple("labels", self.labels, LabelField))
        object.__setattr__(
            self, "categorical", _as_tuple("categorical", self.categorical, CategoricalField))
        object.__setattr__(self, "numeric", _as_tuple("numeric", self.numeric, NumericField))
        seen = {}
        for field in self.fields:
            if field.name in seen:
                raise ValueError(
                    f"field name {field.name!r} appears twice in the schema "
                    f"({type(seen[field.name]).__name__} and {type(field).__name__})")
            seen[field.name] = field
        if not self.categorical and not self.numeric:
            raise ValueError("schema has no feature fields: give at least one categorical "
                             "or numeric field")
        dtypes: Dict[str, CategoricalField] = {}
        for field in self.categorical:
            first = dtypes.setdefault(field.table, field)
            if first.key_dtype != field.key_dtype:
                raise ValueError(
                    f"table {field.table!r} is shared by field {first.name!r} (key dtype "
                    f"{first.key_dtype!r}) and field {field.name!r} (key dtype "
                    f"{field.key_dtype!r}); fields sharing a table need the same key dtype")

    @property
    def fields(self) -> List[Field]:
        """All fields: labels, then categorical, then numeric."""
        return [*self.labels, *self.categorical, *self.numeric]

    @property
    def feature_fields(self) -> List[Union[CategoricalField, NumericField]]:
        """Categorical then numeric fields (everything that is not a label)."""
        return [*self.categorical, *self.numeric]

    @property
    def column_names(self) -> List[str]:
        """Names of every column the readers need, labels first."""
        return [f.name for f in self.fields]

    @property
    def label_names(self) -> List[str]:
        return [f.name for f in self.labels]

    def field(self, name: str) -> Field:
        """The field called ``name`` (ValueError naming it when absent)."""
        for f in self.fields:
            if f.name == name:
                return f
        raise ValueError(f"schema has no field {name!r}; fields: {self.column_names}")

    def tables(self) -> Dict[str, List[str]]:
        """Embedding table name -> names of the categorical fields that use it."""
        out: Dict[str, List[str]] = {}
        for f in self.categorical:
            out.setdefault(f.table, []).append(f.name)
        return out
