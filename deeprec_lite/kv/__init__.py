"""The KV core: TensorFlow only, no Keras.

- `KVVariable` (variable.py): one hash table of (key -> value, freq, version, slots),
  a tf.Module tracked by tf.train.Checkpoint and SavedModel.
- `PartitionedKVVariable` (partitioned_variable.py): a table split by key hash.
- `TableConfig` (table_config.py): how a table is made, one value for layers and models.
- `policies`: admission (CounterFilter, BloomFilter) and eviction rules.
- `initializers`: initial values of new keys, a function of (key, seed).
- `sparse_optimizers`: fused C++ updates (SGD, Adagrad, Adam, FTRL, G-FTRL).
- `op_library`: loads the C++ op library built from ops/.
- `checkpointing`: streams tables to and from tf.train.Checkpoint files (imported
  here: it registers the tables' checkpoint saver).
- `snapshots`: a table's records chunk by chunk, from a live table or a checkpoint,
  and the one frequency / staleness rule (export and warm start read through it).
"""
from deeprec_lite.kv import checkpointing  # noqa: F401  (registers the checkpoint saver)
from deeprec_lite.kv import initializers, policies, snapshots, sparse_optimizers
from deeprec_lite.kv.partitioned_variable import PartitionedKVVariable
from deeprec_lite.kv.policies import BloomFilter, CounterFilter, FrequencyEviction, StalenessEviction
from deeprec_lite.kv.table_config import TableConfig
from deeprec_lite.kv.variable import KVRecords, KVVariable

__all__ = ["BloomFilter", "CounterFilter", "FrequencyEviction", "KVRecords", "KVVariable",
           "PartitionedKVVariable", "StalenessEviction", "TableConfig", "initializers", "policies",
           "snapshots", "sparse_optimizers"]
