"""Argument checks shared by the whole package (the KV core included: no Keras here).

Each check returns the value it accepted and raises ValueError naming the argument and
the value it received: ``dim must be a positive integer, got 0``, or with the name of the
layer or class that checks, ``CIN: layer_sizes must be a positive integer; received
layer_sizes=0``.
"""
import math
import numbers

import numpy as np

INT64_MAX = 2 ** 63 - 1


def is_int(value) -> bool:
    """True for Python and numpy integers, False for bools (which Python counts as ints)."""
    return isinstance(value, (int, np.integer)) and not isinstance(value, (bool, np.bool_))


def _message(owner, name, requirement, value):
    if owner:
        return f"{owner}: {name} must be {requirement}; received {name}={value!r}"
    return f"{name} must be {requirement}, got {value!r}"


def _integer_range(minimum, below):
    if minimum is not None and below is not None:
        return f"an integer in [{minimum}, {below})"
    if minimum == 0:
        return "a non-negative integer"
    if minimum == 1:
        return "a positive integer"
    return "an integer" if minimum is None else f"an integer >= {minimum}"


def check_int(value, name, minimum=None, below=None, none_ok=False, owner=None):
    """`value` as an int if it is an integer in [minimum, below) (either bound optional)
    that fits in int64 (what the tables' counts, steps and thresholds hold), or None when
    `none_ok`; else ValueError. `owner` (a class or layer name) prefixes the message."""
    if value is None and none_ok:
        return None
    if is_int(value) and (minimum is None or value >= minimum) and (below is None or value < below):
        if value > INT64_MAX:
            raise ValueError(_message(owner, name, "at most 2**63 - 1 (int64)", value))
        if value < -INT64_MAX - 1:
            raise ValueError(_message(owner, name, "at least -2**63 (int64)", value))
        return int(value)
    raise ValueError(_message(owner, name, _integer_range(minimum, below)
                              + (" or None" if none_ok else ""), value))


def check_positive_int(value, name, owner=None):
    """`value` as an int if it is an integer >= 1; else ValueError."""
    return check_int(value, name, minimum=1, owner=owner)


def check_number(value, name, low=None, high=None, low_open=False, high_open=False, owner=None):
    """`value` as a float if it is a finite real number (not a bool) within the bounds
    (`low` / `high`, excluded when `low_open` / `high_open`); else ValueError."""
    if isinstance(value, (bool, np.bool_)) or not isinstance(value, numbers.Real):
        raise ValueError(_message(owner, name, "a number", value))
    try:
        number = float(value)
    except OverflowError:  # an int beyond the float range
        number = math.inf
    if not np.isfinite(number):
        raise ValueError(_message(owner, name, "finite", value))
    value = number
    too_low = low is not None and (value <= low if low_open else value < low)
    too_high = high is not None and (value >= high if high_open else value > high)
    if too_low or too_high:
        bounds = []
        if low is not None:
            bounds.append(f"{'>' if low_open else '>='} {low}")
        if high is not None:
            bounds.append(f"{'<' if high_open else '<='} {high}")
        raise ValueError(_message(owner, name, " and ".join(bounds), value))
    return value
