"""WorkQueue: dynamic work sharding over tf.data service, checkpointable, several epochs.

The epoch's input is cut into work items (file x row range). Workers (training
processes or threads) each build a dataset with :meth:`WorkQueue.epoch_dataset`
(or :meth:`WorkQueue.dataset` for all remaining epochs); all of them read one
shared tf.data service job with ``ShardingPolicy.DYNAMIC``, so the dispatcher
hands the next item to whichever worker asks first and a slow worker simply
takes fewer items. Items are handed out in an order shuffled by (seed, epoch).

Each batch holds rows of one item. When a dataset hands a batch to its caller,
the queue's state counts the rows (per epoch and item). Put the queue in a
``tf.train.Checkpoint`` with the model; after a restart, restoring it makes the
next datasets skip every delivered row and resume each item right after its
last delivered row: no row is repeated or skipped relative to the checkpoint.
The state carries a digest of the work list; restoring a checkpoint taken for
another list starts fresh (``queue.state.last_restore`` says so).

A worker whose iterator is dropped mid-item (it died) leaves its item's rest
and the items its client had queued undelivered by the job. Once the job has
no reader left and one has ended or been dropped, the next ``epoch_dataset``
(or ``dataset``) call starts a new job over exactly the rows still to deliver,
as a restore would; until then new datasets join the running job.

Rules: iterate each dataset once (a second pass would re-deliver the rows and
fails loudly); add no ``prefetch`` after it (rows would be counted before the
model gets them; the dataset prefetches internally before the counting step).
The state lives in the process that owns the queue; several worker threads of
that process may share it. (Several processes would each checkpoint their own
counts; merging them is not implemented.)
"""
from __future__ import annotations

import itertools
import threading
import uuid
from typing import Dict, List, Optional, Sequence, Tuple, Union

import numpy as np

from deeprec_lite._checks import check_int
from deeprec_lite.compat import tf
from deeprec_lite.data.formats import arrow_dataset
from deeprec_lite.data.formats.column_batch import num_rows, rebatch_chunks
from deeprec_lite.data.formats.errors import BadFileCounter, BadFileError
from deeprec_lite.data.formats.file_dataset import Paths, expand_paths
from deeprec_lite.data.workqueue.local_data_service import LocalDataService
from deeprec_lite.data.formats.row_sources import RowSource
from deeprec_lite.data.formats.tf_conversion import (LENGTHS_SUFFIX, chunk_batches, flat_signature,
                                             flatten_batch, make_assemble_fn, split_into_batches)
from deeprec_lite.data.workqueue.work_items import WorkItem, epoch_order, plan_work_items, work_list_digest
from deeprec_lite.data.workqueue.state import WorkQueueState

WORK_KEY = "__work_key__"
_instance_ids = itertools.count()

Entry = Tuple[int, int, int, int]  # (key, file index, start, stop)


