"""The Keras front end of training with KV tables.

- `optimizers.KVOptimizer`: sends KV gradients to a sparse optimizer, the rest to Keras.
- `callbacks`: KVTableStats (TensorBoard), KVEviction, FreqCounting.
- `kv_model.KVModel`: a functional Model whose fit applies the tables' freq counting.
- `checkpoints`: save / load a model with its config, never overwriting a checkpoint.
- `model_tables.kv_tables(model)`: the KV tables a model uses.
"""
from deeprec_lite.training import callbacks, checkpoints, kv_model, model_tables, optimizers
from deeprec_lite.training.callbacks import FreqCounting, KVEviction, KVTableStats
from deeprec_lite.training.kv_model import KVModel
from deeprec_lite.training.model_tables import kv_tables
from deeprec_lite.training.optimizers import KVOptimizer

__all__ = ["FreqCounting", "KVEviction", "KVModel", "KVOptimizer", "KVTableStats", "callbacks",
           "checkpoints", "kv_model", "kv_tables", "model_tables", "optimizers"]
