"""The training job: the DeepFM of the zoo on synthetic data, scheduled eviction,
TensorBoard table statistics and the `deeprec-lite train` command."""
import glob
import json
import os
import re

import numpy as np
import pytest

from deeprec_lite import cli
from deeprec_lite._files import write_text_atomically
from deeprec_lite.compat import tf
from deeprec_lite.data.synthetic.generator import SyntheticCTR, SyntheticConfig
from deeprec_lite.kv import TableConfig
from deeprec_lite.training import callbacks, model_tables


def test_zoo_installs_under_the_package_namespace():
    from deeprec_lite import models

    assert models.get("DeepFM") is models.DeepFM
    assert models.__name__ == "deeprec_lite.models"


@pytest.mark.parametrize("kwargs, message", [
    (dict(log_dir=None), "KVTableStats: log_dir must be a directory path; received log_dir=None"),
    (dict(log_dir=""), "log_dir must be a directory path; received log_dir=''"),
    (dict(log_dir="tb", every_n_steps=True), "KVTableStats: every_n_steps must be a positive "
                                             "integer or None; received every_n_steps=True"),
    (dict(log_dir="tb", every_n_steps=0), "received every_n_steps=0"),
    (dict(log_dir="tb", every_n_steps=2.0), "received every_n_steps=2.0"),
])
def test_kv_table_stats_checks_its_arguments(kwargs, message):
    with pytest.raises(ValueError, match=re.escape(message)):
        callbacks.KVTableStats(**kwargs)
    assert callbacks.KVTableStats("tb", every_n_steps=np.int64(3)).every_n_steps == 3


