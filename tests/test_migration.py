"""Warm start: migration report, KV and dense migration, shape changes, and exact
continuation when nothing changed."""
import numpy as np
import pytest

from deeprec_lite import KVVariable
from deeprec_lite.compat import keras, tf
from deeprec_lite.kv import TableConfig, policies, snapshots, sparse_optimizers
from deeprec_lite.layers import KVEmbedding
from deeprec_lite.migration import (MIGRATED, NEW, PARTIAL, UNUSED, _migrate_table,
                                    warm_start)
from deeprec_lite.training import checkpoints, optimizers
from kv_reference import records_by_key


def make_model(features=("a", "b"), dim=4, hidden=8, key_dtype="int64", admission=None):
    dtype = tf.int64 if key_dtype == "int64" else tf.string
    inputs = {f: keras.Input((), dtype=dtype, name=f) for f in features}
    embedded = [KVEmbedding(TableConfig(dim, key_dtype=key_dtype, initializer="uniform", seed=i,
                                        admission=admission), name=f"emb_{f}")(inputs[f])
                for i, f in enumerate(features)]
    h = keras.layers.Dense(hidden, activation="relu", name="hidden")(
        keras.layers.Concatenate()(embedded))
    out = keras.layers.Dense(1, activation="sigmoid", name="out")(h)
    model = keras.Model(inputs, out)
    model.compile(optimizer=optimizers.KVOptimizer(sparse_optimizers.Adagrad(0.1),
                                                   keras.optimizers.Adam(0.01)),
                  loss="binary_crossentropy")
    return model


def make_data(features=("a", "b"), n=256, seed=0):
    rng = np.random.default_rng(seed)
    x = {f: rng.integers(0, 40, n) for f in features}
    y = ((x[features[0]] % 3 == 0) ^ (x[features[-1]] % 2 == 0)).astype(np.float32)
    return x, y


def continue_both(old, new, x, y):
    for model in (old, new):
        model.fit(x, y, batch_size=32, epochs=1, shuffle=False, verbose=0)
    np.testing.assert_array_equal(new.predict(x, verbose=0), old.predict(x, verbose=0))


def sorted_records(kv):
    got = records_by_key(kv.export())
    return {k: tuple(np.asarray(x).tolist() for x in v) for k, v in got.items()}


def test_unchanged_model_with_slots_continues_exactly_like_the_checkpoint(tmp_path):
    x, y = make_data()
    old = make_model()
    old.fit(x, y, batch_size=32, epochs=2, shuffle=False, verbose=0)
    checkpoints.save(old, str(tmp_path / "ckpt"))

    new = make_model()
    new.optimizer.build(new.trainable_variables)
    report = warm_start(new, str(tmp_path / "ckpt"), migrate_slots=True)
    assert report.names(NEW) == [] and report.names(UNUSED) == []
    assert int(new.optimizer.iterations) == int(old.optimizer.iterations) == 16
    continue_both(old, new, x, y)
    for f in ("a", "b"):
        assert sorted_records(new.get_layer(f"emb_{f}").kv) == \
            sorted_records(old.get_layer(f"emb_{f}").kv)


def test_new_feature_changed_layer_and_filters_are_reported(tmp_path):
    x, y = make_data()
    old = make_model()
    old.fit(x, y, batch_size=32, epochs=2, verbose=0)
    old.save(str(tmp_path / "saved"))  # a Keras SavedModel works as a source too

    new = make_model(features=("a", "b", "c"), dim=6, hidden=12)
    new.optimizer.build(new.trainable_variables)
    report = warm_start(new, str(tmp_path / "saved"), allow_dim_change=True,
                        allow_shape_change=True, min_freq=4)
    assert report.entries["table:emb_c"][0] == NEW
    assert report.entries["table:emb_a"][0] == PARTIAL
    assert "dim 4 -> 6" in report.entries["table:emb_a"][1]
    assert report.entries["hidden/kernel"][0] == PARTIAL
    assert report.entries["out/bias"][0] == MIGRATED
    # the optimizer's state is carried by default, with the weights' partial-copy rule
    assert report.entries["optimizer/momentums/hidden/kernel"][0] == PARTIAL
    assert report.entries["optimizer/iterations"][0] == MIGRATED

    old_rec = records_by_key(old.get_layer("emb_a").kv.export())
    new_rec = records_by_key(new.get_layer("emb_a").kv.export())
    assert set(new_rec) == {k for k, r in old_rec.items() if r[1] >= 4}
    fresh = make_model(features=("a", "b", "c"), dim=6, hidden=12).get_layer("emb_a").kv
    for key, (value, freq, version, _, _) in new_rec.items():
        np.testing.assert_array_equal(value[:4], old_rec[key][0])
        np.testing.assert_array_equal(value[4:], fresh.lookup_or_insert([key])[0].numpy()[0, 4:])
        assert (freq, version) == old_rec[key][1:3]
    old_kernel = old.get_layer("hidden").kernel.numpy()
    new_kernel = new.get_layer("hidden").kernel.numpy()
    np.testing.assert_array_equal(new_kernel[:8, :8], old_kernel[:8, :8])
    new.fit(make_data(("a", "b", "c"))[0], y, batch_size=32, verbose=0)


