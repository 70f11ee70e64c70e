"""Schemas of public CTR data sets (column layouts only; no data ships with the package)."""
from __future__ import annotations

from typing import Dict, Tuple

from deeprec_lite.data.formats.schema import CategoricalField, LabelField, NumericField, Schema

CRITEO_NUMERIC = [f"I{i}" for i in range(1, 14)]
CRITEO_CATEGORICAL = [f"C{i}" for i in range(1, 27)]
CRITEO_COLUMNS = ["label", *CRITEO_NUMERIC, *CRITEO_CATEGORICAL]

# Frappe as preprocessed for NFM (libFM, 10 one-hot fields; inclusive global index ranges).
FRAPPE_FIELD_RANGES: Dict[str, Tuple[int, int]] = {
    "user": (0, 956), "item": (957, 5038), "daytime": (5039, 5045),
    "weekday": (5046, 5052), "isweekend": (5053, 5054), "homework": (5055, 5057),
    "cost": (5058, 5059), "weather": (5060, 5068), "country": (5069, 5148),
    "city": (5149, 5381),
}


def criteo_schema(numeric_transform: str = "log") -> Schema:
    """Criteo DAC: label, I1..I13 (numeric, ``numeric_transform``), C1..C26 (hex string ids).

    The file layout (for header-less ``train.txt``) is :data:`CRITEO_COLUMNS`.
    """
    return Schema(labels=[LabelField("label", binary=True)],
                  categorical=[CategoricalField(n, dtype="string") for n in CRITEO_CATEGORICAL],
                  numeric=[NumericField(n, transform=numeric_transform) for n in CRITEO_NUMERIC])


def frappe_schema() -> Schema:
    """Frappe (libFM): label and 10 single-valued int64 fields named as in FRAPPE_FIELD_RANGES."""
    return Schema(labels=[LabelField("label", binary=True)],
                  categorical=[CategoricalField(n) for n in FRAPPE_FIELD_RANGES])

