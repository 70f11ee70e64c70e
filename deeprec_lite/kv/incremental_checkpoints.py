"""Incremental checkpoints: every Nth save is full, the others hold only what changed.

`IncrementalCheckpointManager(checkpoint, directory, full_every=N)` saves like
tf.train.CheckpointManager: `save()` writes `ckpt-<n>/`, `restore()` restores the
latest (or a given) one. A full save is `checkpoint.write` (every KV table whole,
deeprec_lite.kv.checkpointing). An increment holds, for each KV table, the records
changed since the previous save (values, slots, freq, version, pending admission
counts) and tombstones for the keys removed since then (kv.deltas: read from the
table's change stamps and removal log, without reading the previous save), the
table's whole counting Bloom filter (when it has one), and a save of everything else
of the checkpoint (dense weights, optimizer state, step clocks), which is small.

Restoring an increment restores its full base, then applies each increment of its
chain in order: the tables end as a full checkpoint of that step would leave them.
Every save records the save it builds on; a missing or damaged link fails with an
error naming it and the last save of the chain that can still be restored.

An increment is written only when it is exact: every table is the one (same timeline,
kv.deltas) that the previous save wrote or that this manager restored, and its
removal log reaches back to it; otherwise the save is full.

Layout: `ckpt-<n>/` (full: `ckpt.*`, a tf.train.Checkpoint; increment: `rest.*`,
the checkpoint without its tables, and `tables.*`, a tensor bundle of the tables'
deltas) and `checkpoints.json`, the list of saves (number, kind, base, step). Each save
is written into a temporary directory, flushed and renamed into place before it is
listed, so a save killed at any moment leaves the previous state restorable.
Garbage collection keeps the newest `max_to_keep` full saves with every increment
built on them, and deletes a save only when no kept one needs it.
"""
import json
import os
import re
import shutil
import tempfile

import tensorflow as tf

from deeprec_lite._checks import check_int, check_positive_int, is_int
from deeprec_lite._files import fsync_path, sync_tree, write_text_atomically
from deeprec_lite.kv import checkpointing, deltas
from deeprec_lite.kv.partitioned_variable import KV_VARIABLES, PartitionedKVVariable
from deeprec_lite.kv.snapshots import RecordChunk
from deeprec_lite.kv.variable import bloom_counts_of_shard

STATE_FILE = "checkpoints.json"
FORMAT = "deeprec-lite-incremental-checkpoints/1"
_SAVE_DIR = re.compile(r"ckpt-(\d+)")
_DELTA_FIELDS = RecordChunk._fields + ("removed_keys", "bloom_counts")


def kv_tables(checkpoint):
    """{name: table} of the KV tables a checkpoint reaches (each once; partitions with
    their variable). ValueError when two tables share a name."""
    tables = {}
    for obj in tf.train.TrackableView(checkpoint).descendants():
        if isinstance(obj, KV_VARIABLES) and not getattr(obj, "is_partition", False):
            if obj.name in tables and tables[obj.name] is not obj:
                raise ValueError(f"checkpoint: two KV tables are named {obj.name!r}; an "
                                 "incremental checkpoint tells tables apart by name")
            tables[obj.name] = obj
    return tables


def _valid_entry(entry):
    """Whether `entry` of checkpoints.json is a save: {number, kind, base, step}."""
    return (isinstance(entry, dict) and is_int(entry.get("number"))
            and is_int(entry.get("step"))
            and (entry.get("kind"), entry.get("base") is None) in (("full", True),
                                                                   ("increment", False))
            and (entry["base"] is None or is_int(entry["base"])))


def _bloom_counts_for(kv, saved):
    """The Bloom filter counters of kv's shards, one filter after another, from counters
    saved by a table of any number of shards (as a full checkpoint restores them:
    kv.variable.bloom_counts_of_shard)."""
    shards = kv.num_shards if isinstance(kv, PartitionedKVVariable) else 1
    saved = tf.constant(saved, tf.int32)
    return tf.concat([bloom_counts_of_shard(saved, kv.bloom_filter_size, shards, i)
                      for i in range(shards)], 0)