def test_rename_include_exclude_and_dropped_features(tmp_path):
    x, y = make_data()
    old = make_model()
    old.fit(x, y, batch_size=32, verbose=0)
    new = make_model(features=("user",))
    report = warm_start(new, old, rename={"emb_a": "emb_user"}, exclude=["^out/"])
    assert report.entries["table:emb_user"][0] == MIGRATED
    assert report.entries["table:emb_b"][0] == UNUSED
    assert report.entries["out/kernel"][0] == NEW
    migrated, source = (sorted_records(m.kv) for m in (new.get_layer("emb_user"),
                                                        old.get_layer("emb_a")))
    assert {k: r[:4] for k, r in migrated.items()} == {k: r[:4] for k, r in source.items()}


def test_kv_slots_of_a_changed_dim_keep_their_common_columns(tmp_path):
    x, y = make_data()
    old = make_model()
    old.fit(x, y, batch_size=32, epochs=2, verbose=0)
    checkpoints.save(old, str(tmp_path / "ckpt"))
    new = make_model(dim=6)
    new.optimizer.build(new.trainable_variables)
    report = warm_start(new, str(tmp_path / "ckpt"), allow_dim_change=True,
                        allow_shape_change=True)
    assert "optimizer slots ['accumulator'] carried" in report.entries["table:emb_a"][1]
    old_rec = records_by_key(old.get_layer("emb_a").kv.export())
    for key, (_, _, _, slots, _) in records_by_key(new.get_layer("emb_a").kv.export()).items():
        np.testing.assert_array_equal(slots[:, :4], old_rec[key][3])
        np.testing.assert_array_equal(slots[:, 4:], np.float32(0.1))  # Adagrad's initial value


def test_optimizer_state_can_be_reset(tmp_path):
    x, y = make_data()
    old = make_model()
    old.fit(x, y, batch_size=32, verbose=0)
    new = make_model()
    new.optimizer.build(new.trainable_variables)
    report = warm_start(new, old, migrate_slots=False)
    assert report.entries["optimizer/iterations"] == (NEW, "reset (migrate_slots=False)")
    assert report.entries["optimizer/momentums/hidden/kernel"][0] == NEW
    assert "optimizer slots reset (migrate_slots=False)" in report.entries["table:emb_a"][1]
    assert int(new.optimizer.iterations) == 0
    assert all(r[3] == [] for r in sorted_records(new.get_layer("emb_a").kv).values())


def test_bad_sources_and_mismatched_key_dtypes(tmp_path):
    new = make_model()
    with pytest.raises(ValueError, match="source must be a keras.Model or an existing directory"):
        warm_start(new, str(tmp_path / "missing"))
    (tmp_path / "foreign").mkdir()
    with pytest.raises(ValueError, match="neither a deeprec-lite checkpoint directory"):
        warm_start(new, str(tmp_path / "foreign"))
    with pytest.raises(ValueError, match="min_freq must be a non-negative integer or None, got -1"):
        warm_start(new, make_model(), min_freq=-1)
    strings = make_model(key_dtype="string")
    with pytest.raises(ValueError, match="has string keys but the source table 'emb_a' has int64"):
        warm_start(strings, make_model())
    with pytest.raises(ValueError, match="pass allow_dim_change=True"):
        warm_start(make_model(dim=5), make_model())


def test_warm_start_from_an_embeddings_export_migrates_the_tables(tmp_path):
    from deeprec_lite.export import export_embeddings

    x, y = make_data()
    old = make_model()
    old.fit(x, y, batch_size=32, epochs=2, verbose=0)
    export_embeddings(old, str(tmp_path / "emb"), min_freq=1, max_staleness=1000)
    new = make_model()
    report = warm_start(new, str(tmp_path / "emb"), min_freq=5)
    assert report.entries["table:emb_a"][0] == PARTIAL
    assert report.entries["hidden/kernel"][0] == NEW  # an export holds tables only
    old_rec = records_by_key(old.get_layer("emb_a").kv.export())
    new_rec = records_by_key(new.get_layer("emb_a").kv.export())
    assert set(new_rec) == {k for k, r in old_rec.items() if r[1] >= 5}
    for key, record in new_rec.items():
        np.testing.assert_array_equal(record[0], old_rec[key][0])
        assert record[1:3] == old_rec[key][1:3]


