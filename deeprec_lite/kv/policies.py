"""Admission and eviction policies of a KV variable (plain values, no TensorFlow).

Admission decides when a new key gets a trainable row; eviction decides when a
key and all of its slots leave the table. Both read a key's `freq`, the number of
its occurrences in the training lookups that counted (see FREQ_COUNTING).
"""
import dataclasses
import math
from typing import Optional, Sequence, Union

from deeprec_lite._checks import INT64_MAX, check_int, check_number


# What a key's freq counts (the `freq_counting` of a table):
# - "every_epoch": every occurrence in every training lookup, so a key seen once in
#   the data has freq 3 after 3 epochs over it;
# - "first_epoch": the occurrences in the training lookups of epoch 0 of each
#   `model.fit` (one pass over that fit's data), so freq is the number of times
#   the key occurred in the data trained on, whatever the number of epochs. Later
#   epochs still look keys up, insert and train them, but count nothing
#   (deeprec_lite.training.callbacks.FreqCounting switches counting per epoch).
FREQ_COUNTING = ("every_epoch", "first_epoch")


def check_freq_counting(freq_counting):
    if freq_counting not in FREQ_COUNTING:
        raise ValueError(f"freq_counting must be one of {FREQ_COUNTING}, got {freq_counting!r}")
    return freq_counting


class _Policy:
    """get_config / from_config of a policy: its fields as a JSON-able dict."""

    def get_config(self):
        return dataclasses.asdict(self)

    @classmethod
    def from_config(cls, config):
        names = [f.name for f in dataclasses.fields(cls)]
        required = [f.name for f in dataclasses.fields(cls) if f.default is dataclasses.MISSING]
        if not isinstance(config, dict) or not set(required) <= set(config) <= set(names):
            raise ValueError(f"{cls.__name__} config must be a dict of its fields {names} holding "
                             f"at least {required}, got {config!r}")
        return cls(**config)


def _check_every(every_n_steps):
    if every_n_steps is not None:
        check_int(every_n_steps, "every_n_steps", minimum=1)


@dataclasses.dataclass(frozen=True)
class CounterFilter(_Policy):
    """Admits a key once its freq reaches `min_count` (it occurred that many times in
    counted training lookups; see FREQ_COUNTING).

    Until then the key has a small record (key, freq, version) but no value: its
    lookups return the default value and it receives no update.
    """

    min_count: int

    def __post_init__(self):
        check_int(self.min_count, "CounterFilter.min_count", minimum=1)

    def table_attrs(self):
        return {"admission": "counter", "min_count": self.min_count}


@dataclasses.dataclass(frozen=True)
class BloomFilter(_Policy):
    """Admits a key once a counting Bloom filter has counted it `min_count` times (its
    occurrences in counted training lookups; see FREQ_COUNTING).

    Keys not yet admitted cost no per-key record, only shared 16-bit counters:
    the filter is sized for `expected_keys` distinct keys at
    `false_positive_rate` (a false positive admits a key early), 2 bytes per
    counter (`num_counters`). A filter larger than the memory of the machine that
    holds the table fails to create with tf.errors.ResourceExhaustedError.
    """

    min_count: int
    expected_keys: int = 10_000_000
    false_positive_rate: float = 0.01

    def __post_init__(self):
        check_int(self.min_count, "BloomFilter.min_count", minimum=1)
        if self.min_count > 0xFFFF:
            raise ValueError(f"BloomFilter.min_count must be <= 65535, got {self.min_count!r}")
        check_int(self.expected_keys, "BloomFilter.expected_keys", minimum=1)
        object.__setattr__(self, "false_positive_rate", check_number(
            self.false_positive_rate, "BloomFilter.false_positive_rate", low=0, high=1,
            low_open=True, high_open=True))
        if self.num_counters > INT64_MAX:
            raise ValueError(f"BloomFilter.expected_keys={self.expected_keys!r} at "
                             f"false_positive_rate={self.false_positive_rate!r} needs "
                             f"{self.num_counters} counters, more than 2**63 - 1")

    @property
    def num_counters(self):
        return int(math.ceil(-self.expected_keys * math.log(self.false_positive_rate)
                             / math.log(2) ** 2))

    @property
    def num_hashes(self):
        return max(1, int(round(self.num_counters / self.expected_keys * math.log(2))))

    def table_attrs(self):
        return {"admission": "bloom", "min_count": self.min_count,
                "bloom_counters": self.num_counters, "bloom_hashes": self.num_hashes}


@dataclasses.dataclass(frozen=True)
class StalenessEviction(_Policy):
    """Evicts keys with global_step - version > max_staleness.

    With `every_n_steps`, `KVVariable.maybe_evict(step)` runs it on that schedule.
    """

    max_staleness: int
    every_n_steps: Optional[int] = None

    def __post_init__(self):
        check_int(self.max_staleness, "StalenessEviction.max_staleness", minimum=0)
        _check_every(self.every_n_steps)


@dataclasses.dataclass(frozen=True)
class FrequencyEviction(_Policy):
    """Evicts admitted keys with freq < min_freq (see FREQ_COUNTING; keys not yet
    admitted are kept, since admission is still counting them)."""

    min_freq: int
    every_n_steps: Optional[int] = None

    def __post_init__(self):
        check_int(self.min_freq, "FrequencyEviction.min_freq", minimum=1)
        _check_every(self.every_n_steps)


Admission = Union[None, CounterFilter, BloomFilter]
Eviction = Union[StalenessEviction, FrequencyEviction]


def check_admission(admission):
    if admission is not None and not isinstance(admission, (CounterFilter, BloomFilter)):
        raise ValueError("admission must be None, CounterFilter or BloomFilter, got "
                         f"{admission!r}")
    return admission


def normalize_eviction(eviction) -> Sequence[Eviction]:
    """Accepts None, one policy, or a list with at most one policy of each kind."""
    if eviction is None:
        return ()
    policies = tuple(eviction) if isinstance(eviction, (list, tuple)) else (eviction,)
    seen = set()
    for policy in policies:
        if not isinstance(policy, (StalenessEviction, FrequencyEviction)):
            raise ValueError("eviction must hold StalenessEviction or FrequencyEviction "
                             f"policies, got {policy!r}")
        if type(policy) in seen:
            raise ValueError(f"eviction has two {type(policy).__name__} policies, which "
                             f"contradict each other: {eviction!r}")
        seen.add(type(policy))
    return policies


_POLICIES = {cls.__name__: cls for cls in (CounterFilter, BloomFilter, StalenessEviction,
                                           FrequencyEviction)}


def serialize(policy):
    """{"class_name", "config"} of a policy (None for None), for model configs."""
    if policy is None:
        return None
    return {"class_name": type(policy).__name__, "config": policy.get_config()}


def deserialize(config):
    """The policy of a `serialize` dict (None for None)."""
    if config is None:
        return None
    if not isinstance(config, dict) or config.get("class_name") not in _POLICIES:
        raise ValueError(f"policy config must name one of {sorted(_POLICIES)}, got {config!r}")
    return _POLICIES[config["class_name"]].from_config(config.get("config"))
