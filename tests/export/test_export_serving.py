"""export_saved_model: the SavedModel loads in a process that never imports deeprec_lite
(nor its op library) and predicts exactly like the training model on kept keys;
filtered and unseen keys get the default row."""
import json
import os
import subprocess
import sys

import numpy as np
import pytest

from deeprec_lite.kv import TableConfig
from deeprec_lite import CounterFilter, StalenessEviction
from deeprec_lite.compat import keras, tf
from deeprec_lite.data.synthetic.generator import SyntheticCTR, SyntheticConfig
from deeprec_lite.export import export_saved_model, predict_as_served
from deeprec_lite.layers import KVEmbedding
from deeprec_lite.training import optimizers
from deeprec_lite.training.model_tables import kv_tables

# Runs in a clean interpreter: deeprec_lite cannot be imported, and the op library
# must not be mapped into the process after loading.
LOADER = r'''
import json, sys
class Block:
    def find_spec(self, name, path=None, target=None):
        if name.split(".")[0] == "deeprec_lite":
            raise ImportError("deeprec_lite must not be imported here")
sys.meta_path.insert(0, Block())
import numpy as np, tensorflow as tf
model_dir, inputs_path, out_path = sys.argv[1:]
loaded = tf.saved_model.load(model_dir)
request = json.load(open(inputs_path))
out = {}
for name, batch in request["batches"].items():
    args = {k: tf.constant(np.array(v["data"], dtype=v["dtype"])) for k, v in batch.items()}
    out["predict/" + name] = loaded.signatures["serving_default"](**args)["prediction"].numpy()
for table, keys in request["lookups"].items():
    out["lookup/" + table] = loaded.tables[table].lookup(
        tf.constant(np.array(keys["data"], dtype=keys["dtype"]))).numpy()
assert not [m for m in sys.modules if m.split(".")[0] == "deeprec_lite"]
assert "_kv_ops" not in open("/proc/self/maps").read()
np.savez(out_path, **out)
'''


def load_elsewhere(tmp_path, model_dir, batches, lookups):
    """Runs the SavedModel in a clean subprocess; returns its predictions and lookups."""
    def encode(a):
        a = np.asarray(a)
        if a.dtype.kind in "OSU":
            return {"data": [x.decode() if isinstance(x, bytes) else str(x) for x in a.tolist()],
                    "dtype": "str"}
        return {"data": a.tolist(), "dtype": a.dtype.name}

    request = {"batches": {n: {k: encode(v) for k, v in b.items()} for n, b in batches.items()},
               "lookups": {t: encode(k) for t, k in lookups.items()}}
    (tmp_path / "request.json").write_text(json.dumps(request))
    env = {"PATH": os.environ.get("PATH", "/usr/bin:/bin"), "TF_CPP_MIN_LOG_LEVEL": "2"}
    done = subprocess.run([sys.executable, "-c", LOADER, str(model_dir),
                           str(tmp_path / "request.json"), str(tmp_path / "out.npz")],
                          env=env, capture_output=True, text=True, cwd="/", timeout=300)
    assert done.returncode == 0, done.stderr[-3000:]
    return dict(np.load(tmp_path / "out.npz"))


def kept_mask(kv, step, min_freq, max_staleness):
    """Reference filter over kv.export(): (keys, kept bool)."""
    r = kv.export()
    keep = (r.admitted.numpy() & (r.freqs.numpy() >= min_freq)
            & (step - r.versions.numpy() <= max_staleness))
    return r.keys.numpy(), keep


def check_lookups(model, got, filtered_keys, kept_keys, unseen, default):
    tables = kv_tables(model)
    for name, kv in tables.items():
        rows = got[f"lookup/{name}"]
        n_kept, n_filtered = len(kept_keys[name]), len(filtered_keys[name])
        assert n_kept > 0 and n_filtered > 0, name  # the test exercises both cases
        np.testing.assert_array_equal(rows[:n_kept], kv.lookup(kept_keys[name]).numpy())
        np.testing.assert_array_equal(
            rows[n_kept:], np.broadcast_to(np.float32(default), (n_filtered + len(unseen), kv.dim)))


# ----- a functional DeepFM on synthetic data -----------------------------------