def test_keys_not_admitted_yet_keep_their_counts(tmp_path):
    x, y = make_data()
    counter = policies.CounterFilter(min_count=8)  # ~6 sightings per key and epoch
    old = make_model(admission=counter)
    old.fit(x, y, batch_size=32, epochs=1, shuffle=False, verbose=0)
    checkpoints.save(old, str(tmp_path / "ckpt"))
    old_records = records_by_key(old.get_layer("emb_a").kv.export())
    pending = sum(not r[4] for r in old_records.values())
    assert 0 < pending < len(old_records)

    new = make_model(admission=counter)
    new.optimizer.build(new.trainable_variables)
    status, detail = warm_start(new, str(tmp_path / "ckpt"), migrate_slots=True).entries[
        "table:emb_a"]
    assert status == MIGRATED and f"{pending} keys not admitted yet" in detail
    assert sorted_records(new.get_layer("emb_a").kv) == sorted_records(old.get_layer("emb_a").kv)
    continue_both(old, new, x, y)  # the same keys get admitted at the same step

    # Into a table of another dim: admitted keys keep their columns and get the new
    # table's own initial values in the others (the new table does not admit them yet).
    wider = make_model(dim=6, admission=counter)
    status, detail = warm_start(wider, str(tmp_path / "ckpt"), allow_dim_change=True).entries[
        "table:emb_a"]
    assert status == PARTIAL and f"{pending} keys not admitted yet" in detail
    new_records = records_by_key(wider.get_layer("emb_a").kv.export())
    assert {k: r[1:3] + r[4:] for k, r in new_records.items()} == \
        {k: r[1:3] + r[4:] for k, r in old_records.items()}
    admitted = [k for k, r in old_records.items() if r[4]]
    fresh = KVVariable(6, initializer="uniform", seed=0).lookup_or_insert(admitted)[0].numpy()
    assert np.all(fresh[:, 4:] != 0)
    for key, row in zip(admitted, fresh):
        np.testing.assert_array_equal(new_records[key][0][:4], old_records[key][0])
        np.testing.assert_array_equal(new_records[key][0][4:], row[4:])

    # A table without admission cannot hold them: reported.
    status, detail = warm_start(make_model(), str(tmp_path / "ckpt")).entries["table:emb_a"]
    assert status == PARTIAL and "not admitted yet not migrated" in detail


def test_a_bloom_filter_moves_whole_to_a_filter_of_the_same_shape(tmp_path):
    x, y = make_data()
    bloom = policies.BloomFilter(min_count=8, expected_keys=100, false_positive_rate=0.01)
    old = make_model(admission=bloom)
    old.fit(x, y, batch_size=32, epochs=1, shuffle=False, verbose=0)
    old_counts = old.get_layer("emb_a").kv.export().bloom_counts.numpy()
    assert old_counts.any()

    new = make_model(admission=bloom)
    new.optimizer.build(new.trainable_variables)
    status, detail = warm_start(new, old, migrate_slots=True).entries["table:emb_a"]
    assert status == MIGRATED and "Bloom filter counts" in detail
    np.testing.assert_array_equal(new.get_layer("emb_a").kv.export().bloom_counts.numpy(),
                                  old_counts)
    continue_both(old, new, x, y)

    other = policies.BloomFilter(min_count=8, expected_keys=200, false_positive_rate=0.01)
    status, detail = warm_start(make_model(admission=other), old).entries["table:emb_a"]
    assert status == PARTIAL and "not admitted yet not migrated" in detail


def test_staleness_filter_is_exact_at_int64_extremes():
    """A source table (as a checkpoint written before versions were checked could hold)
    with versions at the int64 extremes, filtered against Python ints."""
    i64_min, i64_max = -(2 ** 63), 2 ** 63 - 1
    versions = np.array([i64_min, -1, 0, i64_max - 11, i64_max - 10, i64_max], np.int64)
    n = len(versions)
    chunk = snapshots.RecordChunk(np.arange(n, dtype=np.int64), np.ones((n, 2), np.float32),
                                  np.zeros((n, 0, 2), np.float32), np.ones(n, np.int64),
                                  versions, np.zeros(0, np.int64), np.zeros(0, np.int64),
                                  np.zeros(0, np.int64))
    src = snapshots.TableSnapshot("t", "int64", 2, i64_max, (), (), lambda: iter([chunk]),
                                  lambda: np.zeros(0, np.int32), n)
    new_kv = KVVariable(2, name="t")
    _migrate_table(src, new_kv, slots=False, min_freq=None, max_staleness=10,
                   allow_dim_change=False)
    want = {k: int(v) for k, v in enumerate(versions) if i64_max - int(v) <= 10}
    assert {k: r[2] for k, r in records_by_key(new_kv.export()).items()} == want
