"""model.fit on KV embeddings: equivalence with a dense Embedding, model kinds,
inference never inserting, and save / restore / continue round trips."""
import numpy as np
import pytest

from deeprec_lite.compat import keras, tf
from deeprec_lite.kv import TableConfig, sparse_optimizers
from deeprec_lite.layers import KVEmbedding
from deeprec_lite.training import callbacks, optimizers
from kv_reference import records_by_key

VOCAB = np.array([-(2 ** 63), 2 ** 63 - 1, 0, 5, 77, 10 ** 12, -3, 42], np.int64)


def make_data(n=512, seed=0):
    rng = np.random.default_rng(seed)
    ids = rng.choice(VOCAB, n)
    labels = (np.isin(ids, VOCAB[::2]) ^ (rng.random(n) < 0.1)).astype(np.float32)
    return ids, labels


def kv_model(dim=4):
    ids = keras.Input((), dtype=tf.int64, name="ids")
    emb = KVEmbedding(TableConfig(dim, initializer="uniform", seed=7), name="emb")(ids)
    out = keras.layers.Dense(1, activation="sigmoid", kernel_initializer="ones", name="out")(emb)
    return keras.Model(ids, out)


def sorted_records(kv):
    got = records_by_key(kv.export())
    return {k: tuple(np.asarray(x).tolist() for x in v) for k, v in got.items()}


