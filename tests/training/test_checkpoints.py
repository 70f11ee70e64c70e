"""deeprec_lite.training.checkpoints: a save never rewrites a complete checkpoint, a kill -9 at
any moment of a save leaves the previous checkpoint loadable, and damaged files get
errors that name them."""
import glob
import os
import random
import subprocess
import sys

import numpy as np
import pytest

from deeprec_lite.training import checkpoints
from deeprec_lite.compat import tf
import resave_child


def trained(tmp_path):
    model = resave_child.build()
    x = resave_child.inputs(512)
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
    second = checkpoints.save(model, directory)
    assert second.endswith(f"ckpt-{step + 1}")
    assert file_bytes(first) == before
    assert not glob.glob(os.path.join(directory, "*_temp"))
    assert tf.train.latest_checkpoint(directory) == second
    np.testing.assert_array_equal(checkpoints.load(directory).predict_on_batch(x),
                                  model.predict_on_batch(x))


@pytest.mark.parametrize("trial", range(2))
def test_kill_during_a_save_at_an_existing_step_leaves_a_loadable_checkpoint(tmp_path, trial):
    child = subprocess.Popen([sys.executable, resave_child.__file__, str(tmp_path)],
                             stdout=subprocess.PIPE, text=True,
                             env=dict(os.environ, TF_CPP_MIN_LOG_LEVEL="3"))
    try:
        assert child.stdout.readline().strip() == "saved"  # one complete checkpoint
        child.stdout.readline()  # the second save is complete too, so saves are under way
        # kill at a random moment of the saves that follow (each takes ~0.1-0.3 s)
        subprocess.run(["sleep", str(random.Random(trial).uniform(0.0, 0.5))], check=True)
    finally:
        child.kill()
        child.wait()
    model = checkpoints.load(str(tmp_path / "ckpt"))
    np.testing.assert_array_equal(model.predict_on_batch(resave_child.inputs()),
                                  np.load(tmp_path / "expected.npy"))


def test_damaged_files_are_named_with_what_to_do(tmp_path):
    model, _ = trained(tmp_path)
    directory = str(tmp_path / "ckpt")
    prefix = checkpoints.save(model, directory)
    for suffix in (".index", ".data-00000-of-00001"):
        path = prefix + suffix
        with open(path, "r+b") as f:
            f.truncate(os.path.getsize(path) // 2)
        with pytest.raises(ValueError, match=f"checkpoint {prefix} is damaged.*older checkpoint"):
            checkpoints.load(directory)
        checkpoints.save(model, directory)  # a good one again; the damaged one stays
        prefix = tf.train.latest_checkpoint(directory)
    with open(os.path.join(directory, checkpoints.MODEL_FILE), "w") as f:
        f.write('{"format": "deeprec-lite-checkp')
    with pytest.raises(ValueError, match="model.json is damaged.*save the model again"):
        checkpoints.load(directory)
