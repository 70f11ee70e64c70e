"""`deeprec-lite export`: Parquet and SavedModel exports of a training checkpoint, the
printed report, and refusals of bad input."""
import os
import shutil

import numpy as np
import pytest

from deeprec_lite import cli
from deeprec_lite.compat import tf
from deeprec_lite.data.synthetic.generator import SyntheticCTR, SyntheticConfig
from deeprec_lite.export import predict_as_served, read_chain, read_embeddings

MODEL_FLAGS = ["--categorical-fields", "2", "--numeric-fields", "1", "--embedding-dim", "4"]


@pytest.fixture(scope="module")
def checkpoint_dir(tmp_path_factory):
    path = tmp_path_factory.mktemp("train") / "ckpt"
    assert cli.main(["train", "--days", "1", "--rows-per-day", "3000", "--batch-size", "500",
                     "--verbose", "0", "--checkpoint-dir", str(path)] + MODEL_FLAGS) == 0
    return path


def test_parquet_export_prints_the_report(checkpoint_dir, tmp_path, capsys):
    capsys.readouterr()
    out = tmp_path / "emb"
    assert cli.main(["export", "--checkpoint", str(checkpoint_dir), "--out", str(out),
                     "--min-freq", "3", "--max-staleness", "2"]) == 0
    printed = capsys.readouterr().out
    export = read_embeddings(out)
    assert set(export.tables) == {"embedding_C1", "embedding_C2", "linear_C1", "linear_C2"}
    for name, t in export.manifest["tables"].items():
        d = t["dropped"]
        line = next(line.split() for line in printed.splitlines() if line.split()[:1] == [name])
        assert line[1:6] == [str(t["keys_before"]), str(t["kept"]), str(d["not_admitted"]),
                             str(d["low_freq"]), str(d["stale"])]
        assert t["keys_before"] == t["kept"] + sum(d.values())
    assert "MiB before" in printed and "parquet export" in printed
    # an existing export is refused without --overwrite, replaced with it
    assert cli.main(["export", "--checkpoint", str(checkpoint_dir), "--out", str(out)]) == 2
    assert "overwrite" in capsys.readouterr().err
    assert cli.main(["export", "--checkpoint", str(checkpoint_dir), "--out", str(out),
                     "--overwrite", "--tables", "linear_C1"]) == 0
    assert list(read_embeddings(out).tables) == ["linear_C1"]


def test_saved_model_export_rebuilds_the_model(checkpoint_dir, tmp_path, capsys):
    out = tmp_path / "serving"
    argv = ["--checkpoint", str(checkpoint_dir), "--out", str(out)]  # the model comes from it
    assert cli.main(["export", "--format", "saved_model"] + argv) == 0
    assert "saved_model export" in capsys.readouterr().out
    args = cli.argparse.Namespace(model="deepfm", embedding_dim=4, categorical_fields=2,
                                  numeric_fields=1, min_count=2, seed=0)
    model = cli.restore_model(args, str(checkpoint_dir))
    gen = SyntheticCTR(SyntheticConfig(num_categorical=2, num_numeric=1, seed=0))
    x, _ = next(iter(gen.dataset(500, 500, day=0)))
    loaded = tf.saved_model.load(str(out))
    # no filter: every key of the model is served, so every prediction is identical
    np.testing.assert_array_equal(loaded.serve(x).numpy(), predict_as_served(model, x))


def test_a_delta_since_an_export_of_an_earlier_checkpoint(checkpoint_dir, tmp_path, capsys):
    filters = ["--min-freq", "3", "--max-staleness", "20"]
    e0, d1, full = (str(tmp_path / name) for name in ("e0", "d1", "full"))
    assert cli.main(["export", "--checkpoint", str(checkpoint_dir), "--out", e0] + filters) == 0
    later = tmp_path / "later"  # a day more of training, from the first checkpoint
    assert cli.main(["warm-start", "--from", str(checkpoint_dir), "--start-day", "1", "--days",
                     "1", "--rows-per-day", "3000", "--batch-size", "500", "--verbose", "0",
                     "--checkpoint-dir", str(later)] + MODEL_FLAGS) == 0
    capsys.readouterr()
    assert cli.main(["export", "--checkpoint", str(later), "--out", d1, "--since", e0]
                    + filters) == 0
    printed = capsys.readouterr().out
    assert cli.main(["export", "--checkpoint", str(later), "--out", full] + filters) == 0
    delta, base = read_embeddings(d1), read_embeddings(e0)
    assert delta.manifest["delta"]["base_export_id"] == base.manifest["export_id"]
    deleted = sum(len(t) for t in delta.tombstones.values())
    assert f"delta since step {base.manifest['global_step']}: {deleted:,} keys deleted" in printed
    chain, want = read_chain([e0, d1]), read_embeddings(full)
    for name, table in want.tables.items():
        assert chain.tables[name].sort_by("key").equals(table.sort_by("key"))
    # a delta holds fewer records than the full export: the unchanged ones are left out
    assert sum(t.num_rows for t in delta.tables.values()) < sum(
        t.num_rows for t in want.tables.values())


def test_bad_input_exits_with_a_clear_error_and_writes_nothing(checkpoint_dir, tmp_path_factory,
                                                               tmp_path, capsys):
    # a plain TF checkpoint (no model config): the model comes from the flags, which must match
    plain = tmp_path_factory.mktemp("plain") / "ckpt"
    shutil.copytree(checkpoint_dir, plain)
    (plain / "model.json").unlink()
    cases = [
        (["--checkpoint", str(tmp_path / "missing")], "does not exist"),
        (["--checkpoint", str(checkpoint_dir), "--tables", "nope"], "unknown table 'nope'"),
        (["--checkpoint", str(checkpoint_dir), "--format", "saved_model", "--since",
          str(tmp_path)], "--since: from a checkpoint, deltas are Parquet"),
        (["--checkpoint", str(plain), "--format", "saved_model",
          "--categorical-fields", "3", "--numeric-fields", "1", "--embedding-dim", "4"],
         "does not match"),
    ]
    for argv, match in cases:
        assert cli.main(["export", "--out", str(tmp_path / "out")] + argv) == 2
        assert match in capsys.readouterr().err
    inside = checkpoint_dir / "export"
    for fmt in ("parquet", "saved_model"):
        assert cli.main(["export", "--checkpoint", str(checkpoint_dir), "--out", str(inside),
                         "--format", fmt] + MODEL_FLAGS) == 2
        assert "inside the checkpoint" in capsys.readouterr().err
    assert os.listdir(tmp_path) == [] and not inside.exists()
