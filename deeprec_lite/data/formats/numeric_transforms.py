"""Numeric field transforms (vectorized numpy), see NumericField."""
from __future__ import annotations

import numpy as np

from deeprec_lite.data.formats.schema import NumericField


def signed_log1p(x: np.ndarray) -> np.ndarray:
    """``sign(x) * log1p(|x|)``: a log that keeps the sign and maps 0 to 0."""
    return np.sign(x) * np.log1p(np.abs(x))


def min_max_scale(x: np.ndarray, low: float, high: float) -> np.ndarray:
    """``(clip(x, low, high) - low) / (high - low)``, in [0, 1]."""
    return (np.clip(x, low, high) - low) / (high - low)


def transform_numeric(raw: np.ndarray, field: NumericField) -> np.ndarray:
    """Applies ``field.transform`` to raw float values; NaN (missing) becomes ``fill_value``.

    Returns float32.
    """
    x = np.asarray(raw, dtype=np.float64)
    missing = np.isnan(x)
    any_missing = missing.any()
    if field.transform == "log":
        x = signed_log1p(x)
    elif field.transform == "minmax":
        x = min_max_scale(x, field.min, field.max)
    out = x.astype(np.float32)
    if any_missing:
        out[missing] = np.float32(field.fill_value)
    return out
