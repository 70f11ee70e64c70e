"""TableConfig: how a KV table is made, as one value that layers and models take."""
import dataclasses
from typing import Optional, Sequence, Tuple, Union

from deeprec_lite._checks import check_int, check_number
from deeprec_lite.kv import initializers, policies

KEY_DTYPES = ("int64", "string")


@dataclasses.dataclass(frozen=True)
class TableConfig:
    """Everything that makes a KV table, except its name and optimizer slots.

    Args:
      dim: embedding width, a positive int.
      key_dtype: "int64" or "string" (or the tf dtype).
      initializer: a name (zeros, constant, uniform, normal, truncated_normal) or an
        `initializers.KVInitializer`; a new key's value is a function of (key, seed).
      seed: int seed of the initializer.
      default_value: what lookups return for keys without a row: a float or dim floats.
      admission: None, `policies.CounterFilter` or `policies.BloomFilter`.
      eviction: None, one, or a sequence of `StalenessEviction` / `FrequencyEviction`.
      freq_counting: what a key's freq (and so admission, frequency eviction and the
        export's min_freq) counts: "every_epoch" (default), every occurrence in every
        training batch of every epoch; "first_epoch", the occurrences in epoch 0 of
        each `fit` only, that is how often the key occurs in the data trained on,
        whatever the number of epochs (see `policies.FREQ_COUNTING`).
      num_shards: split the table into this many shards (PartitionedKVVariable); None:
        one shard per parameter server under a ParameterServerStrategy with several,
        else one table (on the parameter server where there is one).
      grouped: True (default): the table is looked up and updated together with the
        other grouped tables of its model, one op per step for all of them (a
        `KVEmbeddingGroup` looks up the fields of a zoo model together; KVOptimizer
        updates all tables of a sparse optimizer in one fused op). False: the table
        has its own lookup and update ops every step (the per-table path; results
        are the same).

    Example:
        table = TableConfig(16, admission=CounterFilter(3),   # ids seen 3 times in the data
                            eviction=StalenessEviction(100_000, every_n_steps=1000),
                            freq_counting="first_epoch")
        embedding = KVEmbedding(table, combiner="mean")
        model = DeepFM(schema, table=table)
        linear = table.replace(dim=1)             # the same policies, 1-wide
    """

    dim: int
    key_dtype: str = "int64"
    initializer: Union[str, initializers.KVInitializer] = "truncated_normal"
    seed: int = 0
    default_value: Union[float, Tuple[float, ...]] = 0.0
    admission: policies.Admission = None
    eviction: Union[None, policies.Eviction, Sequence[policies.Eviction]] = ()
    num_shards: Optional[int] = None
    freq_counting: str = "every_epoch"
    grouped: bool = True

    def __post_init__(self):
        dim = check_int(self.dim, "dim", minimum=1)
        key_dtype = getattr(self.key_dtype, "name", self.key_dtype)  # a tf.DType too
        if key_dtype not in KEY_DTYPES:
            raise ValueError(f"key_dtype must be 'int64' or 'string', got {self.key_dtype!r}")
        default = self.default_value
        if isinstance(default, (list, tuple)):
            default = tuple(check_number(v, f"default_value[{i}]") for i, v in enumerate(default))
            if len(default) != dim:
                raise ValueError(f"default_value must be one float or dim={dim} floats, got "
                                 f"{len(default)} floats")
        else:
            default = check_number(default, "default_value")
        normalized = {
            "dim": dim, "key_dtype": key_dtype, "default_value": default,
            "initializer": initializers.get(self.initializer),
            "seed": check_int(self.seed, "seed"),
            "admission": policies.check_admission(self.admission),
            "eviction": tuple(policies.normalize_eviction(self.eviction)),
            "freq_counting": policies.check_freq_counting(self.freq_counting),
            "num_shards": check_int(self.num_shards, "num_shards", minimum=1, none_ok=True),
            "grouped": self._check_grouped()}
        for field, value in normalized.items():  # frozen: set through object
            object.__setattr__(self, field, value)

    def _check_grouped(self):
        if not isinstance(self.grouped, bool):
            raise ValueError(f"grouped must be True or False, got {self.grouped!r}")
        return self.grouped

    def replace(self, **changes):
        """A copy with `changes` (e.g. another dim or key dtype)."""
        return dataclasses.replace(self, **changes)

    def variable_arguments(self):
        """The keyword arguments of KVVariable / PartitionedKVVariable this config sets."""
        return {"dim": self.dim, "key_dtype": self.key_dtype, "initializer": self.initializer,
                "seed": self.seed, "default_value": self.default_value,
                "admission": self.admission, "eviction": list(self.eviction),
                "freq_counting": self.freq_counting}

    def get_config(self):
        """A JSON-able dict; `TableConfig.from_config` makes the same config again."""
        return {"dim": self.dim, "key_dtype": self.key_dtype,
                "initializer": dataclasses.asdict(self.initializer), "seed": self.seed,
                "default_value": (list(self.default_value)
                                  if isinstance(self.default_value, tuple) else self.default_value),
                "admission": policies.serialize(self.admission),
                "eviction": [policies.serialize(p) for p in self.eviction],
                "num_shards": self.num_shards, "freq_counting": self.freq_counting,
                "grouped": self.grouped}

    @classmethod
    def from_config(cls, config):
        config = dict(config)
        config["initializer"] = initializers.KVInitializer(**config["initializer"])
        config["admission"] = policies.deserialize(config["admission"])
        config["eviction"] = [policies.deserialize(p) for p in config["eviction"]]
        return cls(**config)


def as_table_config(table, name="table"):
    """`table` as a TableConfig: itself, or an int taken as the dim of a default config."""
    if isinstance(table, TableConfig):
        return table
    if isinstance(table, int) and not isinstance(table, bool):
        return TableConfig(table)
    raise ValueError(f"{name} must be a TableConfig or an int dim, got {table!r}")
