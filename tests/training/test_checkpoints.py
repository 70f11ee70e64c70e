"""deeprec_lite.training.checkpoints: a save never rewrites a complete checkpoint, a kill -9 at
any moment of a save leaves the previous checkpoint loadable, and damaged files get
errors that name them."""
import glob
import json
import os
import re

import numpy as np
import pytest

from deeprec_lite.compat import tf
from deeprec_lite.export import export_embeddings, read_embeddings
from deeprec_lite.training import checkpoints
import kill_trials


def trained(tmp_path):
    model = kill_trials.build()
    x = kill_trials.inputs(512)
    model.fit(x, (x["a"] % 3 == 0).astype(np.float32), batch_size=128, verbose=0)
    return model, x


def file_bytes(prefix):
    return {p: open(p, "rb").read() for p in sorted(glob.glob(prefix + ".*"))}


def test_saving_again_at_the_same_step_takes_a_new_number_and_keeps_the_old_files(tmp_path):
    model, x = trained(tmp_path)
    directory = str(tmp_path / "ckpt")
    step = int(model.optimizer.iterations)
    first = checkpoints.save(model, directory)
    assert first.endswith(f"ckpt-{step}")
    before = file_bytes(first)
    os.makedirs(os.path.join(directory, f"ckpt-{step + 1}_temp"))  # left by a killed save
    tables_temp = os.path.join(directory, f"ckpt-{step + 1}-deeprec_lite.KVTable_temp")
    os.makedirs(tables_temp)  # the KV tables' bundles of a killed save
    with open(os.path.join(tables_temp, "tables-0-0.data-00000-of-00001"), "wb") as f:
        f.write(b"half")
    second = checkpoints.save(model, directory)
    assert second.endswith(f"ckpt-{step + 1}")
    assert file_bytes(first) == before
    assert not glob.glob(os.path.join(directory, "*_temp"))
    assert tf.train.latest_checkpoint(directory) == second
    np.testing.assert_array_equal(checkpoints.load(directory)(x, training=False),
                                  model(x, training=False))


def test_damaged_files_are_named_with_what_to_do(tmp_path):
    model, _ = trained(tmp_path)
    directory = str(tmp_path / "ckpt")
    prefix = checkpoints.save(model, directory)
    data_files = sorted(f[len(os.path.basename(prefix)):] for f in os.listdir(directory)
                        if f.startswith(os.path.basename(prefix) + ".data-"))
    assert len(data_files) >= 2  # the KV tables' and the dense variables'
    export_embeddings(directory, str(tmp_path / "good"))
    good = read_embeddings(str(tmp_path / "good"))
    export_failed = []
    for n, suffix in enumerate([".index"] + data_files):
        path = prefix + suffix
        with open(path, "r+b") as f:
            f.truncate(os.path.getsize(path) // 2)
        with pytest.raises(ValueError, match=f"checkpoint {prefix} is damaged.*older checkpoint"):
            checkpoints.load(directory)
        try:  # an export reads the index and the KV tables' files only
            export_embeddings(directory, str(tmp_path / f"export{n}"))
        except ValueError as e:
            assert re.search(f"checkpoint {prefix} is damaged.*older checkpoint", str(e))
            export_failed.append(suffix)
        else:
            got = read_embeddings(str(tmp_path / f"export{n}"))
            for name in good.manifest["tables"]:
                for a, b in zip(good.numpy(name), got.numpy(name)):
                    np.testing.assert_array_equal(a, b)
        checkpoints.save(model, directory)  # a good one again; the damaged one stays
        prefix = tf.train.latest_checkpoint(directory)
    assert export_failed[0] == ".index" and len(export_failed) >= 2
    with open(os.path.join(directory, checkpoints.MODEL_FILE), "w") as f:
        f.write('{"format": "deeprec-lite-checkp')
    with pytest.raises(ValueError, match="model.json is damaged.*save the model again"):
        checkpoints.load(directory)
    with open(os.path.join(directory, checkpoints.MODEL_FILE), "w") as f:
        f.write(json.dumps({"format": checkpoints.FORMAT, "optimizer": None}))
    with pytest.raises(ValueError, match="model.json has no 'model' entry; save the model again"):
        checkpoints.load(directory)


@pytest.mark.parametrize("max_to_keep", ["a", 0, -1, 1.5, True])
def test_a_bad_max_to_keep_is_named_before_anything_is_written(tmp_path, max_to_keep):
    with pytest.raises(ValueError, match=rf"max_to_keep must be a positive integer or None, got "
                                         rf"{re.escape(repr(max_to_keep))}"):
        checkpoints.save(None, str(tmp_path / "ckpt"), max_to_keep=max_to_keep)
    assert not os.path.exists(tmp_path / "ckpt")


@pytest.mark.parametrize("directory", [None, "", 3])
def test_a_bad_directory_is_named(directory):
    with pytest.raises(ValueError, match=rf"directory must be a non-empty path, got "
                                         rf"{re.escape(repr(directory))}"):
        checkpoints.save(None, directory)


def test_max_to_keep_keeps_the_newest_checkpoints(tmp_path):
    model, _ = trained(tmp_path)
    directory = str(tmp_path / "ckpt")
    prefixes = [checkpoints.save(model, directory, max_to_keep=2) for _ in range(3)]
    assert sorted(glob.glob(os.path.join(directory, "*.index"))) == sorted(
        p + ".index" for p in prefixes[1:])