class WorkQueue(tf.Module):
    """Work items over files, handed out dynamically by a tf.data service; see the module docstring.

    Args:
      paths: input files (a path, a glob pattern, or a list of them).
      source: how to read a row range: ``ParquetSource(schema)``,
        ``CsvSource(schema, ...)`` or ``LibsvmSource(layout)``.
      batch_size: rows per batch (an item's last batch may be shorter).
      rows_per_item: rows per work item; default ``8 * batch_size``.
      num_epochs: passes over the work list the state tracks.
      seed: shuffles the order in which each epoch hands out items.
      service: a ``grpc://127.0.0.1:<port>`` tf.data service dispatcher address or a
        :class:`LocalDataService`; None starts a LocalDataService with one worker,
        owned (and stopped by :meth:`close`) by the queue.
      skip_bad_files: leave unreadable files out of the work list (counted in
        ``bad_files``) instead of raising BadFileError.
      prefetch_batches: batches each worker reads ahead within its current item
        (before they are counted). The queue's own read-ahead never crosses into
        the next item; the tf.data service client still keeps a few item ids
        queued per worker (about three with TF 2.21), so a slow worker can end
        the epoch with those: keep items small against the epoch.
    """

    def __init__(self, paths: Paths, source: RowSource, *, batch_size: int,
                 rows_per_item: Optional[int] = None, num_epochs: int = 1, seed: int = 0,
                 service: Union[None, str, LocalDataService] = None,
                 skip_bad_files: bool = False, bad_files: Optional[BadFileCounter] = None,
                 prefetch_batches: int = 2, name: str = "workqueue"):
        super().__init__(name=name)
        for arg, value, low in (("batch_size", batch_size, 1), ("num_epochs", num_epochs, 1),
                                ("seed", seed, 0), ("prefetch_batches", prefetch_batches, 0)):
            check_int(value, arg, minimum=low)
        if not isinstance(source, RowSource):
            raise ValueError(f"source must be a RowSource (ParquetSource, CsvSource, "
                             f"LibsvmSource), got {type(source).__name__}")
        if not (service is None or isinstance(service, (str, LocalDataService))):
            raise ValueError(f"service must be None, a 'grpc://host:port' address or a "
                             f"LocalDataService, got {type(service).__name__} {service!r}")
        self._source = source
        self._batch_size = batch_size
        self._seed = seed
        self._prefetch = prefetch_batches
        self.bad_files = bad_files if bad_files is not None else BadFileCounter()
        good = []
        for path in expand_paths(paths):
            try:
                source.check(path)
                good.append(path)
            except BadFileError as e:
                if not skip_bad_files:
                    raise
                self.bad_files.add(path, str(e))
        rows_per_item = 8 * batch_size if rows_per_item is None else rows_per_item
        self._plan = _Plan(plan_work_items(good, rows_per_item, source.num_rows))
        self.state = WorkQueueState(self._plan.digest, self._plan.rows, num_epochs)
        self.state.add_restore_listener(self._drop_jobs)
        self._owned_service = None
        if service is None:
            service = self._owned_service = LocalDataService(num_workers=1)
        self._target = service.target if isinstance(service, LocalDataService) else str(service)
        self._uid = f"{next(_instance_ids)}-{uuid.uuid4().hex[:8]}"
        self._jobs = _Jobs()
        # Kept in plain holders: tf.Module would wrap dicts and lists for tracking.
        self._spec = _PipelineSpec(
            flat_signature(source.schema, {**source.extra_columns, WORK_KEY: (tf.int64, False)}),
            make_assemble_fn(source.schema, {**source.extra_columns, WORK_KEY: (tf.int64, False)}))

    # --- the work list and its progress ----------------------------------------------------
    @property
    def items(self) -> List[WorkItem]:
        """The work list (file x row range), in file order."""
        return list(self._plan.items)

    @property
    def digest(self) -> str:
        return self._plan.digest

    @property
    def num_epochs(self) -> int:
        return self.state.num_epochs

    @property
    def total_rows(self) -> int:
        """Rows in one epoch."""
        return int(self._plan.rows.sum())

    @property
    def service_target(self) -> str:
        return self._target

    def consumed_rows(self) -> np.ndarray:
        """Rows delivered per (epoch, item), shape ``[num_epochs, num_items]``."""
        return self.state.consumed_rows()

    def remaining_items(self, epoch: int) -> List[Tuple[int, WorkItem]]:
        """``(item index, rows still to deliver)`` of ``epoch``, in the epoch's hand-out order."""
        self._check_epoch(epoch)
        consumed = self.consumed_rows()[epoch]
        out = []
        for i in epoch_order(len(self._plan.items), self._seed, epoch):
            item = self._plan.items[i]
            if consumed[i] < item.num_rows:
                out.append((int(i), WorkItem(item.path, item.start + int(consumed[i]), item.stop)))
        return out

    def remaining_epochs(self) -> List[int]:
        """Epochs with rows still to deliver, in order."""
        left = self._plan.rows[None, :] - self.consumed_rows()
        return [e for e in range(self.num_epochs) if left[e].sum() > 0]

    @property
    def epoch(self) -> int:
        """The first epoch with rows left (``num_epochs`` when everything is consumed)."""
        remaining = self.remaining_epochs()
        return remaining[0] if remaining else self.num_epochs

    # --- datasets --------------------------------------------------------------------------
    def epoch_dataset(self, epoch: Optional[int] = None) -> tf.data.Dataset:
        """One worker's dataset for ``epoch`` (default: :attr:`epoch`), fed by the shared job.

        Every worker calls this for its own dataset; together they deliver the
        epoch's remaining rows exactly once.
        """
        epoch = self.epoch if epoch is None else epoch
        self._check_epoch(epoch)
        return self._service_dataset(("epoch", epoch), lambda: self._entries([epoch]))

    def dataset(self) -> tf.data.Dataset:
        """One worker's dataset over all remaining epochs, one after the other (one job)."""
        return self._service_dataset(("all",), lambda: self._entries(self.remaining_epochs()))

    def static_dataset(self, shard_index: int, num_shards: int,
                       epoch: Optional[int] = None) -> tf.data.Dataset:
        """Static sharding, for comparison: shard ``i`` reads remaining items ``i, i+n, ...``
        of the epoch's order, without the service (a slow shard delays the epoch)."""
        num_shards = check_int(num_shards, "num_shards", minimum=1)
        shard_index = check_int(shard_index, "shard_index", minimum=0, below=num_shards)
        epoch = self.epoch if epoch is None else epoch
        self._check_epoch(epoch)
        entries = self._entries([epoch])[shard_index::num_shards]
        return self._reading_pipeline(self._entries_dataset(entries))

    def close(self) -> None:
        """Stops the tf.data service the queue started (if any)."""
        if self._owned_service is not None:
            self._owned_service.stop()
            self._owned_service = None

    # --- internals -------------------------------------------------------------------------
    def _check_epoch(self, epoch) -> None:
        check_int(epoch, "epoch", minimum=0, below=self.num_epochs)

    def _drop_jobs(self) -> None:
        self._jobs.generation += 1
        self._jobs.by_key.clear()

    def _entries(self, epochs: Sequence[int]) -> List[Entry]:
        n = len(self._plan.items)
        return [(e * n + i, self._plan.file_index[item.path], item.start, item.stop)
                for e in epochs for i, item in self.remaining_items(e)]

    def _entries_dataset(self, entries: List[Entry]) -> tf.data.Dataset:
        columns = np.array(entries, dtype=np.int64).reshape(-1, 4)
        return tf.data.Dataset.from_tensor_slices(tuple(columns[:, k] for k in range(4)))

    def _service_dataset(self, job_key: tuple, make_entries) -> tf.data.Dataset:
        with self._jobs.lock:
            key = job_key + (self._jobs.generation,)
            job = self._jobs.by_key.get(key)
            if job is None or job.finished():
                tag = "-".join(str(k) for k in key + (next(self._jobs.serial),))
                job = self._jobs.by_key[key] = _Job(
                    f"{self.name}-{self.digest[:12]}-{self._uid}-{tag}", make_entries())
        items = self._entries_dataset(job.entries)
        if job.entries:
            items = items.apply(tf.data.experimental.service.distribute(
                processing_mode=tf.data.experimental.service.ShardingPolicy.DYNAMIC,
                service=self._target, job_name=job.name, max_outstanding_requests=1))
        # The reader holds a lease on the job from its first item until its iterator
        # ends or is destroyed (from_generator closes the generator either way).
        lease = tf.data.Dataset.from_generator(job.lease, output_signature=tf.TensorSpec(
            [], tf.int64))
        return self._reading_pipeline(lease.flat_map(lambda _: items))

    def _generate_item(self, key, file_index, start, stop):
        path = self._plan.paths[int(file_index)]
        chunks = rebatch_chunks(self._source.read(path, int(start), int(stop)), self._batch_size,
                                chunk_batches(self._batch_size))
        for chunk in chunks:
            chunk[WORK_KEY] = np.full(num_rows(chunk), int(key), dtype=np.int64)
            yield flatten_batch(chunk)

    def _native_range(self, file_index, start, stop):
        path = self._plan.paths[int(file_index)]
        return tuple(np.int64(v) for v in self._source.native_range(path, int(start), int(stop)))

    def _native_item(self, key, file_index, start, stop) -> tf.data.Dataset:
        """The item's assembled batches, with the work key, from the C++ reader op."""
        path = tf.gather(tf.constant(self._plan.paths, tf.string), file_index)
        begin, end, rows = tf.numpy_function(self._native_range, [file_index, start, stop],
                                             [tf.int64] * 3, stateful=False)
        first = self._source.schema.fields[0]
        rows_key = first.name + LENGTHS_SUFFIX if getattr(first, "is_ragged", False) else first.name

        def with_key(columns):
            rows_of_batch = tf.shape(columns[rows_key], out_type=tf.int64)
            return self._spec.assemble({**columns, WORK_KEY: tf.fill(rows_of_batch, key)})

        return arrow_dataset.items_dataset(
            self._source.schema, path, begin, end, self._batch_size, row_counts=rows,
            csv=self._source.csv_options, batch_rows=self._source.batch_rows,
            element_fn=with_key)

    def _reading_pipeline(self, items: tf.data.Dataset) -> tf.data.Dataset:
        signature = self._spec.signature
        assemble = self._spec.assemble

        @tf.autograph.experimental.do_not_convert
        def read_item(key, file_index, start, stop):
            # Read-ahead stays inside the item: flat_map opens the next item only when
            # the caller has taken every batch of this one.
            if self._source.native:
                batches = self._native_item(key, file_index, start, stop)
            else:
                batches = tf.data.Dataset.from_generator(
                    self._generate_item, args=(key, file_index, start, stop),
                    output_signature=signature).map(assemble).flat_map(
                        split_into_batches(self._batch_size))
            return batches.prefetch(self._prefetch) if self._prefetch else batches

        @tf.autograph.experimental.do_not_convert
        def deliver(element):
            features, label = element if isinstance(element, tuple) else (element, None)
            features = dict(features)
            counted = self.state.record(features.pop(WORK_KEY))
            with tf.control_dependencies([counted]):
                features, label = tf.nest.map_structure(tf.identity, (features, label))
            return features if label is None else (features, label)

        ds = items.flat_map(read_item)
        if self._source.schema.labels:
            ds = ds.map(tf.autograph.experimental.do_not_convert(
                lambda features, label: deliver((features, label))))
        else:
            ds = ds.map(deliver)
        # ^ the last step: a batch is counted when the caller takes it
        options = tf.data.Options()
        options.experimental_optimization.inject_prefetch = False
        options.experimental_optimization.map_parallelization = False
        return ds.with_options(options)


