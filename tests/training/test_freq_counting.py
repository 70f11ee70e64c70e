"""freq_counting: what a key's freq counts over several epochs, pinned by hand-computed
occurrence counts, and what it means for admission, the export filter and save / load."""
import numpy as np
import pytest

from deeprec_lite.compat import keras, tf
from deeprec_lite.export import export_embeddings, read_embeddings
from deeprec_lite.kv import KVVariable, TableConfig
from deeprec_lite.kv.policies import CounterFilter
from deeprec_lite.layers import KVEmbedding
from deeprec_lite.training import FreqCounting, KVModel, checkpoints, optimizers
from kv_reference import records_by_key

# key k occurs OCCURRENCES[k] times in the data, so after 3 epochs "every_epoch"
# counts 3 x that and "first_epoch" counts exactly that.
OCCURRENCES = {11: 1, 22: 1, 33: 2, 44: 3, 55: 5}
EPOCHS = 3


def data():
    ids = np.repeat(np.array(list(OCCURRENCES), np.int64), list(OCCURRENCES.values()))
    ids = np.random.default_rng(0).permutation(ids)
    labels = (ids > 30).astype(np.float32)
    return ids, labels


def model_with(table, model_class=KVModel, name="emb"):
    ids = keras.Input((), dtype=tf.int64, name="ids")
    emb = KVEmbedding(table, name=name)(ids)
    out = keras.layers.Dense(1, activation="sigmoid", kernel_initializer="ones", name="out")(emb)
    model = model_class(ids, out)
    model.compile(optimizer=optimizers.Adagrad(0.1), loss="binary_crossentropy")
    return model


def trained_records(freq_counting, admission=None, num_shards=None, epochs=EPOCHS):
    ids, labels = data()
    model = model_with(TableConfig(4, initializer="uniform", seed=3, admission=admission,
                                   num_shards=num_shards, freq_counting=freq_counting))
    model.fit(ids, labels, batch_size=4, epochs=epochs, shuffle=False, verbose=0)
    return model, records_by_key(model.get_layer("emb").kv.export())


@pytest.mark.parametrize("num_shards", [None, 2])
def test_first_epoch_freq_is_the_occurrences_in_the_data_and_training_is_the_same(num_shards):
    _, every = trained_records("every_epoch", num_shards=num_shards)
    _, first = trained_records("first_epoch", num_shards=num_shards)
    assert {k: r[1] for k, r in every.items()} == {k: EPOCHS * n for k, n in OCCURRENCES.items()}
    assert {k: r[1] for k, r in first.items()} == OCCURRENCES
    for key in OCCURRENCES:  # values, versions and slots: every epoch trained alike
        np.testing.assert_array_equal(first[key][0], every[key][0])
        np.testing.assert_array_equal(first[key][3], every[key][3])
        assert first[key][2] == every[key][2] > 0


def test_admission_and_export_filter_mean_seen_n_times_in_the_data(tmp_path):
    # CounterFilter(2): "every_epoch" admits the keys seen once in their second
    # epoch (freq 2); "first_epoch" never admits them.
    every_model, every = trained_records("every_epoch", admission=CounterFilter(2))
    first_model, first = trained_records("first_epoch", admission=CounterFilter(2))
    assert {k: r[4] for k, r in every.items()} == {k: True for k in OCCURRENCES}
    assert {k: r[4] for k, r in first.items()} == {k: n >= 2 for k, n in OCCURRENCES.items()}
    for key in (11, 22):
        np.testing.assert_array_equal(first_model.get_layer("emb").kv.lookup([key])[0],
                                      np.zeros(4, np.float32))

    for name, model in (("every", every_model), ("first", first_model)):
        export_embeddings(model, tmp_path / name, min_freq=3)
    kept = {name: read_embeddings(tmp_path / name).numpy("emb")
            for name in ("every", "first")}
    assert sorted(kept["every"][0].tolist()) == sorted(OCCURRENCES)
    assert sorted(kept["first"][0].tolist()) == [44, 55]
    np.testing.assert_array_equal(kept["first"][2], [OCCURRENCES[k] for k in kept["first"][0]])


def test_each_fit_counts_its_first_epoch_so_days_add_up():
    ids, labels = data()
    model = model_with(TableConfig(4, freq_counting="first_epoch"))
    for _ in range(2):  # two days over the same data, 2 epochs each
        model.fit(ids, labels, batch_size=4, epochs=2, shuffle=False, verbose=0)
    freqs = {k: r[1] for k, r in records_by_key(model.get_layer("emb").kv.export()).items()}
    assert freqs == {k: 2 * n for k, n in OCCURRENCES.items()}
    model.get_layer("emb").kv.lookup_or_insert([11])  # counting is on again after fit
    assert records_by_key(model.get_layer("emb").kv.export())[11][1] == 3


def test_a_plain_keras_model_needs_the_callback():
    ids, labels = data()
    plain = model_with(TableConfig(4, freq_counting="first_epoch"), model_class=keras.Model,
                       name="user_id")
    with pytest.raises(ValueError, match="'user_id' has freq_counting='first_epoch'.*FreqCounting"):
        plain.fit(ids, labels, batch_size=4, epochs=1, verbose=0)

    plain = model_with(TableConfig(4, freq_counting="first_epoch"), model_class=keras.Model)
    plain.fit(ids, labels, batch_size=4, epochs=EPOCHS, shuffle=False, verbose=0,
              callbacks=[FreqCounting()])
    freqs = {k: r[1] for k, r in records_by_key(plain.get_layer("emb").kv.export()).items()}
    assert freqs == OCCURRENCES
    # an every_epoch table in a plain model needs nothing
    model_with(TableConfig(4), model_class=keras.Model).fit(ids, labels, epochs=1, verbose=0)


def test_kv_model_and_freq_counting_save_and_load(tmp_path):
    ids, labels = data()
    model = model_with(TableConfig(4, freq_counting="first_epoch"))
    model.fit(ids, labels, batch_size=4, epochs=2, shuffle=False, verbose=0)
    model.save(str(tmp_path / "model"))
    loaded = keras.models.load_model(str(tmp_path / "model"))
    assert type(loaded) is KVModel
    assert loaded.get_layer("emb").kv.freq_counting == "first_epoch"
    np.testing.assert_array_equal(loaded.predict(ids, verbose=0), model.predict(ids, verbose=0))

    assert type(keras.models.model_from_json(model.to_json())) is KVModel
    checkpoints.save(model, tmp_path / "ckpt")
    restored = checkpoints.load(tmp_path / "ckpt")
    assert type(restored) is KVModel
    restored.compile(optimizer=restored.optimizer, loss="binary_crossentropy")
    restored.fit(ids, labels, batch_size=4, epochs=2, shuffle=False, verbose=0)
    freqs = {k: r[1] for k, r in records_by_key(restored.get_layer("emb").kv.export()).items()}
    assert freqs == {k: 2 * n for k, n in OCCURRENCES.items()}


def test_bad_freq_counting_is_named():
    with pytest.raises(ValueError, match="freq_counting must be one of .* got 'per_step'"):
        TableConfig(4, freq_counting="per_step")
    with pytest.raises(ValueError, match="freq_counting must be one of .* got 1"):
        KVVariable(4, freq_counting=1)
    with pytest.raises(ValueError, match="counting must be a bool, got 'no'"):
        KVVariable(4).set_freq_counting("no")
    config = TableConfig(4, freq_counting="first_epoch")
    assert TableConfig.from_config(config.get_config()) == config