def test_functional_deepfm_serves_without_deeprec_lite(tmp_path):
    from deeprec_lite import models

    gen = SyntheticCTR(SyntheticConfig(num_categorical=3, num_numeric=2, vocab_sizes=300, seed=5))
    table = TableConfig(4, admission=CounterFilter(2), eviction=StalenessEviction(10_000))
    model = models.DeepFM(gen.schema, table=table, dnn=(16,))
    model.compile(optimizer=optimizers.Adagrad(0.05), loss="binary_crossentropy")
    model.fit(gen.dataset(6000, 500, day=0), verbose=0)
    model.fit(gen.dataset(2000, 500, day=1), verbose=0)
    step, min_freq, max_staleness = int(model.optimizer.iterations), 4, 3
    manifest = export_saved_model(model, tmp_path / "serving", min_freq=min_freq,
                                  max_staleness=max_staleness)
    assert manifest["global_step"] == step

    rows = gen.generate(3000, day=1)
    fields = [f.name for f in gen.schema.categorical]
    kept_keys, filtered_keys, all_kept = {}, {}, np.ones(rows.num_rows, bool)
    for name, kv in kv_tables(model).items():
        keys, keep = kept_mask(kv, step, min_freq, max_staleness)
        kept_keys[name], filtered_keys[name] = keys[keep], keys[~keep]
        assert manifest["tables"][name]["kept"] == keep.sum()
        field = name.split("_", 1)[1]
        all_kept &= np.isin(rows.columns[field], keys[keep])
    assert 50 < all_kept.sum() < rows.num_rows  # kept-key rows and rows with filtered keys
    batch = {f: rows.columns[f] for f in fields}
    batch.update({f.name: np.log1p(np.nan_to_num(rows.columns[f.name])).astype(np.float32)
                  for f in gen.schema.numeric})
    kept_batch = {k: v[all_kept] for k, v in batch.items()}
    unseen = np.array([-1, -2], np.int64)
    lookups = {n: np.concatenate([kept_keys[n], filtered_keys[n], unseen]) for n in kept_keys}
    got = load_elsewhere(tmp_path, tmp_path / "serving", {"kept": kept_batch, "all": batch},
                         lookups)

    np.testing.assert_array_equal(got["predict/kept"], predict_as_served(model, kept_batch))
    # rows with a filtered key see the default row instead of the trained one
    assert not np.array_equal(got["predict/all"], model.predict(batch, verbose=0))
    check_lookups(model, got, filtered_keys, kept_keys, unseen, 0.0)


# ----- a subclassed model: string keys and a ragged mean-combined feature -------

class StringAndRagged(keras.Model):
    def __init__(self):
        super().__init__()
        self.user = KVEmbedding(TableConfig(4, key_dtype="string", default_value=0.25,
                                            admission=CounterFilter(2)), name="user")
        self.items = KVEmbedding(TableConfig(4, default_value=0.25), combiner="mean", name="items")
        self.out = keras.layers.Dense(1, activation="sigmoid")

    def call(self, inputs, training=None):
        return self.out(tf.concat([self.user(inputs["user"], training=training),
                                   self.items(inputs["items"], training=training)], axis=1))


def ragged_data(n, seed):
    rng = np.random.default_rng(seed)
    users = (rng.zipf(1.3, n) % 500).astype(str)
    lengths = rng.integers(1, 4, n)
    items = rng.zipf(1.3, lengths.sum()) % 500
    labels = ((rng.random(n) < 0.5) ^ (items[np.cumsum(lengths) - 1] % 2 == 0)).astype(np.float32)
    return users, lengths, items, labels


def test_subclassed_string_and_ragged_model_serves_without_deeprec_lite(tmp_path):
    users, lengths, items, labels = ragged_data(2000, 0)
    x = {"user": users, "items": tf.RaggedTensor.from_row_lengths(items, lengths)}
    model = StringAndRagged()
    model.compile(optimizer=optimizers.Adagrad(0.1), loss="binary_crossentropy")
    model.fit(x, labels, batch_size=100, epochs=2, verbose=0)
    step, min_freq = int(model.optimizer.iterations), 6
    export_saved_model(model, tmp_path / "serving", min_freq=min_freq)

    kept_keys, filtered_keys = {}, {}
    for name, kv in kv_tables(model).items():
        keys, keep = kept_mask(kv, step, min_freq, 10 ** 9)
        kept_keys[name], filtered_keys[name] = keys[keep], keys[~keep]
    row_of_item = np.repeat(np.arange(len(users)), lengths)
    item_ok = np.isin(items, kept_keys["items"])
    rows_ok = np.isin(users.astype(bytes), kept_keys["user"]) & (
        np.bincount(row_of_item, ~item_ok, len(users)) == 0)
    assert 20 < rows_ok.sum() < len(users)
    ok_lengths = lengths[rows_ok]
    ok_items = items[np.repeat(rows_ok, lengths)]
    batches = {"kept": {"user": users[rows_ok], "items_values": ok_items,
                        "items_row_lengths": ok_lengths},
               "all": {"user": users, "items_values": items, "items_row_lengths": lengths}}
    unseen = {"user": np.array([b"never-seen"]), "items": np.array([10 ** 15])}
    lookups = {n: np.concatenate([kept_keys[n], filtered_keys[n], unseen[n]]) for n in kept_keys}
    got = load_elsewhere(tmp_path, tmp_path / "serving", batches, lookups)

    kept_x = {"user": users[rows_ok], "items": tf.RaggedTensor.from_row_lengths(ok_items, ok_lengths)}
    np.testing.assert_array_equal(got["predict/kept"], predict_as_served(model, kept_x))
    assert not np.array_equal(got["predict/all"], model.predict(x, verbose=0))
    for name, kv in kv_tables(model).items():
        rows = got[f"lookup/{name}"]
        n = len(kept_keys[name])
        assert n > 0 and len(filtered_keys[name]) > 0
        np.testing.assert_array_equal(rows[:n], kv.lookup(kept_keys[name]).numpy())
        np.testing.assert_array_equal(rows[n:], np.full((len(rows) - n, 4), 0.25, np.float32))