class _Plan:
    """The work list with its file table, row counts and digest (kept out of tf.Module tracking)."""

    def __init__(self, items: List[WorkItem]):
        self.items = tuple(items)
        self.paths = tuple(dict.fromkeys(item.path for item in items))
        self.file_index = {p: i for i, p in enumerate(self.paths)}
        self.rows = np.array([item.num_rows for item in items], dtype=np.int64)
        self.digest = work_list_digest(items)


class _Jobs:
    """The current tf.data service job per (kind, epoch..., generation).

    A restore bumps the generation so later datasets start new jobs over the restored state.
    """

    def __init__(self):
        self.generation = 0
        self.serial = itertools.count()
        self.lock = threading.Lock()
        self.by_key: Dict[tuple, _Job] = {}


class _Job:
    """One job: its name, its entries (fixed when it starts) and the readers' leases on it."""

    def __init__(self, name: str, entries: List[Entry]):
        self.name = name
        self.entries = entries
        self._lock = threading.Lock()
        self._open = 0
        self._closed = 0

    def lease(self):
        """Generator: one element while a reader iterates the job (its lease)."""
        with self._lock:
            self._open += 1
        try:
            yield np.int64(0)
        finally:
            with self._lock:
                self._open -= 1
                self._closed += 1

    def finished(self) -> bool:
        """No reader holds an item of the job and one has ended (no item left) or died.

        Its rows not yet delivered then belong to no reader: a new job takes them.
        """
        with self._lock:
            return self._open == 0 and self._closed > 0


class _PipelineSpec:
    """The generator signature and the assembly function of the reading pipeline."""

    def __init__(self, signature, assemble):
        self.signature = signature
        self.assemble = assemble
