"""Delta exports (export_embeddings(since=), read_chain, apply_delta): a full export and
the deltas after it give, record for record, the full export of the last step with the
same filters; a delta holds the touched records and the keys that left, and nothing
else the base already has; broken chains are refused with the link named."""
import json
import os
import re

import numpy as np
import pyarrow as pa
import pytest

import deeprec_lite as drl
from deeprec_lite.export import apply_delta, export_embeddings, read_chain, read_embeddings
from deeprec_lite.export import parquet_export

FILTERS = dict(min_freq=3, max_staleness=6)


class Stream:
    """A table trained step by step: Zipf-like lookups with counts (counter admission 2),
    updates, a few removals and staleness eviction; step clock kept by hand."""

    def __init__(self, key_dtype="int64", partitions=1, seed=0):
        kwargs = dict(key_dtype=key_dtype, admission=drl.CounterFilter(2), name="ids", seed=3)
        self.kv = (drl.PartitionedKVVariable(3, partitions, **kwargs) if partitions > 1
                   else drl.KVVariable(3, **kwargs))
        self.key_dtype = key_dtype
        self.rng = np.random.default_rng(seed)
        self.step = 0

    def keys(self, ids):
        return ids if self.key_dtype == "int64" else np.array([b"k%d" % i for i in ids], object)

    def train(self, steps):
        for _ in range(steps):
            self.step += 1
            ids, counts = np.unique(self.rng.zipf(1.3, 250) % 2000, return_counts=True)
            keys = self.keys(ids)
            self.kv.lookup_or_insert(keys, counts=counts, global_step=self.step)
            self.kv.update(keys, self.rng.normal(size=(len(keys), 3)), global_step=self.step)
            self.last_keys = {k.decode() if isinstance(k, bytes) else k for k in keys.tolist()}
            if self.step % 4 == 0:
                self.kv.remove(keys[-5:])
            if self.step % 5 == 0:
                self.kv.evict(self.step, max_staleness=10)
        self.kv.step.assign(self.step)


def sorted_table(export, name="ids"):
    table = export.tables[name]
    return table.take(pa.compute.sort_indices(table, sort_keys=[("key", "ascending")]))


@pytest.mark.parametrize("key_dtype, partitions", [("int64", 1), ("string", 1), ("int64", 3)])
def test_a_chain_of_deltas_is_the_full_export_of_its_last_step(tmp_path, key_dtype, partitions):
    stream = Stream(key_dtype, partitions)
    stream.train(8)
    chain = [str(tmp_path / "e0")]
    export_embeddings(stream.kv, chain[0], **FILTERS)
    for i in range(1, 5):
        before = sorted_table(read_chain(chain))
        at_base_step = stream.last_keys
        stream.train(3)
        chain.append(str(tmp_path / f"d{i}"))
        export_embeddings(stream.kv, chain[-1], since=chain[-2], **FILTERS)
        export_embeddings(stream.kv, tmp_path / f"full{i}", **FILTERS)
        full = sorted_table(read_embeddings(tmp_path / f"full{i}"))
        assert sorted_table(read_chain(chain)).equals(full)
        # The delta holds what differs from its base, the keys that left, nothing more.
        delta = read_embeddings(chain[-1])
        old = dict(zip(before.column("key").to_pylist(), before.to_pylist()))
        new = dict(zip(full.column("key").to_pylist(), full.to_pylist()))
        upserts = set(delta.tables["ids"].column("key").to_pylist())
        tombstones = set(delta.tombstones["ids"].to_pylist())
        changed = {k for k, row in new.items() if old.get(k) != row}
        assert changed <= upserts <= set(new)
        # beyond the changed records, only those touched at the base's own step (an
        # export may overlap the updates of its step)
        assert upserts - changed <= at_base_step
        assert set(old) - set(new) <= tombstones and not tombstones & set(new)
        assert delta.manifest["delta"]["base_step"] == read_embeddings(chain[-2]).manifest[
            "global_step"]


@pytest.mark.parametrize("key_dtype", ["int64", "string"])
@pytest.mark.parametrize("admission", [None, drl.CounterFilter(2)])
def test_a_key_removed_and_seen_again_leaves_the_chain(tmp_path, key_dtype, admission):
    """Removed (or evicted) and looked up again, a key counts anew: not admitted, or
    below min_freq, it is no longer exported, and the chain must delete its old record
    (the delta held neither its record nor a tombstone)."""
    keys = (np.arange(1, 6) if key_dtype == "int64"
            else np.array([b"\xff", b"a", b"b", b"c", b"d"], object))  # one not UTF-8
    kv = drl.KVVariable(2, key_dtype=key_dtype, admission=admission, name="ids")
    for _ in range(3):
        kv.lookup_or_insert(keys, global_step=1)
    kv.update(keys, np.ones((5, 2), np.float32), global_step=1)
    kv.step.assign(1)
    export_embeddings(kv, tmp_path / "e0", min_freq=2)
    kv.remove(keys[:2])
    kv.lookup_or_insert(keys[:1], global_step=2)  # freq 1: pending, or below min_freq
    kv.update(keys[2:3], np.full((1, 2), 2.0, np.float32), global_step=2)
    kv.step.assign(2)
    export_embeddings(kv, tmp_path / "d1", since=tmp_path / "e0", min_freq=2)
    export_embeddings(kv, tmp_path / "f1", min_freq=2)
    full = sorted_table(read_embeddings(tmp_path / "f1"))
    chain = sorted_table(read_chain([tmp_path / "e0", tmp_path / "d1"]))
    assert full.num_rows == 3
    assert chain.cast(full.schema).equals(full)  # string keys: the base's binary ones


def test_staleness_alone_turns_untouched_keys_into_tombstones(tmp_path):
    stream = Stream()
    stream.train(6)
    export_embeddings(stream.kv, tmp_path / "e0", min_freq=0, max_staleness=3)
    keys_before = set(read_embeddings(tmp_path / "e0").tables["ids"].column("key").to_pylist())
    # Time goes on without any lookup: only the staleness window moves.
    export_embeddings(stream.kv, tmp_path / "d1", since=tmp_path / "e0", min_freq=0,
                      max_staleness=3, global_step=stream.step + 2)
    delta = read_embeddings(tmp_path / "d1")
    # records: only those touched at the base's own step (see above)
    assert set(delta.tables["ids"].column("key").to_pylist()) <= stream.last_keys
    export_embeddings(stream.kv, tmp_path / "f1", min_freq=0, max_staleness=3,
                      global_step=stream.step + 2)
    keys_after = set(read_embeddings(tmp_path / "f1").tables["ids"].column("key").to_pylist())
    tombstones = set(delta.tombstones["ids"].to_pylist())
    assert keys_before - keys_after <= tombstones and keys_before != keys_after
    # beyond those, only keys touched at the base's own step that are not kept (a
    # deletion of a key the base never held is a no-op)
    assert not tombstones & keys_after and tombstones - keys_before <= stream.last_keys
    assert sorted_table(read_chain([tmp_path / "e0", tmp_path / "d1"])).equals(
        sorted_table(read_embeddings(tmp_path / "f1")))


def test_a_broken_chain_is_refused_with_its_link_named(tmp_path):
    stream = Stream()
    stream.train(4)
    export_embeddings(stream.kv, tmp_path / "e0", **FILTERS)
    paths = [tmp_path / "e0"]
    for i in (1, 2):
        stream.train(2)
        paths.append(tmp_path / f"d{i}")
        export_embeddings(stream.kv, paths[-1], since=paths[-2], **FILTERS)
    with pytest.raises(ValueError, match=r"d2'.*applies to export .* not to export .*missing or "
                                         "out of order"):
        read_chain([paths[0], paths[2]])
    with pytest.raises(ValueError, match="out of order"):
        read_chain([paths[0], paths[2], paths[1]])
    with pytest.raises(ValueError, match="is a delta; a chain starts with a full export"):
        read_chain(paths[1:])
    with pytest.raises(ValueError, match="the second export is a full export"):
        apply_delta(read_embeddings(paths[0]), read_embeddings(paths[0]))
    # A delta of another stream's export: another export id
    other = Stream(seed=1)
    other.train(4)
    export_embeddings(other.kv, tmp_path / "other", **FILTERS)
    with pytest.raises(ValueError, match="missing or out of order"):
        read_chain([tmp_path / "other", paths[1]])


@pytest.mark.parametrize("since", [[], 5, [5], (), {"e0": 1}])
def test_since_and_read_chain_take_a_path_or_a_list_of_paths(tmp_path, since):
    stream = Stream()
    stream.train(3)
    export_embeddings(stream.kv, tmp_path / "e0", **FILTERS)
    message = (r"since must be an export directory or a non-empty list of them \(the full "
               rf"export first, then its deltas\), got {re.escape(repr(since))}$")
    with pytest.raises(ValueError, match=message):
        export_embeddings(stream.kv, tmp_path / "d", since=since, **FILTERS)
    assert not os.path.exists(tmp_path / "d")
    with pytest.raises(ValueError, match=rf"read_chain: directories must be .*got "
                                         rf"{re.escape(repr(since))}$"):
        read_chain(since)
    # One path: a chain of that export alone (a str is not a list of one-letter paths)
    for one in (str(tmp_path / "e0"), tmp_path / "e0"):
        assert sorted_table(read_chain(one)).equals(sorted_table(read_embeddings(one)))