def test_deepfm_learns_the_planted_model_and_evicts_on_schedule(tmp_path):
    generator = SyntheticCTR(SyntheticConfig(num_categorical=4, num_numeric=2, seed=3))
    model = cli.build_model("deepfm", generator.schema, embedding_dim=4, min_count=1,
                            max_staleness=5, evict_every=10)
    stats = callbacks.KVTableStats(str(tmp_path / "tb"))
    history = model.fit(generator.dataset(20_000, 256, day=0), epochs=3, verbose=0,
                        callbacks=[stats])
    assert history.history["auc"][-1] > history.history["auc"][0] + 0.05
    tables = model_tables.kv_tables(model)
    assert len(tables) == 8  # embedding + linear table per categorical field
    assert sum(int(kv.evicted) for kv in tables.values()) > 0
    step = int(model.optimizer.iterations)
    for kv in tables.values():
        records = kv.export()
        assert int(kv.step) == step
        # scheduled eviction ran at the last multiple of 10: nothing older survives it
        assert (step // 10 * 10 - records.versions.numpy() <= 5).all()

    events = glob.glob(str(tmp_path / "tb" / "kv_tables" / "events.out.tfevents.*"))
    tags = set()
    for path in events:
        for event in tf.compat.v1.train.summary_iterator(path):
            tags.update(v.tag for v in event.summary.value)
    for tag in ("size", "not_admitted", "bytes", "evicted", "freq", "staleness"):
        assert f"embedding_C1/{tag}" in tags


def test_cli_lists_models_and_trains(capsys, tmp_path):
    assert cli.main(["train", "--list-models"]) == 0
    assert "deepfm" in capsys.readouterr().out.split()
    assert cli.main(["train", "--days", "1", "--rows-per-day", "2000", "--batch-size", "500",
                     "--categorical-fields", "3", "--numeric-fields", "1", "--verbose", "0",
                     "--checkpoint-dir", str(tmp_path), "--table-report"]) == 0
    out = capsys.readouterr().out
    assert "embedding_C3" in out and "checkpoint:" in out
    assert glob.glob(str(tmp_path / "ckpt-*.index")) and (tmp_path / "model.json").exists()


def test_cli_warm_starts_a_model_with_one_more_feature(capsys, tmp_path):
    common = ["--rows-per-day", "2000", "--batch-size", "500", "--categorical-fields", "3",
              "--numeric-fields", "1", "--verbose", "0"]
    assert cli.main(["train", "--days", "1", "--hold-out-fields", "1",
                     "--checkpoint-dir", str(tmp_path / "day1")] + common) == 0
    capsys.readouterr()
    report_path = tmp_path / "reports" / "report.json"  # its directory is made
    assert cli.main(["warm-start", "--from", str(tmp_path / "day1"), "--start-day", "1",
                     "--days", "1", "--warm-start-report",
                     str(report_path)] + common) == 0
    out = capsys.readouterr().out
    # 3 categorical fields, each an embedding and a linear table; the held-out C3 is new
    assert "KV tables: 4 migrated, 2 new" in out.splitlines()
    assert "6 KV tables: " in out
    report = json.loads(report_path.read_text())
    assert report["parameters"]["table:embedding_C3"]["status"] == "new"
    assert report["parameters"]["table:embedding_C1"]["status"] == "migrated"
    assert report["counts"]["KV tables"] == {"migrated": 4, "new": 2}
    assert cli.main(["warm-start", "--from", str(tmp_path / "nowhere")] + common) == 2
    assert "source must be a keras.Model or an existing directory" in capsys.readouterr().err


def test_eviction_callback_runs_before_the_checkpoint_is_written(tmp_path):
    from deeprec_lite import StalenessEviction
    from deeprec_lite.training import optimizers
    from deeprec_lite.compat import keras
    from deeprec_lite.layers import KVEmbedding

    def make_model():
        ids = keras.Input((), dtype=tf.int64)
        emb = KVEmbedding(TableConfig(2, eviction=StalenessEviction(0)), name="emb")
        model = keras.Model(ids, keras.layers.Dense(1)(emb(ids)))
        model.compile(optimizer=optimizers.SGD(0.1), loss="mse")
        return model

    model = make_model()
    data = tf.data.Dataset.from_tensor_slices((np.arange(40), np.ones(40))).batch(10)
    saved = str(tmp_path / "ckpt")
    model.fit(data, epochs=1, verbose=0, callbacks=[
        callbacks.KVEviction(), keras.callbacks.ModelCheckpoint(saved, save_weights_only=True)])
    # only the last batch's keys were updated at the last step; the rest left before saving
    assert int(model.get_layer("emb").kv.size()) == 10
    restored = make_model()
    restored.load_weights(saved)
    assert sorted(restored.get_layer("emb").kv.export().keys.numpy()) == list(range(30, 40))


@pytest.mark.parametrize("argv, flag", [
    (["train", "--days", "-1"], "--days"),
    (["train", "--rows-per-day", "-5"], "--rows-per-day"),
    (["train", "--min-count", "-3"], "--min-count"),
    (["train", "--batch-size", "1.5"], "--batch-size"),
    (["train", "--verbose", "3"], "--verbose"),
    (["export", "--checkpoint", "c", "--out", "o", "--min-freq", "-1"], "--min-freq"),
    (["export", "--checkpoint", "c", "--out", "o", "--max-staleness", "-3"], "--max-staleness"),
    (["warm-start", "--from", "c", "--embedding-dim", "0"], "--embedding-dim"),
])
def test_cli_rejects_nonsense_with_a_one_line_error(argv, flag, capsys):
    with pytest.raises(SystemExit) as exit_info:
        cli.main(argv)
    assert exit_info.value.code == 2
    error = capsys.readouterr().err.strip().splitlines()[-1]
    assert error.startswith("deeprec-lite ") and f"argument {flag}: " in error


@pytest.mark.parametrize("flag", ["--checkpoint-dir", "--log-dir"])
def test_cli_refuses_a_directory_flag_naming_a_file_before_training(capsys, tmp_path, flag):
    taken = tmp_path / "taken"
    taken.write_text("x")
    for path, named in ((taken, f"'{taken}' exists"), (taken / "sub", f"'{taken}' exists")):
        assert cli.main(["train", "--days", "1", "--rows-per-day", "500", "--batch-size", "500",
                         "--categorical-fields", "2", "--numeric-fields", "1", "--verbose", "0",
                         flag, str(path)]) == 2
        captured = capsys.readouterr()
        assert f"deeprec-lite train: error: {flag} '{path}'" in captured.err
        assert named in captured.err and "is not a directory" in captured.err
        assert "== day" not in captured.out  # refused before any training
    assert taken.read_text() == "x"


def test_cli_refuses_a_warm_start_report_that_cannot_be_written_before_the_warm_start(
        capsys, tmp_path):
    taken = tmp_path / "taken"
    taken.write_text("x")
    for path, named in ((tmp_path, "is a directory, not a file"),
                        (taken / "report.json", f"'{taken}' exists and is not a directory")):
        assert cli.main(["warm-start", "--from", str(tmp_path / "nowhere"),
                         "--warm-start-report", str(path)]) == 2
        error = capsys.readouterr().err
        assert "deeprec-lite warm-start: error: --warm-start-report '" in error
        assert named in error and "source must be" not in error  # checked first
    assert sorted(os.listdir(tmp_path)) == ["taken"] and taken.read_text() == "x"
    assert cli.main(["train", "--warm-start-report", str(tmp_path / "r.json")]) == 2
    assert "--warm-start-report needs --warm-start-from" in capsys.readouterr().err


def test_a_failed_atomic_write_leaves_no_temporary_file(tmp_path):
    (tmp_path / "a_directory").mkdir()
    with pytest.raises(IsADirectoryError):
        write_text_atomically(str(tmp_path / "a_directory"), "text")
    assert os.listdir(tmp_path) == ["a_directory"]
    write_text_atomically(str(tmp_path / "f.json"), "text")
    assert sorted(os.listdir(tmp_path)) == ["a_directory", "f.json"]
    assert (tmp_path / "f.json").read_text() == "text"
