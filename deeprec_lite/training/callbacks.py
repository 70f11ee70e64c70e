"""tf_keras callbacks for models with KV embeddings."""
import os

from deeprec_lite._checks import check_int
from deeprec_lite.compat import keras, tf
from deeprec_lite.training.model_tables import kv_tables


class KVTableStats(keras.callbacks.Callback):
    """Writes TensorBoard summaries per KV table at the end of each epoch (and every
    `every_n_steps` training steps if given): size (admitted keys), keys counted but
    not admitted, memory, keys evicted so far, gradient rows holding NaN or Inf
    skipped so far (sparse optimizers with nonfinite_gradients="skip"), and
    histograms of freq and of staleness (current step - version) over admitted keys.

    Args:
      log_dir: TensorBoard directory; summaries go to `log_dir/kv_tables`.
      every_n_steps: also write every this many training batches: after each batch
        (or each group of `steps_per_execution` batches) that reaches or passes a
        multiple of it.
    """

    def __init__(self, log_dir, every_n_steps=None):
        super().__init__()
        if not isinstance(log_dir, (str, os.PathLike)) or not os.fspath(log_dir):
            raise ValueError(f"KVTableStats: log_dir must be a directory path; received "
                             f"log_dir={log_dir!r}")
        self.log_dir = os.fspath(log_dir)
        self.every_n_steps = check_int(every_n_steps, "every_n_steps", minimum=1, none_ok=True,
                                       owner="KVTableStats")
        self._writer = None
        self._last_step = 0

    def _write(self, step):
        if self._writer is None:
            self._writer = tf.summary.create_file_writer(os.path.join(self.log_dir, "kv_tables"))
        with self._writer.as_default(step=step):
            for name, kv in kv_tables(self.model).items():
                stats = kv.stats()
                tf.summary.scalar(f"{name}/size", stats["admitted"])
                tf.summary.scalar(f"{name}/not_admitted", stats["pending"])
                tf.summary.scalar(f"{name}/bytes", stats["bytes"])
                tf.summary.scalar(f"{name}/evicted", kv.evicted)
                tf.summary.scalar(f"{name}/nonfinite_skipped", stats["nonfinite_skipped"])
                records = kv.export()
                admitted = records.admitted
                tf.summary.histogram(f"{name}/freq", tf.boolean_mask(records.freqs, admitted))
                tf.summary.histogram(f"{name}/staleness",
                                     kv.step - tf.boolean_mask(records.versions, admitted))
        self._writer.flush()

    def on_train_begin(self, logs=None):
        self._last_step = int(self.model.optimizer.iterations)

    def on_train_batch_end(self, batch, logs=None):
        # With steps_per_execution > 1 the step advances by several batches at a time.
        step, last = int(self.model.optimizer.iterations), self._last_step
        self._last_step = step
        if self.every_n_steps and step // self.every_n_steps > last // self.every_n_steps:
            self._write(step)

    def on_epoch_end(self, epoch, logs=None):
        self._write(int(self.model.optimizer.iterations))


class KVEviction(keras.callbacks.Callback):
    """Evicts every KV table by its own eviction policies at the end of each epoch.

    Put it before a ModelCheckpoint / BackupAndRestore in the callback list to evict
    right before each checkpoint is written, so checkpoints hold no stale keys.
    (Policies with `every_n_steps` also run during training, from the optimizer.)
    """

    def on_epoch_end(self, epoch, logs=None):
        step = self.model.optimizer.iterations
        for kv in kv_tables(self.model).values():
            if kv.eviction:
                kv.evict(step)


class FreqCounting(keras.callbacks.Callback):
    """Applies the `freq_counting` of a model's KV tables in `model.fit`: a table with
    "first_epoch" counts the training lookups of epoch 0 only, so its freq is how
    often each key occurs in the data (deeprec_lite.kv.policies.FREQ_COUNTING).

    A KVModel (every zoo model is one) adds it to each `fit` by itself; another model
    with such tables passes it in `callbacks` (a "first_epoch" table refuses to train
    until something drives its counting). Epoch numbers are those of `fit`, so a job
    that BackupAndRestore resumes in epoch 2 does not count that epoch again.
    """

    def _tables(self):
        return [kv for kv in kv_tables(self.model).values() if kv.freq_counting == "first_epoch"]

    def on_epoch_begin(self, epoch, logs=None):
        for kv in self._tables():
            kv.set_freq_counting(epoch == 0)

    def on_train_end(self, logs=None):
        for kv in self._tables():
            kv.set_freq_counting(True)


def with_freq_counting(callbacks):
    """`callbacks` (None, a list or a CallbackList) with a FreqCounting added unless
    one is in it."""
    if isinstance(callbacks, keras.callbacks.CallbackList):
        callbacks = callbacks.callbacks
    callbacks = list(callbacks or [])
    if not any(isinstance(c, FreqCounting) for c in callbacks):
        callbacks.append(FreqCounting())
    return callbacks
