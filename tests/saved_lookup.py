"""A SavedModel of one KV table: the table plus a `serve` lookup of int64 keys."""
from deeprec_lite.compat import tf


def save_and_load_lookup(kv, directory):
    """Saves kv as `table` with `serve(keys [None] int64)` -> kv.lookup(keys) to
    `directory` and returns the loaded module."""
    module = tf.Module()
    module.table = kv
    module.serve = tf.function(lambda k: kv.lookup(k),
                               input_signature=[tf.TensorSpec([None], tf.int64)])
    tf.saved_model.save(module, str(directory))
    return tf.saved_model.load(str(directory))
