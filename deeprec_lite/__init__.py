"""deeprec-lite: KV embedding variables and CTR ranking models for TensorFlow / tf_keras.

Two storeys:
- `deeprec_lite.kv`: the TensorFlow-only core (no Keras): KVVariable, PartitionedKVVariable,
  admission and eviction policies, initializers, sparse optimizers, the op library loader.
- The Keras front end: `layers`, `training` (KVOptimizer, callbacks, checkpoints), `export`,
  `warm_start`, `data`, `distribute` and the model zoo (`deeprec_lite.models`).

Everything is imported on first use (`drl.KVVariable`, `drl.layers`, `drl.models`, ...):
`import deeprec_lite.kv` never loads Keras, and the command line can quiet TensorFlow's
start-up logging before TensorFlow loads.
"""
import importlib
import os

# tensorflow-recommenders needs tf.keras to be Keras 2 (tf_keras), which TensorFlow
# only gives when this is set before it is first imported; deeprec_lite.compat checks it.
os.environ.setdefault("TF_USE_LEGACY_KERAS", "1")
__version__ = "0.1.0"

# name -> module, imported on first access
_LAZY_MODULES = {
    "initializers": "deeprec_lite.kv.initializers", "policies": "deeprec_lite.kv.policies",
    "sparse_optimizers": "deeprec_lite.kv.sparse_optimizers",
    "compat": "deeprec_lite.compat", "layers": "deeprec_lite.layers",
    "training": "deeprec_lite.training", "optimizers": "deeprec_lite.training.optimizers",
    "callbacks": "deeprec_lite.training.callbacks",
    "checkpoints": "deeprec_lite.training.checkpoints", "export": "deeprec_lite.export",
    "data": "deeprec_lite.data", "distribute": "deeprec_lite.distribute",
    "models": "deeprec_lite.models", "cli": "deeprec_lite.cli",
}
# name -> the module that defines it, imported on first access
_LAZY_NAMES = {
    "KVVariable": "deeprec_lite.kv.variable", "KVRecords": "deeprec_lite.kv.variable",
    "PartitionedKVVariable": "deeprec_lite.kv.partitioned_variable",
    "TableConfig": "deeprec_lite.kv.table_config", "KVModel": "deeprec_lite.training.kv_model",
    **{name: "deeprec_lite.kv.policies"
       for name in ("BloomFilter", "CounterFilter", "FrequencyEviction", "StalenessEviction")},
    "warm_start": "deeprec_lite.migration", "WarmStartReport": "deeprec_lite.migration",
}


def __getattr__(name):
    if name in _LAZY_MODULES:
        value = importlib.import_module(_LAZY_MODULES[name])
    elif name in _LAZY_NAMES:
        value = getattr(importlib.import_module(_LAZY_NAMES[name]), name)
    else:
        raise AttributeError(f"module 'deeprec_lite' has no attribute {name!r}")
    globals()[name] = value
    return value


def __dir__():
    return sorted(set(globals()) | set(_LAZY_MODULES) | set(_LAZY_NAMES))


__all__ = [*_LAZY_NAMES, *_LAZY_MODULES]
