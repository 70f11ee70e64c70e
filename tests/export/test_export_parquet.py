"""export_embeddings / read_embeddings against a numpy reference filter over
KVVariable.export(), from models, variables and checkpoints; manifest checks and bad input."""
import json
import os

import numpy as np
import pyarrow.parquet as pq
import pytest

import deeprec_lite as drl
from deeprec_lite import cli
from deeprec_lite.training.model_tables import kv_tables
from deeprec_lite.compat import tf
from deeprec_lite.data.synthetic.generator import SyntheticCTR, SyntheticConfig
from deeprec_lite.export import export_embeddings, read_embeddings
from deeprec_lite.export.filtering import filter_records

STEPS = 20


def filled_kv(key_dtype="int64", name="t"):
    """A table with pending keys, varied freqs and versions (updated at different steps)."""
    kv = drl.KVVariable(3, key_dtype=key_dtype, initializer="uniform",
                        admission=drl.CounterFilter(3), name=name)
    rng = np.random.default_rng(0)
    for step in range(1, STEPS + 1):
        ids = rng.zipf(1.4, 150) % 400
        keys, counts = np.unique(ids, return_counts=True)
        if key_dtype == "string":
            keys = np.array([f"k{k}é".encode() for k in keys], object)
        kv.lookup_or_insert(keys, counts=counts, global_step=step)
        kv.update(keys, rng.normal(size=(len(keys), 3)), global_step=step)
    kv.step.assign(STEPS)
    return kv


def reference(kv, min_freq, max_staleness, step=STEPS):
    """Per-key loop over kv.export(): {key: (value, freq, version)} kept, and drop counts."""
    r = kv.export()
    kept, dropped = {}, {"not_admitted": 0, "low_freq": 0, "stale": 0}
    for key, value, freq, version, admitted in zip(r.keys.numpy(), r.values.numpy(),
                                                   r.freqs.numpy(), r.versions.numpy(),
                                                   r.admitted.numpy()):
        if not admitted:
            dropped["not_admitted"] += 1
        elif freq < min_freq:
            dropped["low_freq"] += 1
        elif max_staleness is not None and step - version > max_staleness:
            dropped["stale"] += 1
        else:
            kept[key.decode() if isinstance(key, bytes) else int(key)] = (
                value.tolist(), int(freq), int(version))
    return kept, dropped


def as_dict(export, name):
    keys, values, freqs, versions = export.numpy(name)
    return {(k if isinstance(k, str) else int(k)): (v.tolist(), int(f), int(ver))
            for k, v, f, ver in zip(keys, values, freqs, versions)}


@pytest.mark.parametrize("key_dtype", ["int64", "string"])
@pytest.mark.parametrize("min_freq, max_staleness", [(0, None), (4, 5), (12, 0)])
def test_export_matches_the_numpy_reference(tmp_path, key_dtype, min_freq, max_staleness):
    kv = filled_kv(key_dtype)
    manifest = export_embeddings(kv, tmp_path / "out", min_freq=min_freq,
                                 max_staleness=max_staleness, max_file_bytes=512)
    want, dropped = reference(kv, min_freq, max_staleness)
    assert dropped["not_admitted"] > 0 and want  # the fixture exercises every branch
    got = read_embeddings(tmp_path / "out")
    assert as_dict(got, "t") == want
    t = got.manifest["tables"]["t"]
    assert got.manifest == manifest
    assert t["dropped"] == dropped and t["kept"] == len(want)
    assert t["keys_before"] == len(kv.export().keys)
    assert t["dim"] == 3 and t["key_dtype"] == key_dtype
    assert manifest["global_step"] == STEPS
    assert manifest["filters"] == {"min_freq": min_freq, "max_staleness": max_staleness}
    assert len(t["files"]) > 1  # bounded file size
    assert sum(f["rows"] for f in t["files"]) == len(want)
    schema = pq.read_schema(tmp_path / "out" / t["files"][0]["path"])
    assert str(schema.field("key").type) == ("int64" if key_dtype == "int64" else "string")
    assert str(schema.field("value").type).startswith("fixed_size_list<")
    assert schema.field("value").type.list_size == 3
    assert (str(schema.field("freq").type), str(schema.field("version").type)) == ("int64", "int64")


def test_bytes_and_thresholds_shrink_the_export(tmp_path):
    kv = filled_kv()
    sizes = [export_embeddings(kv, tmp_path / str(m), min_freq=m)["tables"]["t"]
             for m in (0, 5, 12)]
    assert sizes[0]["bytes_before"] == sizes[0]["keys_before"] * (8 + 12 + 16)
    assert sizes[0]["bytes_after"] > sizes[1]["bytes_after"] > sizes[2]["bytes_after"]


def small_deepfm():
    gen = SyntheticCTR(SyntheticConfig(num_categorical=2, num_numeric=1, vocab_sizes=200, seed=1))
    model = cli.build_model("deepfm", gen.schema, 4, min_count=2, max_staleness=10_000,
                            evict_every=1000)
    model.fit(gen.dataset(3000, 300), verbose=0)
    return model


