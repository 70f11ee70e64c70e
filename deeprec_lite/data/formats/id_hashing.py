"""String ids hashed to int64 ids, as the readers hash a field with ``hash_to_int64=True``."""
from __future__ import annotations

import numpy as np

from deeprec_lite.compat import tf

# Fingerprint64(id) % HASH_BUCKETS: every int64 id in [0, 2**63 - 2].
HASH_BUCKETS = 2**63 - 1


def hash_string_ids(ids):
    """int64 ids of string ids: ``tf.strings.to_hash_bucket_fast(ids, 2**63 - 1)``.

    The readers' op hashes a ``hash_to_int64`` field's ids with the same function
    (FarmHash Fingerprint64, stable across platforms and TensorFlow versions), so a serving
    graph that gets raw string ids calls this on them before the model.

    Args:
      ids: a string tensor or ``tf.RaggedTensor`` of any shape.

    Returns:
      int64 ids of the same shape.

    Example:
      >>> hash_string_ids(tf.constant(["abc"])).numpy()
      array([2640714258260161385])
    """
    return tf.strings.to_hash_bucket_fast(ids, HASH_BUCKETS)


def hash_string_array(values: np.ndarray) -> np.ndarray:
    """:func:`hash_string_ids` of a numpy array of str (object dtype): an int64 array."""
    return hash_string_ids(tf.constant(values, tf.string)).numpy()
