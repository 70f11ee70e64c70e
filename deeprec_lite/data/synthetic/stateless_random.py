"""Counter-based (stateless) random numbers: values that are pure functions of integer keys.

The synthetic generator uses them for the planted ground truth (the weight of
id 123 of field 7 is the same whichever row, chunk or day asks for it).
SplitMix64 finalizer on uint64 numpy arrays, vectorized.
"""
from __future__ import annotations

import numpy as np

_GOLDEN = np.uint64(0x9E3779B97F4A7C15)
_M1 = np.uint64(0xBF58476D1CE4E5B9)
_M2 = np.uint64(0x94D049BB133111EB)
_TWO53 = float(1 << 53)


def mix64(x) -> np.ndarray:
    """SplitMix64 finalizer: a bijective scramble of uint64 values."""
    with np.errstate(over="ignore"):
        z = np.asarray(x).astype(np.uint64) + _GOLDEN
        z = (z ^ (z >> np.uint64(30))) * _M1
        z = (z ^ (z >> np.uint64(27))) * _M2
        return z ^ (z >> np.uint64(31))


def hash_keys(*keys) -> np.ndarray:
    """Hashes several integer keys (scalars or broadcastable arrays) into uint64."""
    h = np.uint64(0x243F6A8885A308D3)
    for key in keys:
        h = mix64(np.asarray(key).astype(np.uint64) ^ h)
    return h


def uniform(*keys) -> np.ndarray:
    """Uniform floats in [0, 1) keyed by integers."""
    return (hash_keys(*keys) >> np.uint64(11)).astype(np.float64) / _TWO53


def normal(*keys) -> np.ndarray:
    """Standard normal floats keyed by integers (Box-Muller)."""
    u1 = uniform(*keys, 0x5EED1)
    u2 = uniform(*keys, 0x5EED2)
    return np.sqrt(-2.0 * np.log1p(-u1)) * np.cos(2.0 * np.pi * u2)