def test_set_serving_table_switches_inference_lookups_only():
    layer = KVEmbedding(TableConfig(2, initializer="uniform"))
    layer(tf.constant([1, 2], tf.int64), training=True)

    class Fixed:
        def lookup(self, keys):
            return tf.fill([tf.size(keys), 2], 7.0)

    layer.set_serving_table(Fixed())
    np.testing.assert_array_equal(layer(tf.constant([1, 5], tf.int64)), np.full((2, 2), 7.0))
    assert not np.all(layer(tf.constant([1], tf.int64), training=True).numpy() == 7.0)
    layer.set_serving_table(None)
    np.testing.assert_array_equal(layer(tf.constant([1], tf.int64)), layer.kv.lookup([1]))


def test_bad_input_is_refused(tmp_path):
    model = StringAndRagged()
    with pytest.raises(ValueError, match="min_freq"):
        export_saved_model(model, tmp_path / "a", min_freq=-1)
    with pytest.raises(ValueError, match="max_staleness"):
        export_saved_model(model, tmp_path / "a", max_staleness=-5)
    with pytest.raises(ValueError, match="input spec"):
        export_saved_model(model, tmp_path / "a")  # never called
    with pytest.raises(ValueError, match="Keras model"):
        export_saved_model(str(tmp_path), tmp_path / "a")
    assert not (tmp_path / "a").exists()


def test_a_batch_predict_as_served_would_cast_or_miss_is_named():
    inputs = {n: keras.Input((), dtype=tf.int64, name=n) for n in ("a", "b")}
    out = keras.layers.Concatenate()([KVEmbedding(2, name=f"emb_{n}")(x)
                                      for n, x in inputs.items()])
    model = keras.Model(inputs, keras.layers.Dense(1)(out))
    ids = np.array([8458032196122031070, 3], np.int64)  # a float64 rounds the first to ...104
    predict_as_served(model, {"a": ids, "b": ids})
    with pytest.raises(ValueError, match=r"inputs\['a'\] must be int64, got float64 values"):
        predict_as_served(model, {"a": ids.astype(np.float64), "b": ids})
    with pytest.raises(ValueError, match=r"inputs\['b'\] must be int64, got float32 values"):
        predict_as_served(model, {"a": ids, "b": tf.cast(ids, tf.float32)})
    with pytest.raises(ValueError, match=r"inputs: the batch has no \['b'\]"):
        predict_as_served(model, {"a": ids})


def test_hashed_id_inputs_serve_raw_string_ids(tmp_path):
    from deeprec_lite.data import hash_string_ids

    users, lengths, items, labels = ragged_data(1500, 2)
    items = items.astype(str)
    inputs = {"user": keras.Input((), dtype=tf.int64, name="user"),
              "items": keras.Input((None,), dtype=tf.int64, name="items", ragged=True)}
    user = KVEmbedding(TableConfig(4, default_value=0.25), name="user_emb")(inputs["user"])
    item = KVEmbedding(TableConfig(4, default_value=0.25), combiner="mean",
                       name="items_emb")(inputs["items"])
    model = keras.Model(inputs, keras.layers.Dense(1, activation="sigmoid")(
        tf.concat([user, item], axis=1)))
    model.compile(optimizer=optimizers.Adagrad(0.1), loss="binary_crossentropy")
    raw = {"user": tf.constant(users), "items": tf.RaggedTensor.from_row_lengths(items, lengths)}
    hashed = {k: hash_string_ids(v) for k, v in raw.items()}  # what the readers give
    model.fit(hashed, labels, batch_size=100, epochs=2, verbose=0)
    with pytest.raises(ValueError, match=r"hashed_id_inputs: \['nope'\] are not inputs"):
        export_saved_model(model, tmp_path / "bad", hashed_id_inputs=["nope"])
    assert not (tmp_path / "bad").exists()
    export_saved_model(model, tmp_path / "serving", hashed_id_inputs=["user", "items"])

    batches = {"all": {"user": users, "items_values": items, "items_row_lengths": lengths}}
    got = load_elsewhere(tmp_path, tmp_path / "serving", batches, {})  # no deeprec_lite there
    want = predict_as_served(model, hashed)  # every key kept: the trained model exactly
    np.testing.assert_array_equal(got["predict/all"], want)
    np.testing.assert_array_equal(
        predict_as_served(model, raw, hashed_id_inputs=["user", "items"]), want)
