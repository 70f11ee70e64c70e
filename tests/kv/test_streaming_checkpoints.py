"""Streaming checkpoints (deeprec_lite.kv.checkpointing, ops/kv_checkpoint.cc): a save
that runs while other threads update the table records every key from one update,
damaged files are named and leave no partly restored table, checkpoints of earlier
releases still restore, and SavedModels store each table once."""
import os
import threading

import numpy as np
import pytest

from deeprec_lite.compat import tf
from deeprec_lite.kv import CounterFilter, KVVariable, PartitionedKVVariable, checkpointing
from kv_reference import assert_records_equal, records_by_key
from optimizer_reference import SCENARIOS, f32
from saved_lookup import save_and_load_lookup

LEGACY = os.path.join(os.path.dirname(__file__), "data", "legacy_checkpoint")


def saves_while(work, save, max_saves=40):
    """Runs work() on a thread and save(i) on this one until work is done (at least
    two saves); returns the number of saves."""
    thread = threading.Thread(target=work)
    thread.start()
    n = 0
    while (thread.is_alive() and n < max_saves) or n < 2:
        save(n)
        n += 1
    thread.join()
    return n


def restored(path, **kwargs):
    kv = KVVariable(**kwargs)
    tf.train.Checkpoint(t=kv).read(path).assert_consumed()
    return records_by_key(kv.export())


def test_a_save_during_updates_records_value_and_every_slot_of_one_update(tmp_path):
    """A writer stores step k in the value and both slots of every key at once; every
    restored key must hold one k in all three (a value and slots from different
    updates would not)."""
    dim, keys = 8, np.arange(30_000, dtype=np.int64) * 7919
    kv = KVVariable(dim, initializer="zeros", slots={"a": 0.0, "b": 0.0})
    kv.lookup_or_insert(keys, global_step=0)  # step 0: zeros everywhere

    done = threading.Event()

    def writer():  # updates until the saves are done, so the saves overlap updates
        k = 0
        while not done.is_set():
            k += 1
            kv.update(keys, np.full((len(keys), dim), k, np.float32),
                      slots=np.full((len(keys), 2, dim), k, np.float32), global_step=k)

    thread = threading.Thread(target=writer)
    thread.start()
    saves = mixed_snapshots = 0
    try:
        # Saves until one snapshot holds keys of different steps (the save overlapped an
        # update), at least 4 and at most 300: how often that happens depends on timing.
        while saves < 4 or (mixed_snapshots == 0 and saves < 300):
            path = tf.train.Checkpoint(t=kv).write(str(tmp_path / f"c{saves}"))
            saves += 1
            back = KVVariable(dim)
            tf.train.Checkpoint(t=back).read(path).assert_consumed()
            got_keys, values, _, versions, slots = (x.numpy() for x in back.export()[:5])
            assert np.array_equal(np.sort(got_keys), keys)
            assert np.all(values == versions[:, None]), path
            assert np.all(slots == versions[:, None, None]), path
            mixed_snapshots += len(np.unique(versions)) > 1
    finally:
        done.set()
        thread.join()
    assert mixed_snapshots > 0, f"no save of {saves} overlapped an update"


