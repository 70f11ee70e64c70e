"""Training checkpoints that know their model: a TensorFlow checkpoint of the model
(KV tables, dense weights, optimizer state) plus the model's and optimizer's Keras
configs, so a checkpoint alone rebuilds the model it came from (warm start and
export need that).

Layout of a checkpoint directory (the standard tf.train.CheckpointManager one):
  checkpoint, ckpt-<n>.index, ckpt-<n>.data-*   the TensorFlow checkpoint
  model.json                                     the model config + optimizer config
Every file is written under a temporary name and renamed into place, and a save never
rewrites the files of a checkpoint already there: checkpoints are numbered by the
optimizer's step, or by the next free number when that step was saved before (a save
after a restore, at an epoch end without a new step, a re-run of a warm start), so a
kill at any moment of a save leaves the previous checkpoint intact. Temporary
directories (`ckpt-<n>_temp/`, `ckpt-<n>-deeprec_lite.KVTable_temp/`) that a killed
save left behind are removed by the next save.
"""
import contextlib
import json
import os
import re
import shutil

from deeprec_lite._checks import check_int
from deeprec_lite._files import write_text_atomically
from deeprec_lite.compat import keras, tf
from deeprec_lite.kv import checkpointing

MODEL_FILE = "model.json"
FORMAT = "deeprec-lite-checkpoint/1"


# A checkpoint's files, and the temporary directories of its saves: TensorFlow's
# (ckpt-<n>_temp) and the KV tables' (ckpt-<n>-deeprec_lite.KVTable_temp).
_CHECKPOINT_FILE = re.compile(r"ckpt-(\d+)(\.index|\.data-\d+-of-\d+|(?:-[\w.]+)?_temp)")


def _free_number(directory, step):
    """The checkpoint number for a save at `step`: the step itself unless a checkpoint
    (complete or not) with that or a higher number is in `directory`, else the next
    number above all of them. Removes the temporary directories of killed saves."""
    highest = -1
    for name in os.listdir(directory):
        match = _CHECKPOINT_FILE.fullmatch(name)
        if match is None:
            continue
        if match.group(2).endswith("_temp"):
            shutil.rmtree(os.path.join(directory, name), ignore_errors=True)
        else:
            highest = max(highest, int(match.group(1)))
    return max(step or 0, highest + 1)


def save(model, directory, max_to_keep=3):
    """Saves model (with its optimizer) to `directory`; returns the checkpoint prefix.

    The checkpoint is `ckpt-<optimizer step>`, or the next free number when that step
    was already saved in `directory`: no save overwrites an existing checkpoint.
    `max_to_keep`: the checkpoints kept in `directory` (a positive integer; None: all).
    """
    max_to_keep = check_int(max_to_keep, "max_to_keep", minimum=1, none_ok=True)
    if not isinstance(directory, (str, os.PathLike)) or not os.fspath(directory):
        raise ValueError(f"directory must be a non-empty path, got {directory!r}")
    os.makedirs(directory, exist_ok=True)
    optimizer = getattr(model, "optimizer", None)
    meta = {"format": FORMAT, "model": json.loads(model.to_json()),
            "optimizer": None if optimizer is None else keras.optimizers.serialize(optimizer),
            "step": None if optimizer is None else int(optimizer.iterations)}
    manager = tf.train.CheckpointManager(tf.train.Checkpoint(model=model), directory,
                                         max_to_keep=max_to_keep)
    prefix = manager.save(checkpoint_number=_free_number(directory, meta["step"]))
    write_text_atomically(os.path.join(directory, MODEL_FILE), json.dumps(meta))
    return prefix


def is_checkpoint(directory):
    return os.path.isfile(os.path.join(directory, MODEL_FILE))


def damaged(path, error, remedy="restore an older checkpoint or save it again"):
    """The error for a checkpoint file that exists but cannot be read."""
    return ValueError(f"{path} is damaged or truncated and cannot be read "
                      f"({type(error).__name__}: {error}); {remedy}")


# What reading a truncated or corrupted TensorFlow checkpoint raises.
READ_ERRORS = (tf.errors.OpError, IndexError)


def load(directory, compile=True, restore_tables=True):
    """Rebuilds the model saved in `directory` and restores its latest checkpoint
    (weights, KV tables and, with compile=True, the optimizer state). With
    restore_tables=False its KV tables stay empty (their step clocks are restored): a
    reader of the tables reads them from the checkpoint chunk by chunk instead
    (deeprec_lite.kv.snapshots), so they are never in memory whole."""
    meta_path = os.path.join(directory, MODEL_FILE)
    if not os.path.isfile(meta_path):
        raise ValueError(f"directory {directory!r} is not a deeprec-lite checkpoint "
                         f"(no {MODEL_FILE})")
    try:
        with open(meta_path, encoding="utf-8") as f:
            meta = json.load(f)
    except (json.JSONDecodeError, UnicodeDecodeError) as e:
        raise damaged(meta_path, e, "save the model again (it holds the model's config)") from None
    if not isinstance(meta, dict) or meta.get("format") != FORMAT:
        found = meta.get("format") if isinstance(meta, dict) else type(meta).__name__
        raise ValueError(f"{meta_path} has format {found!r}, expected {FORMAT!r}")
    missing = [key for key in ("model", "optimizer") if key not in meta]
    if missing:
        raise ValueError(f"{meta_path} has no {' and no '.join(map(repr, missing))} entry; save "
                         "the model again (it holds the model's config)")
    prefix = tf.train.latest_checkpoint(directory)
    if prefix is None:
        raise ValueError(f"directory {directory!r} holds no TensorFlow checkpoint")
    import deeprec_lite.models  # noqa: F401  (registers the zoo's layers and KVModel)
    model = keras.models.model_from_json(json.dumps(meta["model"]))
    if compile and meta["optimizer"] is not None:
        model.compile(optimizer=keras.optimizers.deserialize(meta["optimizer"]))
        model.optimizer.build(model.trainable_variables)
    try:
        with contextlib.ExitStack() as stack:
            if not restore_tables:
                stack.enter_context(checkpointing.tables_left_as_they_are())
            status = tf.train.Checkpoint(model=model).restore(prefix)
        if compile:
            status.assert_existing_objects_matched()
        else:
            status.expect_partial()
    except READ_ERRORS as e:
        raise damaged(f"checkpoint {prefix}", e) from None
    return model
