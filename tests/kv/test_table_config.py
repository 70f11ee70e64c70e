"""TableConfig: one value for how a table is made; its config and its policies' configs
round-trip through JSON, and bad values are refused by name."""
import json

import numpy as np
import pytest

from deeprec_lite.kv import (BloomFilter, CounterFilter, FrequencyEviction, StalenessEviction,
                             TableConfig, initializers, policies)
from deeprec_lite.kv.table_config import as_table_config


def test_config_round_trips_through_json():
    table = TableConfig(4, key_dtype="string", initializer=initializers.uniform(-0.5, 0.5),
                        seed=7, default_value=[0.0, 1.0, 2.0, 3.0],
                        admission=BloomFilter(3, expected_keys=1000, false_positive_rate=0.05),
                        eviction=[StalenessEviction(9, every_n_steps=3), FrequencyEviction(2)],
                        num_shards=2)
    again = TableConfig.from_config(json.loads(json.dumps(table.get_config())))
    assert again == table
    assert again.eviction == (StalenessEviction(9, every_n_steps=3), FrequencyEviction(2))
    assert again.default_value == (0.0, 1.0, 2.0, 3.0)


def test_values_are_normalized():
    import tensorflow as tf

    table = TableConfig(2, key_dtype=tf.string, initializer="zeros", default_value=1,
                        eviction=StalenessEviction(5))
    assert table.key_dtype == "string" and table.initializer == initializers.zeros()
    assert table.default_value == 1.0 and table.eviction == (StalenessEviction(5),)
    wide = table.replace(dim=8)
    assert wide.dim == 8 and wide.eviction == table.eviction and table.dim == 2


@pytest.mark.parametrize("policy", [CounterFilter(2), BloomFilter(4, expected_keys=10),
                                    StalenessEviction(3, every_n_steps=2), FrequencyEviction(5)])
def test_each_policy_round_trips(policy):
    assert type(policy).from_config(policy.get_config()) == policy
    assert policies.deserialize(json.loads(json.dumps(policies.serialize(policy)))) == policy


@pytest.mark.parametrize("kwargs, message", [
    ({"dim": 0}, "dim must be a positive integer, got 0"),
    ({"dim": 2, "key_dtype": "int32"}, "key_dtype must be 'int64' or 'string', got 'int32'"),
    ({"dim": 2, "default_value": [1.0]}, r"default_value must be one float or dim=2 floats"),
    ({"dim": 2, "default_value": "x"}, "default_value must be a number, got 'x'"),
    ({"dim": 2, "default_value": float("nan")}, "default_value must be finite, got nan"),
    ({"dim": 2, "default_value": (1.0, float("inf"))}, r"default_value\[1\] must be finite"),
    ({"dim": 2, "admission": StalenessEviction(1)}, "admission must be None, CounterFilter"),
    ({"dim": 2, "eviction": CounterFilter(2)}, "eviction must hold StalenessEviction"),
    ({"dim": 2, "num_shards": 0}, "num_shards must be a positive integer or None, got 0"),
    ({"dim": 2, "seed": 1.5}, "seed must be an integer, got 1.5"),
])
def test_bad_values_are_named(kwargs, message):
    with pytest.raises(ValueError, match=message):
        TableConfig(**kwargs)


def test_an_int_is_the_dim_of_a_default_config():
    assert as_table_config(8) == TableConfig(8)
    with pytest.raises(ValueError, match=r"table must be a TableConfig or an int dim, got '8'"):
        as_table_config("8")
    with pytest.raises(ValueError, match="policy config must name one of"):
        policies.deserialize({"class_name": "Nope", "config": {}})


@pytest.mark.parametrize("config", [
    {"class_name": "CounterFilter", "config": {"count": 3}},
    {"class_name": "CounterFilter", "config": {"min_count": 3, "count": 3}},
    {"class_name": "CounterFilter", "config": {}},
    {"class_name": "CounterFilter"},
    {"class_name": "CounterFilter", "config": None},
])
def test_deserialize_names_a_bad_policy_config(config):
    with pytest.raises(ValueError, match=r"CounterFilter config must be a dict of its fields "
                                         r"\['min_count'\] holding at least \['min_count'\], got"):
        policies.deserialize(config)
    assert policies.deserialize({"class_name": "StalenessEviction",
                                 "config": {"max_staleness": 3}}) == StalenessEviction(3)


def test_bloom_filter_stores_a_numpy_false_positive_rate_as_a_float():
    bloom = BloomFilter(2, expected_keys=1000, false_positive_rate=np.float32(0.25))
    assert type(bloom.false_positive_rate) is float
    assert bloom == BloomFilter(2, expected_keys=1000, false_positive_rate=0.25)
    # m = ceil(-n ln p / ln(2)^2) counters, k = round(m / n ln 2) hashes
    assert (bloom.num_counters, bloom.num_hashes) == (2886, 2)
    assert policies.deserialize(json.loads(json.dumps(policies.serialize(bloom)))) == bloom