class IncrementalCheckpointManager:
    """Full and incremental saves of `checkpoint` (a tf.train.Checkpoint) in `directory`.

    Args:
      checkpoint: the tf.train.Checkpoint to save and restore (its KV tables are found
        by walking it; they need distinct names).
      directory: where the saves and checkpoints.json live.
      full_every: every full_every-th save is full (1: all of them), the others are
        increments, and so is each save after a restore of this manager's.
      max_to_keep: full saves kept, with the increments built on them (None: all).

    Example:
      manager = IncrementalCheckpointManager(tf.train.Checkpoint(model=model), "ckpt",
                                             full_every=6)
      manager.restore()           # the latest save, if any (None otherwise)
      ... train ...; manager.save(step)
    """

    def __init__(self, checkpoint, directory, full_every=4, max_to_keep=2):
        check_positive_int(full_every, "full_every")
        if max_to_keep is not None:
            check_positive_int(max_to_keep, "max_to_keep")
        self._checkpoint = checkpoint
        self._directory = os.fspath(directory)
        self._full_every = full_every
        self._max_to_keep = max_to_keep
        self._tables = kv_tables(checkpoint)
        os.makedirs(self._directory, exist_ok=True)
        self._saves = self._read_state()
        # What the tables hold now, if it is a listed save: (its number, {table: change
        # point}); None until a save or a restore of this manager.
        self._base = None

    # ----- the list of saves -----------------------------------------------------

    @property
    def saves(self):
        """The listed saves, oldest first: dicts with number, kind ("full" or
        "increment"), base (the number it builds on, None for a full one), step and
        path."""
        return [dict(s, path=self._path(s["number"])) for s in self._saves]

    @property
    def latest(self):
        """The path of the latest save, or None."""
        return self._path(self._saves[-1]["number"]) if self._saves else None

    def _path(self, number):
        return os.path.join(self._directory, f"ckpt-{number}")

    def _read_state(self):
        path = os.path.join(self._directory, STATE_FILE)
        if not os.path.exists(path):
            return []
        try:
            with open(path, encoding="utf-8") as f:
                state = json.load(f)
        except (OSError, UnicodeDecodeError, json.JSONDecodeError) as e:
            raise ValueError(f"{path} cannot be read ({e}); it lists the saves of "
                             f"{self._directory!r}") from None
        if not isinstance(state, dict) or state.get("format") != FORMAT:
            raise ValueError(f"{path} is not a list of deeprec-lite incremental checkpoints")
        saves = state.get("saves")
        if not isinstance(saves, list):
            raise ValueError(f"{path}: 'saves' must be a list of saves, got {saves!r}")
        for entry in saves:
            if not _valid_entry(entry):
                raise ValueError(f"{path}: a save must be {{number, kind: 'full' (base null) "
                                 f"or 'increment' (base a number), step}}, got {entry!r}")
        return saves

    def _write_state(self):
        write_text_atomically(os.path.join(self._directory, STATE_FILE),
                              json.dumps({"format": FORMAT, "saves": self._saves}, indent=1))

    def _entry(self, number):
        for entry in self._saves:
            if entry["number"] == number:
                return entry
        raise ValueError(f"{self._path(number)!r} is not a listed save of {self._directory!r}")

    def _chain(self, number):
        """The saves that restoring save `number` reads: its full base first. ValueError
        naming the state file when the bases loop."""
        chain = [self._entry(number)]
        while chain[-1]["base"] is not None:
            if chain[-1]["base"] in [entry["number"] for entry in chain]:
                loop = " -> ".join(str(n) for n in [e["number"] for e in chain]
                                   + [chain[-1]["base"]])
                raise ValueError(f"{os.path.join(self._directory, STATE_FILE)}: the bases of "
                                 f"save {number} loop ({loop}): the list of saves is damaged")
            chain.append(self._entry(chain[-1]["base"]))
        return chain[::-1]

    # ----- saving ----------------------------------------------------------------

    def save(self, step=0):
        """Writes a full save or an increment (see the module docstring); `step` (an
        integer in [0, 2**63 - 1]; it may be below an earlier save's, e.g. after a restore
        of an older save) is recorded with it. Returns the path of the new save."""
        step = check_int(step, "step", minimum=0)
        points = {name: deltas.change_point(kv) for name, kv in self._tables.items()}
        increment = self._increment_possible(points)
        number = max([0] + [s["number"] for s in self._saves] + self._numbers_on_disk()) + 1
        tmp = tempfile.mkdtemp(prefix=f".ckpt-{number}.tmp-", dir=self._directory)
        try:
            if increment:
                self._write_increment(tmp)
            else:
                self._checkpoint.write(os.path.join(tmp, "ckpt"))
            sync_tree(tmp)
            os.rename(tmp, self._path(number))
            fsync_path(self._directory, directory=True)
        except BaseException:
            shutil.rmtree(tmp, ignore_errors=True)
            raise
        self._saves.append({"number": number, "kind": "increment" if increment else "full",
                            "base": self._base[0] if increment else None, "step": step})
        self._write_state()
        self._base = (number, points)
        self._collect_garbage()
        return self._path(number)

    def _increment_possible(self, points):
        if self._base is None or not self._saves:
            return False
        chain = self._chain(self._base[0])
        if len(chain) >= self._full_every:
            return False
        base_points = self._base[1]
        if set(base_points) != set(points):
            return False
        for name, kv in self._tables.items():
            state = deltas.change_state(kv)
            if ([s.timeline for s in state] != base_points[name]["timelines"]
                    or max(s.removals_since for s in state) > base_points[name]["change_step"]):
                return False
        return True

    def _write_increment(self, tmp):
        names, tensors = [], []
        for name, kv in sorted(self._tables.items()):
            changes = deltas.changes(kv, self._base[1][name]["change_step"])
            fields = list(changes.records) + [changes.removed_keys, kv.bloom_counts().numpy()]
            for field, value in zip(_DELTA_FIELDS, fields):
                names.append(f"{name}/{field}")
                tensors.append(tf.constant(value))
        tf.raw_ops.SaveV2(prefix=os.path.join(tmp, "tables"), tensor_names=names,
                          shape_and_slices=[""] * len(names), tensors=tensors)
        with checkpointing.tables_left_as_they_are():
            self._checkpoint.write(os.path.join(tmp, "rest"))

    def _numbers_on_disk(self):
        return [int(m.group(1)) for m in map(_SAVE_DIR.fullmatch, os.listdir(self._directory))
                if m]

    def _collect_garbage(self):
        """Deletes the saves of full chains older than the newest max_to_keep, and
        directories of saves that were never listed (a save killed before it was)."""
        listed = {s["number"] for s in self._saves}
        for number in self._numbers_on_disk():
            if number not in listed:
                shutil.rmtree(self._path(number), ignore_errors=True)
        for entry in os.listdir(self._directory):
            if entry.startswith(".ckpt-") and ".tmp-" in entry:
                shutil.rmtree(os.path.join(self._directory, entry), ignore_errors=True)
        fulls = [s["number"] for s in self._saves if s["kind"] == "full"]
        if self._max_to_keep is None or len(fulls) <= self._max_to_keep:
            return
        oldest_kept = fulls[-self._max_to_keep]
        keep = [s for s in self._saves if self._chain(s["number"])[0]["number"] >= oldest_kept]
        doomed = [s for s in self._saves if s not in keep]
        self._saves = keep
        self._write_state()  # first unlisted, then deleted: never a listed save half gone
        for entry in doomed:
            shutil.rmtree(self._path(entry["number"]), ignore_errors=True)

    # ----- restoring -------------------------------------------------------------

    def restore(self, path=None):
        """Restores save `path` (default: the latest): its full base, then its chain of
        increments. `path` is a save of this manager: `<directory>/ckpt-<n>` (any spelling
        of the manager's directory) or the bare name `ckpt-<n>`; a save of another
        directory is a ValueError (restore it with a manager of that directory). Returns
        the path restored, or None when there is no save. ValueError naming the save that
        is missing or damaged (and the last one that can be restored)."""
        if path is None:
            if not self._saves:
                return None
            path = self.latest
        if not isinstance(path, (str, os.PathLike)):
            raise ValueError(f"path must be a path of a save (ckpt-<n>), got {path!r}")
        parent, name = os.path.split(os.path.normpath(os.fspath(path)))
        match = _SAVE_DIR.fullmatch(name)
        if match is None:
            raise ValueError(f"path: {os.fspath(path)!r} is not a save of this manager "
                             "(ckpt-<n>)")
        if parent and os.path.realpath(parent) != os.path.realpath(self._directory):
            raise ValueError(f"path: {os.fspath(path)!r} is in {parent!r}, not in this "
                             f"manager's directory {self._directory!r}; restore it with a "
                             "manager of its directory")
        chain = self._chain(int(match.group(1)))
        good = None
        for entry in chain:
            where = self._path(entry["number"])
            try:
                if entry["kind"] == "full":
                    self._checkpoint.read(os.path.join(where, "ckpt")).assert_existing_objects_matched()
                else:
                    self._apply_increment(where)
            except (tf.errors.OpError, ValueError, IndexError) as e:
                remedy = (f"the last save of its chain that restores is {good!r}" if good
                          else "no save of its chain restores")
                raise ValueError(f"save {where!r} is missing or damaged ({type(e).__name__}: "
                                 f"{e}); {remedy}") from None
            good = where
        self._base = (chain[-1]["number"],
                      {name: deltas.change_point(kv) for name, kv in self._tables.items()})
        return self._path(chain[-1]["number"])

    def _apply_increment(self, where):
        reader = tf.train.load_checkpoint(os.path.join(where, "tables"))
        for name, kv in sorted(self._tables.items()):
            fields = {f: reader.get_tensor(f"{name}/{f}") for f in _DELTA_FIELDS}
            if kv.key_dtype == tf.string:
                for f in ("keys", "pending_keys", "removed_keys"):
                    fields[f] = fields[f].astype(object)
            deltas.apply(kv, RecordChunk(*(fields[f] for f in RecordChunk._fields)),
                         fields["removed_keys"])
            if len(fields["bloom_counts"]):
                kv.set_bloom_counts(_bloom_counts_for(kv, fields["bloom_counts"]))
        with checkpointing.tables_left_as_they_are():
            self._checkpoint.read(os.path.join(where, "rest")).assert_existing_objects_matched()

