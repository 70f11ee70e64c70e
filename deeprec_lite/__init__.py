"""deeprec-lite: KV embedding variables and CTR ranking models for TensorFlow / tf_keras.

The Keras-free core: KVVariable, PartitionedKVVariable, the policies, initializers and sparse_optimizers.
The Keras front end: layers, optimizers, callbacks, checkpoints, export, warm_start and the
model zoo (deeprec_lite.models).
"""
from deeprec_lite import compat as _compat  # sets TF_USE_LEGACY_KERAS before TensorFlow loads
from deeprec_lite import kv_initializers as initializers
from deeprec_lite.kv_variable import KVRecords, KVVariable
from deeprec_lite.partitioned_kv_variable import PartitionedKVVariable
from deeprec_lite.policies import (BloomFilter, CounterFilter, FrequencyEviction,
                                   StalenessEviction)
from deeprec_lite import sparse_optimizers
from deeprec_lite import callbacks, checkpoints, data, distribute, export, layers, optimizers  # noqa: E402
from deeprec_lite import models  # noqa: E402  (the zoo, installed from models/)
from deeprec_lite.warm_start import WarmStartReport, warm_start  # noqa: E402

__version__ = "0.1.0"

__all__ = ["BloomFilter", "CounterFilter", "FrequencyEviction", "KVRecords", "KVVariable",
           "PartitionedKVVariable", "StalenessEviction", "WarmStartReport", "callbacks",
           "checkpoints", "data", "distribute", "export",
           "initializers", "layers", "models", "optimizers", "sparse_optimizers", "warm_start"]
