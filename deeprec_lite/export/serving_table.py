"""ServingTable: a filtered KV table rebuilt from stock TensorFlow only.

A `tf.lookup.experimental.MutableHashTable` maps each kept key to its row of a
float32 variable [kept + 1, dim] whose row 0 is the default value, which absent keys
(filtered or never seen) get: the hash table's own default is row 0. Both are core
TensorFlow resources saved in the SavedModel's variables (no graph-size limit), so TF
Serving and `tf.saved_model.load` need no custom op. Rows are the exported float32
values, so lookups are bit-exact. Nothing in the traced lookup depends on the number of
keys (the variable's first dimension is left open), so a loaded serving model's tables
can be refilled in place (export.serving_delta).
"""
import numpy as np

from deeprec_lite.compat import tf


class ServingTable(tf.Module):
    """keys [N] (int64 or bytes), values [N, dim] float32, default_row [dim]."""

    def __init__(self, keys, values, default_row, name="serving_table"):
        super().__init__(name=name)
        key_dtype = tf.int64 if keys.dtype == np.int64 else tf.string
        dim = len(default_row)
        self.index = tf.lookup.experimental.MutableHashTable(key_dtype, tf.int64, default_value=0)
        if len(keys):
            self.index.insert(tf.constant(keys, key_dtype),
                              tf.range(1, len(keys) + 1, dtype=tf.int64))
        rows = np.concatenate([np.asarray(default_row, np.float32)[None, :],
                               np.asarray(values, np.float32).reshape(len(keys), dim)])
        self.values = tf.Variable(rows, trainable=False, name="values",
                                  shape=tf.TensorShape([None, dim]))
        self.lookup = tf.function(self._lookup, input_signature=[tf.TensorSpec([None], key_dtype)])

    def _lookup(self, keys):
        """Rows [N, dim] of keys [N]; the default row for absent keys."""
        return tf.gather(self.values, self.index.lookup(keys))
