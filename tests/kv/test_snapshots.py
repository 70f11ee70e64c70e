"""deeprec_lite.kv.snapshots: a table's records chunk by chunk, from a live table or a
checkpoint, against the table's own full export; the one filter rule against Python ints."""
import numpy as np
import pytest

from deeprec_lite.compat import tf
from deeprec_lite.export import export_embeddings, read_embeddings
from deeprec_lite.kv import (BloomFilter, CounterFilter, KVVariable, PartitionedKVVariable,
                             snapshots)
from deeprec_lite.training import checkpoints
from kv_reference import assert_records_equal, records_by_key


def filled(num_shards, key_dtype="int64", admission=CounterFilter(2)):
    kwargs = dict(key_dtype=key_dtype, slots={"m": 0.1, "v": 0.2}, admission=admission, seed=4)
    kv = (KVVariable(3, **kwargs) if num_shards is None
          else PartitionedKVVariable(3, num_shards, **kwargs))
    keys = np.arange(5000, dtype=np.int64) * 13
    if key_dtype == "string":
        keys = np.array([str(k).encode() for k in keys], object)
    kv.lookup_or_insert(keys, global_step=2)
    kv.lookup_or_insert(keys[:3000], global_step=5)  # admitted; the others pending
    kv.update(keys[:100], np.ones((100, 3)), slots=np.full((100, 2, 3), 7.0), global_step=9)
    return kv


def chunk_records(chunk):
    """records_by_key's form of a RecordChunk (pending keys with admitted False)."""
    out = {k: (chunk.values[i], int(chunk.freqs[i]), int(chunk.versions[i]), chunk.slots[i], True)
           for i, k in enumerate(chunk.keys)}
    for i, k in enumerate(chunk.pending_keys):
        out[k] = (None, int(chunk.pending_freqs[i]), int(chunk.pending_versions[i]), None, False)
    return out


@pytest.mark.parametrize("num_shards, key_dtype", [(None, "int64"), (None, "string"),
                                                   (3, "int64")])
def test_a_live_snapshot_holds_every_record_once_in_its_shards(num_shards, key_dtype):
    kv = filled(num_shards, key_dtype)
    snap = snapshots.of_variable(kv, "t")
    chunks = list(snap.chunks())
    assert len(chunks) == snapshots.NUM_SHARDS * (num_shards or 1)
    assert max(len(c.keys) + len(c.pending_keys) for c in chunks) < 5000 / 16  # spread out
    all_records = {}
    for c in chunks:
        records = chunk_records(c)
        assert not set(records) & set(all_records)
        all_records.update(records)
    assert_records_equal(all_records, records_by_key(kv.export()))
    assert snap.num_records == 5000 and snap.slot_names == ("m", "v")
    assert snap.slot_inits == pytest.approx((0.1, 0.2)) and snap.step == 0
    assert snap.key_dtype == key_dtype and snap.dim == 3
    assert_records_equal(chunk_records(snapshots.collect(snap)), records_by_key(kv.export()))


@pytest.mark.parametrize("num_shards", [None, 2])
def test_a_checkpoint_snapshot_reads_back_what_the_live_one_holds(num_shards, tmp_path):
    kv = filled(num_shards, admission=BloomFilter(2, expected_keys=10_000))
    path = tf.train.Checkpoint(t=kv).write(str(tmp_path / "c"))
    snap = snapshots.of_checkpoint(tf.train.load_checkpoint(path), "t", "t", step=9)
    assert_records_equal(chunk_records(snapshots.collect(snap)), records_by_key(kv.export()))
    np.testing.assert_array_equal(snap.bloom_counts(), kv.bloom_counts().numpy())
    assert snap.bloom_counts().any() and snap.num_records == int(kv.size())
    assert snap.slot_names == ("m", "v") and snap.step == 9


I64_MIN, I64_MAX = -(2 ** 63), 2 ** 63 - 1


@pytest.mark.parametrize("step, min_freq, max_staleness", [
    (I64_MAX, None, 10), (0, 2, 0), (5, None, I64_MAX), (I64_MAX, 3, I64_MAX), (7, None, None)])
def test_keep_mask_is_the_rule_in_python_ints(step, min_freq, max_staleness):
    versions = np.array([I64_MIN, -1, 0, 2, 5, I64_MAX - 10, I64_MAX], np.int64)
    freqs = np.array([0, 1, 2, 3, 4, 5, 6], np.int64)
    want = [(min_freq is None or int(f) >= min_freq)
            and (max_staleness is None or step - int(v) <= max_staleness)
            for f, v in zip(freqs, versions)]
    np.testing.assert_array_equal(
        snapshots.keep_mask(freqs, versions, step, min_freq, max_staleness), want)


def test_a_checkpoint_loaded_without_its_tables_keeps_them_empty_with_their_clocks(tmp_path):
    import kill_trials

    model = kill_trials.build()
    x = kill_trials.inputs(256)
    model.fit(x, (x["a"] % 3 == 0).astype(np.float32), batch_size=64, verbose=0)
    checkpoints.save(model, str(tmp_path / "ckpt"))
    from deeprec_lite.training.model_tables import kv_tables

    full = kv_tables(checkpoints.load(str(tmp_path / "ckpt")))
    empty = kv_tables(checkpoints.load(str(tmp_path / "ckpt"), restore_tables=False))
    for name, kv in full.items():
        assert int(kv.size()) > 0 and int(empty[name].size()) == 0
        assert int(empty[name].step) == int(kv.step) > 0


def test_string_keys_that_are_not_utf8_in_some_chunk_export_as_binary(tmp_path):
    kv = KVVariable(2, key_dtype="string")
    keys = [f"id{i}".encode() for i in range(2000)] + [b"\xff\xfe", b"\xc3"]
    kv.lookup_or_insert(keys)
    out = export_embeddings(kv, tmp_path / "e")
    assert out["tables"]["kv_variable"]["key_arrow_type"] == "binary"
    assert len(out["tables"]["kv_variable"]["files"]) == 1  # the chunks' records gathered
    got, values, _, _ = read_embeddings(tmp_path / "e").numpy("kv_variable")
    assert sorted(got) == sorted(keys)
    want = dict(zip(keys, kv.lookup(keys).numpy()))
    for k, v in zip(got, values):
        np.testing.assert_array_equal(v, want[k])