@pytest.mark.parametrize("name", ["sgd", "adagrad", "adam", "ftrl"])
def test_a_save_during_training_holds_each_key_as_the_reference_after_its_version(
        name, tmp_path):
    """An optimizer updates every key each step while checkpoints are written; each
    restored key's value and slots equal the numpy reference after as many steps as its
    version says."""
    make, update, hp = SCENARIOS[name]
    lr, dim, steps = 0.05, 4, 60
    opt = make(lr)
    keys = np.arange(20_000, dtype=np.int64) * 31
    kv = KVVariable(dim, slots=opt.slots, seed=3)
    kv.lookup_or_insert(keys, global_step=0)
    start = records_by_key(kv.export())
    rng = np.random.default_rng(0)
    grads = rng.normal(0, 0.5, (steps + 1, len(keys), dim)).astype(np.float32)

    # The reference state of every key after each number of steps (vectorized over keys).
    w = np.stack([start[k][0] for k in keys.tolist()]).astype(np.float64)
    s = np.stack([start[k][3] for k in keys.tolist()], axis=1).astype(np.float64)
    want = {0: (np.float32(w), np.float32(s))}
    hp32 = {k: f32(v) for k, v in hp.items()}
    for t in range(1, steps + 1):
        w, s = update(w, s, grads[t].astype(np.float64), f32(lr), t, hp32)
        w, s = np.float32(w).astype(np.float64), np.float32(s).astype(np.float64)
        want[t] = (np.float32(w), np.float32(s))

    def train():
        for t in range(1, steps + 1):
            opt.apply(kv, keys, grads[t], global_step=t, unique_keys=True)

    paths = []
    saves_while(train, lambda i: paths.append(
        tf.train.Checkpoint(t=kv).write(str(tmp_path / f"c{i}"))))
    position = {k: i for i, k in enumerate(keys.tolist())}
    for path in paths:
        for key, (value, _, version, slots, _) in restored(path, dim=dim).items():
            w_t, s_t = want[version]
            i = position[key]
            np.testing.assert_allclose(value, w_t[i], rtol=2e-5, atol=1e-6,
                                       err_msg=f"{path}: value of {key} at version {version}")
            np.testing.assert_allclose(slots, s_t[:, i], rtol=2e-5, atol=1e-6,
                                       err_msg=f"{path}: slots of {key} at version {version}")


