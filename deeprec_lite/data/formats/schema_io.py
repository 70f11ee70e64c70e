"""Schema <-> dict, JSON and YAML.

The dict form is::

    {"labels": ["click"],                      # or [{"name": "click", "dtype": "float32"}]
     "categorical": [{"name": "C1", "dtype": "string"},
                     {"name": "hist", "kind": "sequence", "max_len": 50, "table": "item"}],
     "numeric": [{"name": "I1", "transform": "log"}]}

JSON is read with the standard library. YAML needs PyYAML, which deeprec-lite does
not depend on: install it yourself to load ``.yaml`` / ``.yml`` files.
"""
from __future__ import annotations

import dataclasses
import json
import os
import tempfile
from typing import Any, Dict

from deeprec_lite.data.formats.schema import CategoricalField, LabelField, NumericField, Schema

_SECTIONS = {"labels": LabelField, "categorical": CategoricalField, "numeric": NumericField}


def _field_from_entry(section: str, cls, entry, index: int):
    if isinstance(entry, str) and section == "labels":
        entry = {"name": entry}
    if not isinstance(entry, dict):
        raise ValueError(
            f"schema {section}[{index}] must be a mapping with at least 'name', got {entry!r}")
    name = entry.get("name", f"<{section}[{index}]>")
    allowed = {f.name for f in dataclasses.fields(cls)}
    unknown = sorted(set(entry) - allowed)
    if unknown:
        raise ValueError(
            f"{section} field {name!r}: unknown key(s) {unknown}; allowed keys: {sorted(allowed)}")
    if "name" not in entry:
        raise ValueError(f"schema {section}[{index}] has no 'name': {entry!r}")
    return cls(**entry)


def schema_from_dict(data: Dict[str, Any]) -> Schema:
    """Builds a Schema from its dict form (see the module docstring)."""
    if not isinstance(data, dict):
        raise ValueError(f"a schema must be a mapping, got {type(data).__name__}: {data!r}")
    unknown = sorted(set(data) - set(_SECTIONS))
    if unknown:
        raise ValueError(
            f"schema has unknown section(s) {unknown}; allowed: {sorted(_SECTIONS)}")
    parts = {}
    for section, cls in _SECTIONS.items():
        entries = data.get(section) or []
        if not isinstance(entries, (list, tuple)):
            raise ValueError(f"schema section {section!r} must be a list, got {entries!r}")
        parts[section] = tuple(
            _field_from_entry(section, cls, e, i) for i, e in enumerate(entries))
    return Schema(**parts)


def schema_to_dict(schema: Schema) -> Dict[str, Any]:
    """The dict form of ``schema``; ``schema_from_dict`` inverts it exactly."""
    return {section: [dataclasses.asdict(f) for f in getattr(schema, section)]
            for section in _SECTIONS}


def schema_from_json(text: str) -> Schema:
    """Parses a JSON document into a Schema."""
    try:
        data = json.loads(text)
    except json.JSONDecodeError as e:
        raise ValueError(f"schema JSON is not valid: {e}") from None
    return schema_from_dict(data)


def schema_from_yaml(text: str) -> Schema:
    """Parses a YAML document into a Schema. Needs PyYAML (not a dependency)."""
    try:
        import yaml  # pylint: disable=import-outside-toplevel
    except ImportError:
        raise ImportError(
            "loading a YAML schema needs PyYAML, which deeprec-lite does not depend on: "
            "`pip install pyyaml`, or write the schema as JSON") from None
    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError as e:
        raise ValueError(f"schema YAML is not valid: {e}") from None
    return schema_from_dict(data)


def load_schema(path: str) -> Schema:
    """Loads a schema file: ``.json``, or ``.yaml`` / ``.yml`` (needs PyYAML)."""
    path = os.fspath(path)
    if not os.path.isfile(path):
        raise ValueError(f"schema file {path!r} does not exist")
    with open(path, "r", encoding="utf-8") as f:
        text = f.read()
    lower = path.lower()
    try:
        if lower.endswith((".yaml", ".yml")):
            return schema_from_yaml(text)
        if lower.endswith(".json"):
            return schema_from_json(text)
    except ValueError as e:
        raise ValueError(f"schema file {path!r}: {e}") from None
    raise ValueError(f"schema file {path!r}: unknown extension, use .json, .yaml or .yml")


def save_schema(schema: Schema, path: str) -> None:
    """Writes ``schema`` as JSON to ``path`` (temporary file, then rename)."""
    path = os.fspath(path)
    directory = os.path.dirname(os.path.abspath(path))
    fd, tmp = tempfile.mkstemp(prefix=".schema-", suffix=".tmp", dir=directory)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as f:
            json.dump(schema_to_dict(schema), f, indent=2)
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise
