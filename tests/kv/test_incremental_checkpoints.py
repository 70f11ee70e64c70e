"""Incremental checkpoints (deeprec_lite.kv.incremental_checkpoints): full + increments
restore the same tables (values, slots, freq, version, admission counts) and dense
variables as a full checkpoint of that step; broken chains are named; garbage
collection never deletes a base that a kept increment needs; a failed save leaves the
previous state restorable."""
import json
import os
import re

import numpy as np
import pytest

from deeprec_lite.compat import tf
from deeprec_lite.kv import BloomFilter, CounterFilter, KVVariable, incremental_checkpoints
from deeprec_lite.kv.incremental_checkpoints import IncrementalCheckpointManager
from kv_reference import assert_records_equal, records_by_key


class Job:
    """Two tables (counter admission, Bloom admission) and a dense variable, trained by
    hand: lookups, Adagrad-like updates, removals and staleness eviction."""

    def __init__(self, seed=0):
        self.ids = KVVariable(3, slots={"acc": 0.1}, admission=CounterFilter(2), seed=1,
                              name="ids")
        self.tags = KVVariable(2, key_dtype="string", admission=BloomFilter(2, expected_keys=4000),
                               seed=2, name="tags")
        self.dense = tf.Variable(np.zeros(4, np.float32), name="dense")
        self.checkpoint = tf.train.Checkpoint(ids=self.ids, tags=self.tags, dense=self.dense)
        self.rng = np.random.default_rng(seed)
        self.step = 0

    def train(self, steps):
        """Returns the ids looked up."""
        drawn = set()
        for _ in range(steps):
            self.step += 1
            ids = np.unique(self.rng.integers(0, 4000, 300))
            drawn |= set(ids.tolist())
            self.last_ids = set(ids.tolist())
            self.ids.lookup_or_insert(ids, global_step=self.step)
            self.ids.update(ids, self.rng.normal(size=(len(ids), 3)).astype(np.float32),
                            slots=self.rng.random((len(ids), 1, 3)).astype(np.float32),
                            global_step=self.step)
            tags = np.array([b"t%d" % t for t in np.unique(self.rng.integers(0, 500, 50))], object)
            self.tags.lookup_or_insert(tags, global_step=self.step)
            self.dense.assign_add(self.rng.normal(size=4).astype(np.float32))
            if self.step % 3 == 0:
                self.ids.remove(ids[:10])
            if self.step % 5 == 0:
                self.ids.evict(self.step, max_staleness=12)
        return drawn

    def state(self):
        return {"ids": records_by_key(self.ids.export()), "tags": records_by_key(self.tags.export()),
                "bloom": self.tags.bloom_counts().numpy(), "dense": self.dense.numpy()}


def assert_same_state(got, want):
    assert_records_equal(got["ids"], want["ids"])
    assert_records_equal(got["tags"], want["tags"])
    np.testing.assert_array_equal(got["bloom"], want["bloom"])
    np.testing.assert_array_equal(got["dense"], want["dense"])


def test_full_and_increments_restore_the_state_of_every_save(tmp_path):
    job = Job()
    manager = IncrementalCheckpointManager(job.checkpoint, tmp_path / "ckpt", full_every=3,
                                           max_to_keep=None)
    states, paths = [], []
    for _ in range(7):
        saved_step_ids = getattr(job, "last_ids", set())
        drawn = job.train(4)
        paths.append(manager.save(job.step))
        if manager.saves[-1]["kind"] == "increment":
            # It holds the records of exactly the ids looked up since the previous save
            # and at its step (a save may overlap the updates of its step).
            drawn |= saved_step_ids
            stored = tf.train.load_checkpoint(os.path.join(paths[-1], "tables"))
            held = set(stored.get_tensor("ids/keys").tolist()) | set(
                stored.get_tensor("ids/pending_keys").tolist())
            assert held == drawn & set(records_by_key(job.ids.export()))
        states.append(job.state())
        # the same state as one full checkpoint, for comparison
        job.checkpoint.write(str(tmp_path / f"full-{len(paths)}" / "ckpt"))
    assert [s["kind"] for s in manager.saves] == ["full", "increment", "increment"] * 2 + ["full"]
    assert [s["base"] for s in manager.saves] == [None, 1, 2, None, 4, 5, None]
    for i, path in enumerate(paths):
        fresh = Job()
        restored = IncrementalCheckpointManager(fresh.checkpoint, tmp_path / "ckpt").restore(path)
        assert restored == path
        assert_same_state(fresh.state(), states[i])
        from_full = Job()
        from_full.checkpoint.read(str(tmp_path / f"full-{i + 1}" / "ckpt")).assert_consumed()
        assert_same_state(fresh.state(), from_full.state())


def test_after_a_restore_the_next_saves_are_increments_of_the_restored_save(tmp_path):
    job = Job()
    manager = IncrementalCheckpointManager(job.checkpoint, tmp_path, full_every=4)
    job.train(3)
    manager.save(job.step)
    job.train(3)
    second = manager.save(job.step)
    # A new process: a fresh job restores the latest save and goes on training.
    resumed = Job(seed=5)
    manager = IncrementalCheckpointManager(resumed.checkpoint, tmp_path, full_every=4)
    assert manager.restore() == second
    resumed.step = job.step
    resumed.train(3)
    third = manager.save(resumed.step)
    assert manager.saves[-1]["kind"] == "increment" and manager.saves[-1]["base"] == 2
    want = resumed.state()
    check = Job()
    IncrementalCheckpointManager(check.checkpoint, tmp_path).restore(third)
    assert_same_state(check.state(), want)


def test_a_table_restored_elsewhere_gets_a_full_save(tmp_path):
    job = Job()
    manager = IncrementalCheckpointManager(job.checkpoint, tmp_path, full_every=4)
    job.train(2)
    manager.save(job.step)
    job.ids.import_records(job.ids.export())  # a new timeline: its changes are unknown
    job.train(1)
    manager.save(job.step)
    assert [s["kind"] for s in manager.saves] == ["full", "full"]


def test_a_missing_or_damaged_increment_is_named_with_the_last_good_save(tmp_path):
    job = Job()
    manager = IncrementalCheckpointManager(job.checkpoint, tmp_path, full_every=5)
    paths = []
    for _ in range(4):
        job.train(2)
        paths.append(manager.save(job.step))
        if len(paths) == 2:
            second = job.state()
    data = [f for f in os.listdir(paths[2]) if f.startswith("tables.data")][0]
    with open(os.path.join(paths[2], data), "r+b") as f:  # flip bytes inside the records
        f.seek(os.path.getsize(f.name) // 2)
        f.write(b"\xff" * 64)
    fresh = Job()
    with pytest.raises(ValueError, match=rf"save '{paths[2]}' is missing or damaged .*the last "
                                         rf"save of its chain that restores is '{paths[1]}'"):
        IncrementalCheckpointManager(fresh.checkpoint, tmp_path).restore()
    fresh = Job()
    IncrementalCheckpointManager(fresh.checkpoint, tmp_path).restore(paths[1])
    assert_same_state(fresh.state(), second)
    os.rename(paths[1], paths[1] + "-moved")
    with pytest.raises(ValueError, match=rf"save '{paths[1]}' is missing or damaged .*the last "
                                         rf"save of its chain that restores is '{paths[0]}'"):
        IncrementalCheckpointManager(Job().checkpoint, tmp_path).restore(paths[3])


def test_garbage_collection_keeps_whole_chains(tmp_path):
    job = Job()
    manager = IncrementalCheckpointManager(job.checkpoint, tmp_path, full_every=3, max_to_keep=2)
    for _ in range(8):
        job.train(1)
        manager.save(job.step)
    # saves 1..8: chains [1 2 3] [4 5 6] [7 8]; the two newest chains stay, whole
    assert [s["number"] for s in manager.saves] == [4, 5, 6, 7, 8]
    assert sorted(os.listdir(tmp_path)) == ["checkpoints.json"] + [f"ckpt-{n}" for n in
                                                                     range(4, 9)]
    want = job.state()
    fresh = Job()
    IncrementalCheckpointManager(fresh.checkpoint, tmp_path).restore()
    assert_same_state(fresh.state(), want)


def test_a_failed_save_leaves_the_previous_state_listed_and_restorable(tmp_path, monkeypatch):
    job = Job()
    manager = IncrementalCheckpointManager(job.checkpoint, tmp_path, full_every=4)
    job.train(2)
    first = manager.save(job.step)
    want = job.state()
    job.train(2)

    def killed(*args, **kwargs):
        raise OSError("disk full")

    monkeypatch.setattr(incremental_checkpoints.tf.raw_ops, "SaveV2", killed)
    with pytest.raises(OSError, match="disk full"):
        manager.save(job.step)
    monkeypatch.undo()
    assert [s["number"] for s in manager.saves] == [1]
    assert sorted(os.listdir(tmp_path)) == ["checkpoints.json", "ckpt-1"]
    # A save killed between writing its directory and listing it: never restored,
    # removed by the next save.
    os.makedirs(tmp_path / "ckpt-2")
    with open(tmp_path / "checkpoints.json") as f:
        assert [s["number"] for s in json.load(f)["saves"]] == [1]
    fresh = Job()
    assert IncrementalCheckpointManager(fresh.checkpoint, tmp_path).restore() == first
    assert_same_state(fresh.state(), want)
    assert manager.save(job.step).endswith("ckpt-3")
    assert not os.path.exists(tmp_path / "ckpt-2")


def test_bad_arguments_are_named(tmp_path):
    job = Job()
    with pytest.raises(ValueError, match="full_every"):
        IncrementalCheckpointManager(job.checkpoint, tmp_path, full_every=0)
    with pytest.raises(ValueError, match="max_to_keep"):
        IncrementalCheckpointManager(job.checkpoint, tmp_path, max_to_keep=0)
    manager = IncrementalCheckpointManager(job.checkpoint, tmp_path)
    assert manager.restore() is None
    with pytest.raises(ValueError, match="not a listed save"):
        manager.restore(str(tmp_path / "ckpt-9"))
    with pytest.raises(ValueError, match="not a save of this manager"):
        manager.restore(str(tmp_path / "elsewhere"))
    twin = tf.train.Checkpoint(a=KVVariable(2, name="same"), b=KVVariable(2, name="same"))
    with pytest.raises(ValueError, match="two KV tables are named 'same'"):
        IncrementalCheckpointManager(twin, tmp_path / "twin")


def test_restore_takes_a_save_of_its_directory_only(tmp_path):
    job = Job()
    job.train(2)
    want = job.state()
    path = IncrementalCheckpointManager(job.checkpoint, tmp_path / "A").save(job.step)
    other = Job(seed=1)
    other.train(2)
    IncrementalCheckpointManager(other.checkpoint, tmp_path / "B").save(other.step)
    fresh = Job()
    manager = IncrementalCheckpointManager(fresh.checkpoint, tmp_path / "A")
    with pytest.raises(ValueError, match=rf"'{tmp_path}/B/ckpt-1' is in '{tmp_path}/B', not in "
                                         rf"this manager's directory '{tmp_path}/A'"):
        manager.restore(str(tmp_path / "B" / "ckpt-1"))
    assert fresh.ids.export().keys.numpy().size == 0  # nothing restored
    assert manager.restore("ckpt-1") == path
    assert_same_state(fresh.state(), want)
    assert manager.restore(tmp_path / "B" / ".." / "A" / "ckpt-1") == path


@pytest.mark.parametrize("saves, message", [
    (None, "'saves' must be a list of saves, got None"),
    ({"number": 1}, "'saves' must be a list of saves"),
    ([{"number": 1, "base": None, "step": 1}], r"a save must be .*got \{'number': 1, 'base'"),
    ([{"number": 1, "kind": "full", "base": 2, "step": 1}], "a save must be"),
    ([{"number": "1", "kind": "full", "base": None, "step": 1}], "a save must be"),
    ([{"number": 1, "kind": "increment", "base": 1, "step": True}], "a save must be"),
    ([{"number": 1, "kind": "increment", "base": 2, "step": 1},
      {"number": 2, "kind": "increment", "base": 1, "step": 2}],
     r"the bases of save 2 loop \(2 -> 1 -> 2\)"),
])
def test_a_damaged_list_of_saves_is_named(tmp_path, saves, message):
    state = {"format": incremental_checkpoints.FORMAT}
    if saves is not None:
        state["saves"] = saves
    (tmp_path / "checkpoints.json").write_text(json.dumps(state))
    state_file = str(tmp_path / "checkpoints.json")
    with pytest.raises(ValueError, match=f"{state_file}: {message}"):
        IncrementalCheckpointManager(Job().checkpoint, tmp_path).restore()


@pytest.mark.parametrize("step", ["abc", None, 1.7, True, -3, 2 ** 70])
def test_a_bad_step_is_refused_before_anything_is_written(tmp_path, step):
    manager = IncrementalCheckpointManager(Job().checkpoint, tmp_path)
    with pytest.raises(ValueError, match=rf"step must be .*got {re.escape(repr(step))}"):
        manager.save(step)
    assert os.listdir(tmp_path) == []


def test_the_step_is_recorded_and_may_go_back(tmp_path):
    manager = IncrementalCheckpointManager(Job().checkpoint, tmp_path, max_to_keep=None)
    manager.save(np.int64(7))
    manager.save(3)
    assert [s["step"] for s in json.loads((tmp_path / "checkpoints.json").read_text())["saves"]] \
        == [7, 3]


@pytest.mark.parametrize("shards", [None, 3])
def test_an_increment_restores_into_another_number_of_shards(tmp_path, shards):
    """Records and Bloom counters of an increment saved from 2 shards restore into 1 or
    3 as a full checkpoint of the same state does (each shard: the saved filters summed)."""
    from deeprec_lite.kv import PartitionedKVVariable

    def table(num_shards):
        args = dict(admission=BloomFilter(3, expected_keys=1000), name="ids")
        return (KVVariable(2, **args) if num_shards is None
                else PartitionedKVVariable(2, num_shards, **args))

    kv = table(2)
    manager = IncrementalCheckpointManager(tf.train.Checkpoint(ids=kv), tmp_path / "ckpt",
                                           full_every=4)
    rng = np.random.default_rng(0)
    for step in (1, 2):
        for _ in range(2):
            kv.lookup_or_insert(np.unique(rng.integers(0, 300, 200)), global_step=step)
        path = manager.save(step)
    assert manager.saves[-1]["kind"] == "increment"
    tf.train.Checkpoint(ids=kv).write(str(tmp_path / "full" / "ckpt"))
    got, want = table(shards), table(shards)
    IncrementalCheckpointManager(tf.train.Checkpoint(ids=got), tmp_path / "ckpt").restore(path)
    tf.train.Checkpoint(ids=want).read(str(tmp_path / "full" / "ckpt")).assert_consumed()
    assert_records_equal(records_by_key(got.export()), records_by_key(want.export()))
    np.testing.assert_array_equal(got.bloom_counts().numpy(), want.bloom_counts().numpy())