def big_table(num_keys=50_000):
    kv = KVVariable(4, slots={"acc": 0.1}, admission=CounterFilter(2), seed=2)
    keys = np.arange(num_keys, dtype=np.int64)
    kv.lookup_or_insert(keys, global_step=1)
    kv.lookup_or_insert(keys[: num_keys // 2], global_step=2)
    return kv


def kv_data_file(prefix):
    """The largest data file of a checkpoint: the table's."""
    directory, base = os.path.split(prefix)
    files = [os.path.join(directory, f) for f in os.listdir(directory)
             if f.startswith(base + ".data-")]
    return max(files, key=os.path.getsize)


@pytest.mark.parametrize("damage", ["flip", "truncate", "remove"])
def test_a_damaged_table_file_is_named_and_leaves_the_table_empty(damage, tmp_path):
    kv = big_table()
    prefix = tf.train.Checkpoint(t=kv).write(str(tmp_path / "c"))
    path = kv_data_file(prefix)
    size = os.path.getsize(path)
    if damage == "flip":
        with open(path, "r+b") as f:
            f.seek(size // 2)
            byte = f.read(1)
            f.seek(size // 2)
            f.write(bytes([byte[0] ^ 0x40]))
    elif damage == "truncate":
        with open(path, "r+b") as f:
            f.truncate(size * 2 // 3)
    else:
        os.remove(path)
    target = KVVariable(4, slots={"acc": 0.1}, admission=CounterFilter(2))
    target.lookup_or_insert([1, 2, 3])  # a restore replaces what a table holds
    with pytest.raises(tf.errors.OpError) as error:
        tf.train.Checkpoint(t=target).read(prefix)
    message = str(error.value)
    assert os.path.basename(path) in message and "table 'kv_variable'" in message
    assert "left empty" in message
    assert int(target.stats()["admitted"]) == 0 and int(target.stats()["pending"]) == 0


def test_a_missing_part_of_a_partitioned_table_is_an_error(tmp_path):
    """Each part's bloom_counts entry is written after its records; a checkpoint whose
    index lacks one of the parts is refused, never restored with keys missing."""
    kv = PartitionedKVVariable(4, 3)
    kv.lookup_or_insert(np.arange(1000, dtype=np.int64))
    prefix = tf.train.Checkpoint(t=kv).write(str(tmp_path / "c"))
    reader = tf.train.load_checkpoint(prefix)
    names = [n for n in reader.get_variable_to_shape_map() if "part-00001-of-00003" not in n]
    # The same checkpoint without part 1, written with the stock op.
    tf.raw_ops.SaveV2(prefix=str(tmp_path / "cut"), tensor_names=names,
                      shape_and_slices=[""] * len(names),
                      tensors=[reader.get_tensor(n) for n in names])
    target = PartitionedKVVariable(4, 2)
    with pytest.raises(tf.errors.DataLossError, match="part 1 of the 3 parts"):
        tf.train.Checkpoint(t=target).read(str(tmp_path / "cut"))
    assert int(target.size()) == 0


def legacy_records(name):
    data = np.load(os.path.join(LEGACY, "records.npz"))
    fields = ("keys", "values", "freqs", "versions", "slots", "admitted")
    arrays = [data[f"{name}.{f}"] for f in fields]
    return {k: (arrays[1][i], int(arrays[2][i]), int(arrays[3][i]), arrays[4][i],
                bool(arrays[5][i])) for i, k in enumerate(arrays[0])}


@pytest.mark.parametrize("num_shards", [None, 3])
def test_checkpoints_of_the_earlier_one_tensor_per_field_format_still_restore(num_shards):
    """tests/kv/data/legacy_checkpoint was written by the release before streaming
    checkpoints: a string-key table with counter admission ('plain') and a 2-shard
    partitioned one ('part')."""
    plain = KVVariable(3, key_dtype="string", admission=CounterFilter(2), name="plain")
    if num_shards is None:
        part = KVVariable(2, name="part")
    else:
        part = PartitionedKVVariable(2, num_shards, name="part")
    tf.train.Checkpoint(plain=plain, part=part).read(
        os.path.join(LEGACY, "ckpt")).assert_consumed()
    assert plain.slot_names == ("acc",) and part.slot_names == ("m", "v")
    assert int(plain.step) == 5 and int(part.step) == 7
    assert_records_equal(records_by_key(plain.export()), legacy_records("plain"))
    assert_records_equal(records_by_key(part.export()), legacy_records("part"))


def test_a_saved_model_stores_each_table_once_and_serves_what_it_restored(tmp_path):
    kv = PartitionedKVVariable(4, 3, slots={"acc": 0.1}, admission=CounterFilter(2))
    keys = np.arange(2000, dtype=np.int64)
    kv.lookup_or_insert(keys)
    kv.lookup_or_insert(keys[:1500])
    loaded = save_and_load_lookup(kv, tmp_path / "sm")
    np.testing.assert_array_equal(loaded.serve(tf.constant(keys)), kv.lookup(keys))
    variables = tf.train.list_variables(str(tmp_path / "sm" / "variables" / "variables"))
    stored = [shape[0] for name, shape in variables if name.endswith("/keys")]
    assert sum(stored) == 1500  # the admitted keys, once
    assert not [name for name, _ in variables if "_shards" in name and "KV_TABLE" in name]


@pytest.mark.parametrize("num_shards", [None, 2])
def test_big_shards_are_stored_in_chunks_of_bounded_size(num_shards, tmp_path, monkeypatch):
    """With chunks of at most 50 records, every stored chunk holds at most 50 admitted and
    50 pending keys, each shard splits into several, and the table comes back whole (also
    into another number of partitions)."""
    monkeypatch.setattr(checkpointing, "CHUNK_RECORDS", 50)
    kv = big_table(20_000) if num_shards is None else PartitionedKVVariable(
        4, num_shards, slots={"acc": 0.1}, admission=CounterFilter(2), seed=2)
    if num_shards is not None:
        keys = np.arange(20_000, dtype=np.int64)
        kv.lookup_or_insert(keys, global_step=1)
        kv.lookup_or_insert(keys[:10_000], global_step=2)
    prefix = tf.train.Checkpoint(t=kv).write(str(tmp_path / "c"))
    shapes = dict(tf.train.list_variables(prefix))
    chunks = checkpointing.stored_chunk_dirs(shapes, "t")
    assert len(chunks) >= 32 * (num_shards or 1) * 3
    for c in chunks:
        assert shapes[c + "keys"][0] <= 50 and shapes[c + "pending_keys"][0] <= 50
    assert sum(shapes[c + "keys"][0] for c in chunks) == 10_000
    for target in (KVVariable(4, admission=CounterFilter(2)),
                   PartitionedKVVariable(4, 3, admission=CounterFilter(2))):
        tf.train.Checkpoint(t=target).read(prefix).assert_consumed()
        assert_records_equal(records_by_key(target.export()), records_by_key(kv.export()))