def test_checkpoint_export_equals_model_export(tmp_path):
    model = small_deepfm()
    prefix = tf.train.Checkpoint(model=model).save(str(tmp_path / "ckpt" / "ckpt"))
    from_model = export_embeddings(model, tmp_path / "m", min_freq=3, max_staleness=4)
    for number, source in enumerate((str(tmp_path / "ckpt"), prefix)):  # directory or prefix
        out = tmp_path / f"from_checkpoint_{number}"
        from_ckpt = export_embeddings(source, out, min_freq=3, max_staleness=4)
        assert from_ckpt["tables"] == {
            name: dict(t, files=from_ckpt["tables"][name]["files"])
            for name, t in from_model["tables"].items()}
        assert from_ckpt["global_step"] == from_model["global_step"] == int(
            model.optimizer.iterations)
        a, b = read_embeddings(tmp_path / "m"), read_embeddings(out)
        for name in kv_tables(model):
            assert as_dict(a, name) == as_dict(b, name)
            assert as_dict(a, name) == reference(kv_tables(model)[name], 3, 4, int(
                model.optimizer.iterations))[0]
    subset = export_embeddings(prefix, tmp_path / "subset", tables=["linear_C2"])
    assert list(subset["tables"]) == ["linear_C2"]


def test_reader_refuses_missing_foreign_and_damaged_exports(tmp_path):
    export_embeddings(filled_kv(), tmp_path / "out", max_file_bytes=512)
    with pytest.raises(ValueError, match="does not exist"):
        read_embeddings(tmp_path / "nowhere")
    (tmp_path / "foreign").mkdir()
    with pytest.raises(ValueError, match="not a deeprec-lite export"):
        read_embeddings(tmp_path / "foreign")
    (tmp_path / "foreign" / "manifest.json").write_text(json.dumps({"format": "other"}))
    with pytest.raises(ValueError, match="not a deeprec-lite export"):
        read_embeddings(tmp_path / "foreign")
    files = read_embeddings(tmp_path / "out").manifest["tables"]["t"]["files"]
    damaged = tmp_path / "out" / files[1]["path"]
    data = bytearray(damaged.read_bytes())
    data[len(data) // 2] ^= 1
    damaged.write_bytes(bytes(data))
    with pytest.raises(ValueError, match="checksum mismatch"):
        read_embeddings(tmp_path / "out")
    damaged.unlink()
    with pytest.raises(ValueError, match="missing"):
        read_embeddings(tmp_path / "out")


def test_bad_input_names_the_argument_and_writes_nothing(tmp_path):
    kv = filled_kv()
    out = tmp_path / "out"
    cases = [
        (dict(source=kv, min_freq=-1), "min_freq must be .* got -1"),
        (dict(source=kv, max_staleness=-2), "max_staleness must be .* got -2"),
        (dict(source=kv, min_freq=1.5), "min_freq"),
        (dict(source=kv, tables=["nope"]), "tables: unknown table 'nope'"),
        (dict(source=str(tmp_path / "missing")), "does not exist"),
        (dict(source=str(tmp_path)), "without a TensorFlow checkpoint"),
        (dict(source=42), "source must be"),
    ]
    for kwargs, match in cases:
        source = kwargs.pop("source")
        with pytest.raises(ValueError, match=match):
            export_embeddings(source, out, **kwargs)
    foreign = tf.train.Checkpoint(v=tf.Variable(1.0)).save(str(tmp_path / "foreign" / "c"))
    with pytest.raises(ValueError, match="holds no deeprec-lite KV tables"):
        export_embeddings(foreign, out)
    prefix = tf.train.Checkpoint(table=kv).save(str(tmp_path / "ckpt" / "c"))
    with pytest.raises(ValueError, match="inside the checkpoint directory"):
        export_embeddings(prefix, tmp_path / "ckpt" / "export")
    assert not out.exists() and not (tmp_path / "ckpt" / "export").exists()
    assert sorted(os.listdir(tmp_path)) == ["ckpt", "foreign"]
    left = sorted(os.listdir(tmp_path / "ckpt"))
    assert left[:-2] and all(f.startswith("c-1.data-") for f in left[:-2])
    assert left[-2:] == ["c-1.index", "checkpoint"]


I64_MIN, I64_MAX = -(2 ** 63), 2 ** 63 - 1


@pytest.mark.parametrize("step, max_staleness", [(I64_MAX, 10), (0, 0), (0, I64_MAX),
                                                 (I64_MAX, I64_MAX), (5, 3)])
def test_staleness_filter_is_exact_at_int64_extremes(step, max_staleness):
    """Against Python ints: int64 step - version wraps (I64_MAX - I64_MIN is -1)."""
    versions = np.array([I64_MIN, -1, 0, 2, I64_MAX - 11, I64_MAX - 10, I64_MAX], np.int64)
    result = filter_records(np.ones(7, np.int64), versions, np.ones(7, bool), step, 0,
                            max_staleness)
    want = [step - int(v) <= max_staleness for v in versions]
    np.testing.assert_array_equal(result.keep, want)
    assert result.dropped["stale"] == want.count(False)


def test_global_step_out_of_range_is_refused_by_name(tmp_path):
    kv = drl.KVVariable(2, name="t")
    for step, match in [(-1, r"global_step must be a non-negative integer, got -1"),
                        (2 ** 63, r"global_step must be at most 2\*\*63 - 1")]:
        with pytest.raises(ValueError, match=match):
            export_embeddings(kv, tmp_path / "out", max_staleness=3, global_step=step)
    with pytest.raises(ValueError, match=r"max_staleness must be at most 2\*\*63 - 1"):
        export_embeddings(kv, tmp_path / "out", max_staleness=2 ** 63)
    assert not (tmp_path / "out").exists()
