"""The WorkQueue's checkpointable state: rows consumed per (epoch, work item) + the list digest.

It is a TensorFlow trackable: put the queue (or ``queue.state``) in a
``tf.train.Checkpoint`` next to the model, and a restored job resumes each
item right after its last delivered row. A checkpoint taken for another work
list (another digest) is ignored: the queue starts fresh and says so.
"""
from __future__ import annotations

import logging
from typing import Callable, List, Optional

import numpy as np

from deeprec_lite.compat import tf

_log = logging.getLogger(__name__)


class WorkQueueState(tf.__internal__.tracking.Trackable):
    """Rows delivered so far for each (epoch, item); saved with the work list's digest.

    ``consumed`` is an int64 variable of ``num_epochs * num_items`` counters,
    counter ``epoch * num_items + item``. Datasets built by the WorkQueue add to
    it when they hand a batch to the caller.
    """

    def __init__(self, digest: str, item_rows: np.ndarray, num_epochs: int):
        self.digest = str(digest)
        self.item_rows = np.asarray(item_rows, dtype=np.int64)
        self.num_epochs = int(num_epochs)
        self.num_items = len(self.item_rows)
        size = max(self.num_epochs * self.num_items, 1)
        self.consumed = tf.Variable(tf.zeros([size], tf.int64), trainable=False,
                                    name="workqueue_consumed")
        self._limits = tf.constant(np.tile(self.item_rows, self.num_epochs) if self.num_items
                                   else np.zeros(1, np.int64))
        self.last_restore: Optional[str] = None
        self._restore_listeners: List[Callable[[], None]] = []

    # --- bookkeeping ---------------------------------------------------------------------
    def consumed_rows(self) -> np.ndarray:
        """Rows delivered per (epoch, item), shape ``[num_epochs, num_items]``."""
        return self.consumed.numpy()[:self.num_epochs * self.num_items].reshape(
            self.num_epochs, self.num_items)

    def record(self, keys: tf.Tensor) -> tf.Operation:
        """Adds one delivered row per entry of ``keys`` (``epoch * num_items + item``).

        Fails (tf.errors.InvalidArgumentError) when an item would get more rows
        than it has: rows delivered twice, e.g. by iterating one WorkQueue
        dataset a second time.
        """
        unique, _, counts = tf.unique_with_counts(keys, out_idx=tf.int64)
        update = self.consumed.scatter_nd_add(tf.expand_dims(unique, 1), counts)
        with tf.control_dependencies([update]):
            now = tf.gather(self.consumed, unique)
            limit = tf.gather(self._limits, unique)
            return tf.debugging.assert_less_equal(
                now, limit, message="WorkQueue: a work item delivered more rows than it holds "
                "(rows delivered twice). Each WorkQueue dataset may be iterated once; build a "
                "new one per pass.")

    def add_restore_listener(self, callback: Callable[[], None]) -> None:
        """``callback()`` runs after every restore (the queue drops its running jobs)."""
        self._restore_listeners.append(callback)

    # --- checkpointing -------------------------------------------------------------------
    def _serialize_to_tensors(self):
        return {"consumed": self.consumed.read_value(),
                "digest": tf.constant(self.digest),
                "item_rows": tf.constant(self.item_rows if self.num_items else np.zeros(0, np.int64))}

    def _restore_from_tensors(self, restored_tensors):
        digest = restored_tensors["digest"].numpy().decode("utf-8")
        saved = restored_tensors["consumed"].numpy()
        fresh = np.zeros(self.consumed.shape, np.int64)
        if digest != self.digest:
            self.last_restore = (f"fresh: the checkpoint's work list (digest {digest[:12]}...) is "
                                 f"not this one ({self.digest[:12]}...)")
            _log.warning("WorkQueue state not restored: %s", self.last_restore)
            op = self.consumed.assign(fresh)
        else:
            n = self.num_items
            saved_epochs = len(saved) // n if n else 0
            epochs = min(saved_epochs, self.num_epochs)
            fresh[:epochs * n] = saved[:epochs * n]
            self.last_restore = f"restored: {int(fresh.sum())} rows already consumed"
            op = self.consumed.assign(fresh)
        for callback in self._restore_listeners:
            callback()
        return op
