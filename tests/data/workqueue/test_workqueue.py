import gc
import os
import signal
import subprocess
import sys
import threading
import time

import numpy as np
import pytest

from deeprec_lite.compat import tf
from deeprec_lite.data import BadFileError, CategoricalField, LabelField, Schema
from deeprec_lite.data.workqueue.local_data_service import LocalDataService
from deeprec_lite.data.formats.libsvm_reader import LibsvmLayout
from deeprec_lite.data.formats.row_sources import CsvSource, LibsvmSource, ParquetSource
from deeprec_lite.data.workqueue.queue import WorkQueue
from tests.data.workqueue_fixtures import SCHEMA, row_ids, write_files

SIZES = [230, 400, 97]
SCHEMA_LIBSVM = Schema(labels=[LabelField("label")],
                       categorical=[CategoricalField("row_id"), CategoricalField("ctx")])
TOTAL = sum(SIZES)


@pytest.fixture
def service():
    with LocalDataService(num_workers=2) as s:
        yield s


@pytest.fixture(scope="module")
def files(tmp_path_factory):
    paths, total = write_files(tmp_path_factory.mktemp("wq"), SIZES)
    assert total == TOTAL
    return paths


def _queue(files, service, **kwargs):
    kwargs.setdefault("batch_size", 20)
    kwargs.setdefault("rows_per_item", 60)
    return WorkQueue(files, ParquetSource(SCHEMA), service=service, **kwargs)


def _consume_in_threads(datasets, delays=None):
    """One thread per dataset; returns the row ids each one got."""
    got = [[] for _ in datasets]
    errors = []

    def run(i):
        try:
            for batch in datasets[i]:
                got[i].extend(row_ids(batch).tolist())
                if delays:
                    time.sleep(delays[i])
        except Exception as e:  # pylint: disable=broad-except
            errors.append(e)

    threads = [threading.Thread(target=run, args=(i,)) for i in range(len(datasets))]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    if errors:
        raise errors[0]
    return got


def test_work_items_cover_files(files, service):
    q = _queue(files, service)
    assert [(os.path.basename(i.path), i.start, i.stop) for i in q.items][:5] == [
        ("f0.parquet", 0, 60), ("f0.parquet", 60, 120), ("f0.parquet", 120, 180),
        ("f0.parquet", 180, 230), ("f1.parquet", 0, 60)]
    assert sum(i.num_rows for i in q.items) == TOTAL and q.total_rows == TOTAL
    # Seeded shuffle: fixed per (seed, epoch), different across epochs and seeds.
    order = [i for i, _ in q.remaining_items(0)]
    assert order == [i for i, _ in _queue(files, service).remaining_items(0)]
    assert order != [i for i, _ in _queue(files, service, num_epochs=2).remaining_items(1)]
    assert order != [i for i, _ in _queue(files, service, seed=1).remaining_items(0)]
    assert sorted(order) == list(range(len(q.items)))


def test_every_row_once_across_workers_with_a_slow_one(files, service):
    q = _queue(files, service, num_epochs=2, batch_size=10, rows_per_item=20)   # 37 items
    got = _consume_in_threads([q.epoch_dataset(0) for _ in range(4)],
                              delays=[0.05, 0.0, 0.0, 0.0])
    assert sorted(sum(got, [])) == list(range(TOTAL))
    # The slow worker takes fewer items than any fast one would under static sharding.
    assert len(got[0]) < TOTAL / 4 < max(len(g) for g in got[1:])
    assert q.remaining_epochs() == [1] and q.epoch == 1
    np.testing.assert_array_equal(q.consumed_rows(), [[i.num_rows for i in q.items],
                                                      [0] * len(q.items)])


def test_rows_are_counted_when_delivered_not_when_read_ahead(files, service):
    q = _queue(files, service, prefetch_batches=4)
    it = iter(q.epoch_dataset(0))
    taken = [len(row_ids(next(it))) for _ in range(3)]
    time.sleep(0.3)                                    # let the pipeline read ahead
    assert q.consumed_rows().sum() == sum(taken)


def test_dataset_runs_all_epochs_and_a_second_pass_fails(files, service):
    q = _queue(files, service, num_epochs=3)
    ds = q.dataset()
    got = _consume_in_threads([ds, q.dataset()])
    ids, counts = np.unique(np.concatenate([np.array(g, dtype=np.int64) for g in got]),
                            return_counts=True)
    assert ids.tolist() == list(range(TOTAL)) and set(counts.tolist()) == {3}
    with pytest.raises(tf.errors.InvalidArgumentError, match="delivered more rows"):
        for _ in ds:          # iterating the same dataset again would repeat rows
            pass