def test_a_delta_needs_a_base_of_the_same_tables_and_filters(tmp_path):
    stream = Stream()
    stream.train(4)
    export_embeddings(stream.kv, tmp_path / "e0", **FILTERS)
    with pytest.raises(ValueError, match=r"was filtered with .*'min_freq': 3.* this export with "
                                         r".*'min_freq': 2"):
        export_embeddings(stream.kv, tmp_path / "d", since=tmp_path / "e0", min_freq=2,
                          max_staleness=6)
    with pytest.raises(ValueError, match="later than this export's step"):
        export_embeddings(stream.kv, tmp_path / "d", since=tmp_path / "e0", global_step=1,
                          **FILTERS)
    with pytest.raises(ValueError, match="holds tables"):
        export_embeddings({"other": stream.kv}, tmp_path / "d", since=tmp_path / "e0", **FILTERS)
    with pytest.raises(ValueError, match="does not exist"):
        export_embeddings(stream.kv, tmp_path / "d", since=tmp_path / "nowhere", **FILTERS)
    export_embeddings(stream.kv, tmp_path / "d1", since=tmp_path / "e0", **FILTERS)
    # A table restored since the delta d1: comparing with d1's records needs e0 too.
    stream.kv.import_records(stream.kv.export())
    with pytest.raises(ValueError, match=r"table 'ids' has no change stamps since the "
                                         "base .* which since must give: the base's full "
                                         "export.*d1' is a delta"):
        export_embeddings(stream.kv, tmp_path / "d", since=tmp_path / "d1", **FILTERS)
    export_embeddings(stream.kv, tmp_path / "old_release", **FILTERS)
    # A manifest of an earlier release (no export id)
    meta = json.load(open(tmp_path / "old_release" / "manifest.json"))
    del meta["export_id"]
    json.dump(meta, open(tmp_path / "old_release" / "manifest.json", "w"))
    with pytest.raises(ValueError, match="has no export_id"):
        export_embeddings(stream.kv, tmp_path / "d", since=tmp_path / "old_release", **FILTERS)
    assert not os.path.exists(tmp_path / "d")


@pytest.mark.parametrize("key_dtype", ["int64", "string"])
def test_tables_without_change_stamps_are_compared_with_the_base(tmp_path, key_dtype):
    """From a checkpoint, or after a restore, a delta holds exactly the kept records that
    differ from the base's chain and the keys that left it, and the chain stays exact."""
    stream = Stream(key_dtype)
    stream.train(6)
    chain = [str(tmp_path / "e0")]
    export_embeddings(stream.kv, chain[0], **FILTERS)
    stream.train(3)
    chain.append(str(tmp_path / "d1"))
    export_embeddings(stream.kv, chain[-1], since=chain[-2], **FILTERS)  # change stamps
    checkpoint = drl.compat.tf.train.Checkpoint(t=stream.kv)
    for i, source in enumerate(["checkpoint", "restored"], start=2):
        before = sorted_table(read_chain(chain))
        stream.train(3)
        if source == "checkpoint":
            model_or_checkpoint = checkpoint.write(str(tmp_path / "ckpt" / "c"))
        else:
            stream.kv.import_records(stream.kv.export())  # a new timeline
            model_or_checkpoint = stream.kv
        chain.append(str(tmp_path / f"d{i}"))
        export_embeddings(model_or_checkpoint, chain[-1], since=chain[:-1], **FILTERS)
        export_embeddings(model_or_checkpoint, tmp_path / f"full{i}", **FILTERS)
        full = sorted_table(read_embeddings(tmp_path / f"full{i}"))
        assert sorted_table(read_chain(chain)).equals(full)
        delta = read_embeddings(chain[-1])
        old = dict(zip(before.column("key").to_pylist(), before.to_pylist()))
        new = dict(zip(full.column("key").to_pylist(), full.to_pylist()))
        assert set(delta.tables["ids"].column("key").to_pylist()) == {
            k for k, row in new.items() if old.get(k) != row} != set()
        assert set(delta.tombstones["ids"].to_pylist()) == set(old) - set(new) != set()


def test_a_failed_delta_export_leaves_nothing_and_the_chain_intact(tmp_path, monkeypatch):
    stream = Stream()
    stream.train(4)
    export_embeddings(stream.kv, tmp_path / "e0", **FILTERS)
    stream.train(2)

    def failing(*args, **kwargs):
        raise OSError("disk full")

    monkeypatch.setattr(parquet_export.deltas.pq, "write_table", failing)
    with pytest.raises(OSError, match="disk full"):
        export_embeddings(stream.kv, tmp_path / "d1", since=tmp_path / "e0", **FILTERS)
    monkeypatch.undo()
    assert sorted(os.listdir(tmp_path)) == ["e0"]
    export_embeddings(stream.kv, tmp_path / "d1", since=tmp_path / "e0", **FILTERS)
    export_embeddings(stream.kv, tmp_path / "f1", **FILTERS)
    assert sorted_table(read_chain([tmp_path / "e0", tmp_path / "d1"])).equals(
        sorted_table(read_embeddings(tmp_path / "f1")))


def test_a_damaged_tombstone_file_is_named(tmp_path):
    stream = Stream()
    stream.train(5)
    export_embeddings(stream.kv, tmp_path / "e0", **FILTERS)
    stream.train(5)
    manifest = export_embeddings(stream.kv, tmp_path / "d1", since=tmp_path / "e0", **FILTERS)
    path = tmp_path / "d1" / manifest["tables"]["ids"]["tombstones"]["path"]
    with open(path, "r+b") as f:
        f.seek(8)
        f.write(b"\0\0\0\0")
    with pytest.raises(ValueError, match="checksum mismatch for 'tables/ids/tombstones.parquet'"):
        read_chain([tmp_path / "e0", tmp_path / "d1"])
