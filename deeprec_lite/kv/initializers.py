"""Initializers of new KV rows, evaluated in C++ from (key, seed).

A new key's initial value depends only on the key, the seed and the
initializer, never on batch order or shard count.
"""
import dataclasses

from deeprec_lite._checks import check_number

_KINDS = ("zeros", "constant", "uniform", "normal", "truncated_normal")


@dataclasses.dataclass(frozen=True)
class KVInitializer:
    """kind: one of zeros, constant, uniform, normal, truncated_normal.

    a: constant value, uniform minval, or (truncated) normal mean.
    b: uniform maxval, or (truncated) normal stddev (truncation at 2 stddev).
    """

    kind: str
    a: float = 0.0
    b: float = 0.0

    def __post_init__(self):
        if self.kind not in _KINDS:
            raise ValueError(f"initializer must be one of {', '.join(_KINDS)}, got {self.kind!r}")
        name_a, name_b = {"constant": ("value", "b"), "uniform": ("minval", "maxval")}.get(
            self.kind, ("mean", "stddev"))
        owner = f"{self.kind} initializer"
        object.__setattr__(self, "a", check_number(self.a, name_a, owner=owner))
        object.__setattr__(self, "b", check_number(self.b, name_b, owner=owner))
        if self.kind in ("normal", "truncated_normal") and not self.b > 0:
            raise ValueError(f"{self.kind} initializer needs stddev > 0, got {self.b!r}")
        if self.kind == "uniform" and not self.b > self.a:
            raise ValueError(f"uniform initializer needs maxval > minval, got minval={self.a!r} "
                             f"maxval={self.b!r}")

    def table_attrs(self):
        return {"initializer": self.kind, "init_a": float(self.a), "init_b": float(self.b)}


def zeros():
    return KVInitializer("zeros")


def constant(value):
    return KVInitializer("constant", a=value)


def uniform(minval=-0.05, maxval=0.05):
    return KVInitializer("uniform", a=minval, b=maxval)


def normal(mean=0.0, stddev=0.05):
    return KVInitializer("normal", a=mean, b=stddev)


def truncated_normal(mean=0.0, stddev=0.05):
    return KVInitializer("truncated_normal", a=mean, b=stddev)


_BY_NAME = {"zeros": zeros, "constant": lambda: constant(0.0), "uniform": uniform,
            "normal": normal, "truncated_normal": truncated_normal}


def get(initializer):
    """A KVInitializer from itself or a name (with that kind's default parameters)."""
    if isinstance(initializer, KVInitializer):
        return initializer
    if isinstance(initializer, str) and initializer in _BY_NAME:
        return _BY_NAME[initializer]()
    raise ValueError(f"initializer must be one of {', '.join(_KINDS)} or a KVInitializer, "
                     f"got {initializer!r}")