def test_a_dead_workers_rows_go_to_the_next_job_once(files, service):
    q = _queue(files, service)
    dead, live = iter(q.epoch_dataset(0)), iter(q.epoch_dataset(0))
    got = row_ids(next(dead)).tolist() + row_ids(next(live)).tolist()
    del dead                               # died mid-item, with items queued
    gc.collect()
    late = q.epoch_dataset(0)              # joins the job `live` still reads
    got += [i for ds in (live, late) for b in ds for i in row_ids(b).tolist()]
    assert len(got) < TOTAL and q.epoch == 0
    for _ in range(3):                     # as `while q.epoch < n: for b in ...` does
        if q.epoch == 1:
            break
        got += [i for b in q.epoch_dataset(0) for i in row_ids(b).tolist()]
    assert sorted(got) == list(range(TOTAL)) and q.epoch == 1
    assert [len(row_ids(b)) for b in q.epoch_dataset(0)] == []


def _run_until(datasets, seen, ckpt, prefix, stop_after_batches, save_after_batches):
    """Round-robin over worker datasets, as a training loop would; checkpoint once."""
    iterators = [iter(d) for d in datasets]
    batches, path = 0, None
    while iterators and batches < stop_after_batches:
        for it in list(iterators):
            try:
                ids = row_ids(next(it))
            except StopIteration:
                iterators.remove(it)
                continue
            seen.scatter_nd_add(ids[:, None], np.ones(len(ids), np.int64))
            batches += 1
            if batches == save_after_batches:
                path = ckpt.save(prefix)
    return path


def _finish_epoch(queue, seen, num_workers=3):
    for got in _consume_in_threads([queue.epoch_dataset(0) for _ in range(num_workers)]):
        seen.scatter_nd_add(np.array(got, np.int64)[:, None], np.ones(len(got), np.int64))


def test_kill_and_restore_neither_repeats_nor_skips(files, tmp_path):
    # First job: 3 workers, checkpoint after 7 batches, 4 more batches, then the job dies.
    service = LocalDataService(num_workers=2)
    q = _queue(files, service, num_epochs=2, seed=5)
    seen = tf.Variable(tf.zeros([TOTAL], tf.int64))
    ckpt = tf.train.Checkpoint(queue=q, seen=seen)
    path = _run_until([q.epoch_dataset(0) for _ in range(3)], seen, ckpt,
                      str(tmp_path / "ckpt"), 11, 7)
    assert path is not None and int(seen.numpy().sum()) > 7 * 20 - 1
    service.stop()                       # the dispatcher and workers die with the job
    # Restarted job: a new service, new queue object, state restored from the checkpoint.
    with LocalDataService(num_workers=1) as service2:
        q2 = _queue(files, service2, num_epochs=2, seed=5)
        seen2 = tf.Variable(tf.zeros([TOTAL], tf.int64))
        tf.train.Checkpoint(queue=q2, seen=seen2).restore(path).assert_consumed()
        assert q2.state.last_restore.startswith("restored")
        assert 0 < int(seen2.numpy().sum()) == int(q2.consumed_rows().sum()) < TOTAL
        assert q2.epoch == 0
        _finish_epoch(q2, seen2)
        np.testing.assert_array_equal(seen2.numpy(), np.ones(TOTAL, np.int64))
        assert q2.epoch == 1


def test_changed_work_list_starts_fresh(files, service, tmp_path):
    q = _queue(files, service)
    next(iter(q.epoch_dataset(0)))
    path = tf.train.Checkpoint(queue=q).save(str(tmp_path / "c"))
    changed = _queue(files[:2], service)       # a file left out: another work list
    tf.train.Checkpoint(queue=changed).restore(path)
    assert changed.state.last_restore.startswith("fresh")
    assert changed.consumed_rows().sum() == 0
    got = _consume_in_threads([changed.epoch_dataset(0) for _ in range(2)])
    assert sorted(sum(got, [])) == list(range(SIZES[0] + SIZES[1]))
    recut = _queue(files, service, rows_per_item=80)   # same files, cut differently
    tf.train.Checkpoint(queue=recut).restore(path)
    assert recut.state.last_restore.startswith("fresh") and recut.digest != q.digest


def test_static_shards_cover_the_epoch(files, service):
    q = _queue(files, service)
    got = _consume_in_threads([q.static_dataset(i, 3) for i in range(3)])
    assert sorted(sum(got, [])) == list(range(TOTAL))


def test_csv_source(tmp_path, service):
    path = tmp_path / "rows.csv"
    lines = ["y,row_id,tags,x"] + [f"{i % 2},{i},{i}|{i + 1},{i / 7}" for i in range(333)]
    path.write_text("\n".join(lines) + "\n")
    q = WorkQueue(str(path), CsvSource(SCHEMA), batch_size=16, rows_per_item=50, service=service)
    got = _consume_in_threads([q.epoch_dataset(0) for _ in range(3)])
    assert sorted(sum(got, [])) == list(range(333))