@pytest.mark.parametrize("make_optimizer, dense_optimizer", [
    (lambda: optimizers.SGD(0.5), lambda: keras.optimizers.SGD(0.5)),
    (lambda: optimizers.Adagrad(0.3), lambda: keras.optimizers.Adagrad(0.3)),
])
def test_fit_equals_dense_embedding_with_the_same_optimizer(make_optimizer, dense_optimizer):
    ids, labels = make_data()
    model = kv_model()
    model.compile(optimizer=make_optimizer(), loss="binary_crossentropy")
    kv = model.get_layer("emb").kv
    initial = kv.lookup_or_insert(VOCAB, counts=tf.zeros(len(VOCAB), tf.int64))[0].numpy()

    index = {k: i for i, k in enumerate(VOCAB)}
    dense_ids = keras.Input((), dtype=tf.int64)
    emb = keras.layers.Embedding(len(VOCAB), 4)
    out = keras.layers.Dense(1, activation="sigmoid", kernel_initializer="ones")(emb(dense_ids))
    reference = keras.Model(dense_ids, out)
    emb.set_weights([initial])
    reference.compile(optimizer=dense_optimizer(), loss="binary_crossentropy")
    positions = np.array([index[k] for k in ids])

    model.fit(ids, labels, batch_size=64, epochs=2, shuffle=False, verbose=0)
    reference.fit(positions, labels, batch_size=64, epochs=2, shuffle=False, verbose=0)
    np.testing.assert_allclose(kv.lookup(VOCAB), emb.get_weights()[0], rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(model.get_layer("out").get_weights()[0],
                               reference.layers[-1].get_weights()[0], rtol=1e-5, atol=1e-6)
    records = records_by_key(kv.export())
    counts = {k: int(c) for k, c in zip(*np.unique(ids, return_counts=True))}
    assert {k: records[k][1] for k in VOCAB} == {k: 2 * counts.get(k, 0) for k in VOCAB}
    assert int(kv.step) == int(model.optimizer.iterations) == 16
    assert max(r[2] for r in records.values()) == 16


class SubclassedModel(keras.Model):
    def __init__(self):
        super().__init__()
        self.user = KVEmbedding(TableConfig(4, key_dtype="string"), name="user")
        self.items = KVEmbedding(4, combiner="mean", name="items")
        self.out = keras.layers.Dense(1, activation="sigmoid")

    def call(self, inputs, training=None):
        return self.out(tf.concat([self.user(inputs["user"], training=training),
                                   self.items(inputs["items"], training=training)], axis=1))


def string_and_ragged_data(n=256):
    rng = np.random.default_rng(1)
    users = rng.integers(0, 20, n)
    lengths = rng.integers(0, 4, n)
    items = tf.RaggedTensor.from_row_lengths(rng.integers(0, 30, lengths.sum()), lengths)
    labels = (users % 2).astype(np.float32)
    return {"user": users.astype(str), "items": items}, labels


def test_subclassed_model_with_string_and_ragged_ids_trains():
    x, y = string_and_ragged_data()
    model = SubclassedModel()
    model.compile(optimizer=optimizers.Adam(0.05), loss="binary_crossentropy")
    history = model.fit(x, y, batch_size=32, epochs=4, verbose=0)
    assert history.history["loss"][-1] < 0.6 * history.history["loss"][0]
    assert int(model.user.kv.size()) == 20
    assert model.items.kv.slot_names == ("m", "v")


def test_sequential_model_trains_with_an_own_table_optimizer():
    ids, labels = make_data()
    model = keras.Sequential([
        keras.Input((), dtype=tf.int64),
        KVEmbedding(4, optimizer=sparse_optimizers.Ftrl(0.5)),
        keras.layers.Dense(1, activation="sigmoid")])
    model.compile(optimizer=optimizers.Adagrad(0.1), loss="binary_crossentropy")
    history = model.fit(ids, labels, batch_size=64, epochs=5, verbose=0)
    assert history.history["loss"][-1] < history.history["loss"][0]
    assert model.layers[0].kv.slot_names == ("z", "n")


def test_tfrs_ranking_model_trains():
    tfrs = pytest.importorskip("tensorflow_recommenders")

    class Ranker(tfrs.Model):
        def __init__(self):
            super().__init__()
            self.emb = KVEmbedding(4, name="emb")
            self.head = keras.layers.Dense(1)
            self.task = tfrs.tasks.Ranking(loss=keras.losses.BinaryCrossentropy(from_logits=True))

        def call(self, features, training=None):
            return self.head(self.emb(features["ids"], training=training))

        def compute_loss(self, features, training=False):
            return self.task(labels=features["label"], predictions=self(features, training=training))

    ids, labels = make_data()
    data = tf.data.Dataset.from_tensor_slices({"ids": ids, "label": labels}).batch(64)
    model = Ranker()
    model.compile(optimizer=optimizers.Adagrad(0.3))
    history = model.fit(data, epochs=4, verbose=0)
    assert history.history["loss"][-1] < history.history["loss"][0]
    assert int(model.emb.kv.size()) == len(VOCAB)


def test_predict_and_evaluate_never_insert_or_count():
    ids, labels = make_data()
    model = kv_model()
    model.compile(optimizer=optimizers.SGD(0.1), loss="binary_crossentropy")
    model.fit(ids[:100], labels[:100], batch_size=50, verbose=0)
    kv = model.get_layer("emb").kv
    before = sorted_records(kv)
    unseen = np.array([123456, 654321], np.int64)
    model.predict(np.concatenate([ids, unseen]), verbose=0)
    model.evaluate(ids, labels, verbose=0)
    model(unseen)
    assert sorted_records(kv) == before


def test_pooling_and_sequence_match_numpy():
    layer = KVEmbedding(TableConfig(3, initializer="uniform"), combiner="sqrtn")
    ragged = tf.ragged.constant([[1, 2, 2], [], [3]], dtype=tf.int64)
    weights = tf.ragged.constant([[1.0, 2.0, 0.5], [], [3.0]])
    table = {k: layer.kv.lookup_or_insert([k])[0].numpy()[0] for k in (1, 2, 3)}
    got = layer(ragged, weights=weights).numpy()
    want0 = (table[1] * 1.0 + table[2] * 2.0 + table[2] * 0.5) / np.sqrt(1 + 4 + 0.25)
    np.testing.assert_allclose(got, [want0, np.zeros(3), table[3]], rtol=1e-6)
    sparse = tf.sparse.from_dense(tf.constant([[1, 0], [3, 2]], tf.int64))
    mean = KVEmbedding(3, combiner="mean", shared_table=layer.kv)(sparse).numpy()
    np.testing.assert_allclose(mean, [table[1], (table[3] + table[2]) / 2], rtol=1e-6)

    seq = KVEmbedding(3, sequence=True, max_length=4, shared_table=layer.kv)
    out = seq(ragged)
    assert out.shape == (3, 4, 3)
    np.testing.assert_array_equal(seq.compute_mask(ragged).numpy(),
                                  [[1, 1, 1, 0], [0, 0, 0, 0], [1, 0, 0, 0]])
    np.testing.assert_allclose(out.numpy()[0, :3], [table[1], table[2], table[2]], rtol=1e-6)


def test_save_load_and_continue_training_identically(tmp_path):
    ids, labels = make_data()
    first = kv_model()
    first.compile(optimizer=optimizers.Adagrad(0.2), loss="binary_crossentropy")
    first.fit(ids, labels, batch_size=64, epochs=1, shuffle=False, verbose=0)
    first.save_weights(str(tmp_path / "weights"))
    first.save(str(tmp_path / "model"))

    loaded = keras.models.load_model(str(tmp_path / "model"))
    np.testing.assert_array_equal(loaded.predict(ids, verbose=0), first.predict(ids, verbose=0))
    assert sorted_records(loaded.get_layer("emb").kv) == sorted_records(first.get_layer("emb").kv)

    second = kv_model()
    second.compile(optimizer=optimizers.Adagrad(0.2), loss="binary_crossentropy")
    second.load_weights(str(tmp_path / "weights"))
    for model in (first, second):
        model.fit(ids, labels, batch_size=64, epochs=1, shuffle=False, verbose=0)
    np.testing.assert_array_equal(second.predict(ids, verbose=0), first.predict(ids, verbose=0))
    assert sorted_records(second.get_layer("emb").kv) == sorted_records(first.get_layer("emb").kv)
    assert int(second.optimizer.iterations) == int(first.optimizer.iterations) == 16


def test_model_checkpoint_and_backup_and_restore(tmp_path):
    ids, labels = make_data()
    model = kv_model()
    model.compile(optimizer=optimizers.Adagrad(0.2), loss="binary_crossentropy")
    checkpoint = keras.callbacks.ModelCheckpoint(str(tmp_path / "ckpt"), save_weights_only=True)
    backup = keras.callbacks.BackupAndRestore(str(tmp_path / "backup"))
    model.fit(ids, labels, batch_size=64, epochs=2, shuffle=False, verbose=0,
              callbacks=[checkpoint, backup])
    restored = kv_model()
    restored.compile(optimizer=optimizers.Adagrad(0.2), loss="binary_crossentropy")
    restored.load_weights(str(tmp_path / "ckpt"))
    assert sorted_records(restored.get_layer("emb").kv) == sorted_records(model.get_layer("emb").kv)


def test_kv_embedding_config_round_trip():
    from deeprec_lite import BloomFilter, StalenessEviction

    table = TableConfig(5, key_dtype="string", initializer="normal", seed=3, default_value=0.5,
                        admission=BloomFilter(4, expected_keys=1000),
                        eviction=[StalenessEviction(10, every_n_steps=5)])
    layer = KVEmbedding(table, combiner="sqrtn", name="shared_ids",
                        optimizer=sparse_optimizers.Ftrl(0.2, l1_regularization_strength=0.1))
    clone = KVEmbedding.from_config(layer.get_config())
    assert clone.get_config() == layer.get_config()
    assert clone.kv.admission == layer.kv.admission and clone.kv.eviction == layer.kv.eviction
    keys = tf.ragged.constant([["a", "b"], ["c"]])
    np.testing.assert_array_equal(clone(keys, training=True), layer(keys, training=True))


def test_a_second_training_call_in_one_step_is_refused():
    layer = KVEmbedding(2, name="twice")

    @tf.function
    def step(a, b):
        return layer(a, training=True) + layer(b, training=True)

    with pytest.raises(ValueError, match="twice: a KVEmbedding layer can be called once per "
                                         "training step"):
        step(tf.constant([1], tf.int64), tf.constant([2], tf.int64))
    shared = KVEmbedding(2, shared_table=layer.kv, name="other")

    @tf.function
    def shared_step(a, b):
        return layer(a, training=True) + shared(b, training=True)

    assert shared_step(tf.constant([1], tf.int64), tf.constant([2], tf.int64)).shape == (1, 2)


# ----- non-finite gradients in model.fit ------------------------------------------------

NAN_IDS = np.array([5, 6, 7, 5], np.int64)
NAN_LABELS = np.array([0.0, 1.0, np.nan, 1.0], np.float32)  # makes key 7's gradient row NaN


def nan_label_model(sparse):
    ids = keras.Input((), dtype=tf.int64, name="ids")
    emb = KVEmbedding(TableConfig(2, initializer="uniform", seed=3), name="emb")(ids)
    out = keras.layers.Dense(1, kernel_initializer="ones", name="out")(emb)
    model = keras.Model(ids, out)
    model.compile(optimizer=optimizers.KVOptimizer(sparse, keras.optimizers.SGD(0.1)),
                  loss="mse")
    kv = model.get_layer("emb").kv
    kv.ensure_slots(sparse.slots)  # as the first update would
    kv.lookup_or_insert([5, 6, 7], counts=tf.zeros(3, tf.int64))  # freq 0, version 0
    return model, kv


def test_fit_with_a_nan_gradient_row_fails_naming_the_table_and_applies_nothing():
    model, kv = nan_label_model(sparse_optimizers.Adagrad(0.1))
    before = records_by_key(kv.export())
    with pytest.raises(tf.errors.InvalidArgumentError,
                       match=r"table 'emb': 1 of 3 gradient rows hold NaN or Inf"):
        model.fit(NAN_IDS, NAN_LABELS, batch_size=4, epochs=1, verbose=0)
    after = records_by_key(kv.export())
    for key, (value, freq, version, slots, _) in after.items():
        np.testing.assert_array_equal(value, before[key][0])
        np.testing.assert_array_equal(slots, before[key][3])
        assert (freq, version) == ({5: 2, 6: 1, 7: 1}[key], 0)  # counted by the forward pass
    assert int(model.optimizer.iterations) == 0 and int(kv.step) == 0
    np.testing.assert_array_equal(model.get_layer("out").get_weights()[0], np.ones((2, 1)))


def test_fit_skipping_nan_gradient_rows_trains_the_others_and_reports_them(tmp_path):
    sparse = sparse_optimizers.SGD(0.1, nonfinite_gradients="skip")
    model, kv = nan_label_model(sparse)
    before = records_by_key(kv.export())
    model.fit(NAN_IDS, NAN_LABELS, batch_size=4, epochs=1, verbose=0,
              callbacks=[callbacks.KVTableStats(str(tmp_path))])
    after = records_by_key(kv.export())
    assert {k: r[2] for k, r in after.items()} == {5: 1, 6: 1, 7: 0}
    np.testing.assert_array_equal(after[7][0], before[7][0])
    assert all(not np.array_equal(after[k][0], before[k][0]) for k in (5, 6))
    assert int(kv.stats()["nonfinite_skipped"]) == 1
    written = {}
    for path in (tmp_path / "kv_tables").glob("events.out.tfevents.*"):
        for event in tf.compat.v1.train.summary_iterator(str(path)):
            for v in event.summary.value:
                written[v.tag] = tf.make_ndarray(v.tensor)
    assert written["emb/nonfinite_skipped"] == 1
    config = optimizers.KVOptimizer.from_config(model.optimizer.get_config()).sparse.get_config()
    assert config == sparse.get_config() and config["nonfinite_gradients"] == "skip"


def _summary_steps(log_dir, tag):
    return sorted(event.step for path in (log_dir / "kv_tables").glob("events.out.tfevents.*")
                  for event in tf.compat.v1.train.summary_iterator(str(path))
                  for v in event.summary.value if v.tag == tag)


@pytest.mark.parametrize("steps_per_execution, batch_writes", [
    (1, [2, 4, 6, 8, 10, 12]),   # every second step
    (3, [3, 6, 9, 12]),          # first step at or past each multiple of 2 the calls reach
])
def test_kv_table_stats_writes_every_n_steps(tmp_path, steps_per_execution, batch_writes):
    ids, labels = make_data(48)
    model = kv_model()
    model.compile(optimizer=optimizers.SGD(0.1), loss="binary_crossentropy",
                  steps_per_execution=steps_per_execution)
    model.fit(ids, labels, batch_size=4, epochs=1, shuffle=False, verbose=0,  # 12 steps
              callbacks=[callbacks.KVTableStats(tmp_path, every_n_steps=2)])
    assert _summary_steps(tmp_path, "emb/size") == sorted(batch_writes + [12])  # + epoch end


def test_steps_per_execution_trains_the_same_records_as_one_step_per_call():
    from deeprec_lite.data.synthetic.generator import SyntheticCTR, SyntheticConfig
    from deeprec_lite.models import DeepFM
    from deeprec_lite.training.model_tables import kv_tables
    generator = SyntheticCTR(SyntheticConfig(num_categorical=3, num_numeric=1, seed=0))
    data = generator.dataset(6 * 64, 64, day=0).cache()

    def trained(steps_per_execution):
        keras.utils.set_random_seed(0)
        model = DeepFM(generator.schema, table=4, dnn=(8,))
        model.compile(optimizer=optimizers.Adam(0.01), loss="binary_crossentropy",
                      steps_per_execution=steps_per_execution)
        model.fit(data, steps_per_epoch=6, verbose=0)
        assert int(model.optimizer.iterations.numpy()) == 6
        return {name: records_by_key(kv.export()) for name, kv in kv_tables(model).items()}

    once, thrice = trained(1), trained(3)
    assert once.keys() == thrice.keys() and len(once) == 6
    for name in once:
        assert once[name].keys() == thrice[name].keys()
        for key, record in once[name].items():
            for a, b in zip(record, thrice[name][key]):
                np.testing.assert_array_equal(a, b)


# ----- what would lose or corrupt a model's tables is refused, named ------------------

def kv_model_of_zoo_class(dim=4):
    from deeprec_lite.training.kv_model import KVModel
    ids = keras.Input((), dtype=tf.int64, name="ids")
    emb = KVEmbedding(TableConfig(dim), name="emb")(ids)
    return KVModel(ids, keras.layers.Dense(1, activation="sigmoid", name="out")(emb))


@pytest.mark.parametrize("method, path, save_format", [
    ("save", "m.keras", None), ("save", "m.h5", None), ("save", "m", "h5"),
    ("save_weights", "w.weights.h5", None), ("save_weights", "w.h5", None)])
def test_file_formats_that_cannot_hold_tables_are_refused_before_writing(tmp_path, method,
                                                                       path, save_format):
    model = kv_model_of_zoo_class()
    model.compile(optimizer=optimizers.Adagrad(0.1), loss="binary_crossentropy")
    ids, labels = make_data(64)
    model.fit(ids, labels, batch_size=32, verbose=0)
    target = tmp_path / path
    with pytest.raises(ValueError, match=rf"{method}: filepath=.* cannot hold KV tables; save "
                                         "the model as a SavedModel directory"):
        getattr(model, method)(str(target), save_format=save_format)
    assert list(tmp_path.iterdir()) == []
    plain = kv_model()  # a keras.Model: refused by its layers (.keras and .weights.h5)
    with pytest.raises(ValueError, match="emb: a KV table cannot be saved to a .keras"):
        plain.save(str(tmp_path / "plain.keras"))


def test_a_model_with_tables_needs_a_kv_optimizer():
    model = kv_model_of_zoo_class()
    with pytest.raises(ValueError, match="has KV tables: optimizer must be a "
                                         "deeprec_lite.optimizers.KVOptimizer"):
        model.compile(optimizer=keras.optimizers.Adam(), loss="binary_crossentropy")
    dense = keras.optimizers.SGD(0.1)
    with pytest.raises(ValueError, match=r"groups\['gates'\] is an optimizer that dense or "
                                         "another group already uses"):
        optimizers.KVOptimizer(sparse_optimizers.SGD(0.1), dense, groups={"gates": dense})
    other = keras.optimizers.SGD(0.1)
    with pytest.raises(ValueError, match=r"groups\['b'\] is an optimizer"):
        optimizers.KVOptimizer(sparse_optimizers.SGD(0.1), dense, groups={"a": other, "b": other})
    with pytest.raises(ValueError, match="groups must be a mapping of group name"):
        optimizers.KVOptimizer(sparse_optimizers.SGD(0.1), dense, groups=[1, 2])


def test_two_tables_of_one_name_are_refused():
    from deeprec_lite.export import export_embeddings
    from deeprec_lite.training.model_tables import kv_tables
    inputs = [keras.Input((), dtype=tf.int64, name=n) for n in ("a", "b")]
    towers = [keras.Model(x, KVEmbedding(4, name="ids")(x), name=f"tower_{i}")
              for i, x in enumerate(inputs)]
    model = keras.Model(inputs, keras.layers.Concatenate()([t(x) for t, x in zip(towers, inputs)]))
    with pytest.raises(ValueError, match="layers 'ids' and 'ids' have two KV tables named 'ids'"):
        kv_tables(model)
    with pytest.raises(ValueError, match="two KV tables named 'ids'"):
        export_embeddings(model, "unused")