def test_libsvm_source(tmp_path, service):
    path = tmp_path / "rows.libfm"
    lines = [f"{(-1) ** i} {i}:1 {1000 + i % 7}:1\n" for i in range(211)]
    for at, blank in ((150, "   \n"), (40, " \r\n"), (5, "\t\n")):   # blank, not rows
        lines.insert(at, blank)
    path.write_bytes("".join(lines).encode())
    layout = LibsvmLayout(SCHEMA_LIBSVM, {"row_id": (0, 999), "ctx": (1000, 1999)})
    q = WorkQueue(str(path), LibsvmSource(layout), batch_size=16, rows_per_item=32,
                  service=service)
    assert q.total_rows == 211
    got = _consume_in_threads([q.epoch_dataset(0) for _ in range(2)])
    assert sorted(sum(got, [])) == list(range(211)) and q.epoch == 1


def test_bad_files(files, service, tmp_path):
    bad = tmp_path / "truncated.parquet"
    bad.write_bytes(open(files[0], "rb").read()[:-30])
    with pytest.raises(BadFileError, match=r"truncated\.parquet"):
        _queue([files[1], str(bad)], service)
    q = _queue([files[1], str(bad)], service, skip_bad_files=True)
    assert q.bad_files.count == 1 and q.total_rows == SIZES[1]
    with pytest.raises(ValueError, match="rows_per_item"):
        _queue(files, service, rows_per_item=0)
    with pytest.raises(ValueError, match=r"epoch must be.*\[0, 1\).*3"):
        _queue(files, service).epoch_dataset(3)
    with pytest.raises(ValueError, match="service must be None.*got int 123"):
        WorkQueue(files, ParquetSource(SCHEMA), batch_size=20, service=123)
    q = _queue(files, service)
    for args, message in (((0, 2.5), "num_shards must be a positive integer, got 2.5"),
                          ((0, 0), "num_shards must be a positive integer, got 0"),
                          ((True, 2), r"shard_index must be an integer in \[0, 2\), got True"),
                          ((2, 2), r"shard_index must be an integer in \[0, 2\), got 2")):
        with pytest.raises(ValueError, match=message):
            q.static_dataset(*args)


CHILD = """
import sys, time
import numpy as np
from deeprec_lite.compat import tf
from deeprec_lite.data.workqueue.local_data_service import LocalDataService
from deeprec_lite.data.formats.row_sources import ParquetSource
from deeprec_lite.data.workqueue.queue import WorkQueue
from tests.data.workqueue_fixtures import SCHEMA, row_ids
files, ckpt_dir, total = sys.argv[1].split(","), sys.argv[2], int(sys.argv[3])
service = LocalDataService(num_workers=2)
q = WorkQueue(files, ParquetSource(SCHEMA), batch_size=20, rows_per_item=60, service=service)
seen = tf.Variable(tf.zeros([total], tf.int64))
manager = tf.train.CheckpointManager(tf.train.Checkpoint(queue=q, seen=seen), ckpt_dir, 3)
iterators = [iter(q.epoch_dataset(0)) for _ in range(3)]
batches = 0
while iterators:
    for it in list(iterators):
        try:
            ids = row_ids(next(it))
        except StopIteration:
            iterators.remove(it)
            continue
        seen.scatter_nd_add(ids[:, None], np.ones(len(ids), np.int64))
        batches += 1
        time.sleep(0.03)
        if batches % 4 == 0:
            manager.save()
            print("saved", batches, flush=True)
print("finished", flush=True)
"""


def test_sigkill_mid_epoch_then_restore(files, tmp_path):
    ckpt_dir = str(tmp_path / "ckpts")
    root = os.path.dirname(os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__)))))
    env = dict(os.environ, PYTHONPATH=root, TF_CPP_MIN_LOG_LEVEL="3")
    child = subprocess.Popen([sys.executable, "-c", CHILD, ",".join(files), ckpt_dir, str(TOTAL)],
                             stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, env=env, text=True)
    saves = 0
    for line in child.stdout:
        saves += line.startswith("saved")
        if saves == 2:
            time.sleep(0.05)
            child.send_signal(signal.SIGKILL)      # killed at an arbitrary point
            break
    child.wait(timeout=60)
    assert child.returncode == -signal.SIGKILL, "the child finished before it was killed"
    latest = tf.train.latest_checkpoint(ckpt_dir)
    with LocalDataService(num_workers=1) as service:
        q = _queue(files, service)
        seen = tf.Variable(tf.zeros([TOTAL], tf.int64))
        tf.train.Checkpoint(queue=q, seen=seen).restore(latest).assert_consumed()
        assert 0 < int(q.consumed_rows().sum()) == int(seen.numpy().sum()) < TOTAL
        _finish_epoch(q, seen)
        np.testing.assert_array_equal(seen.numpy(), np.ones(TOTAL, np.int64))
