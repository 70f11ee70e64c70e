"""Every zoo model: builds from a small synthetic schema, trains with model.fit (finite,
decreasing loss), predicts batch-independently, round-trips save_weights/load_weights."""
import numpy as np
import pytest

from deeprec_lite import cli, models
from deeprec_lite.compat import keras, tf
from deeprec_lite.data.formats.schema import Schema
from deeprec_lite.data.synthetic.generator import SyntheticCTR, SyntheticConfig
from deeprec_lite.kv import sparse_optimizers
from deeprec_lite.training import optimizers

DIM = 4
TINY = {  # small widths so the whole file stays fast on 2 cores
    "widedeep": dict(dnn=(8,)), "deepfm": dict(dnn=(8,)),
    "dcn": dict(cross_layers=1, dnn=(8,)), "dcnv2": dict(cross_layers=1, dnn=(8,)),
    "dcnmix": dict(cross_layers=1, low_rank=4, num_experts=2, dnn=(8,)),
    "xdeepfm": dict(cin_layers=(4, 4), dnn=(8,)), "ipnn": dict(dnn=(8,)),
    "opnn": dict(dnn=(8,)), "fibinet": dict(dnn=(8,)), "xdeepint": dict(pin_layers=2),
    "can": dict(feed_dim=4, coaction_units=(4, 2), orders=2, dnn=(8,)),
    "frnet": dict(attention_size=4, cie_hidden_units=8, dnn=(8,)),
    "gdcn": dict(cross_layers=1, dnn=(8,)), "dynint": dict(), "eulernet": dict(shape=(4,)),
    "rfm": dict(hidden_units=4, amp_hidden_units=(4,)),
    "autodisdnn": dict(num_buckets=4, dnn=(8,)), "autofis": dict(dnn=(8,)),
}


@pytest.fixture(scope="module")
def data():
    generator = SyntheticCTR(SyntheticConfig(num_categorical=3, num_numeric=2,
                                             vocab_sizes=50, seed=1))
    train = generator.dataset(1024, 256, day=0)
    features, _ = next(iter(generator.dataset(16, 16, day=1)))
    return generator.schema, train, features


def build(name, schema):
    tf.keras.utils.set_random_seed(0)
    model = models.get(name)(schema, table=DIM, **TINY[name])
    model.compile(optimizer=optimizers.KVOptimizer(sparse_optimizers.Adagrad(0.1),
                                                   keras.optimizers.Adam(0.01)),
                  loss="binary_crossentropy")
    return model


def predict(model, features):
    """Inference outputs (eager call: no predict-function tracing per model)."""
    return model(features, training=False).numpy()


def test_registry_lists_every_model(capsys):
    assert sorted(models.MODELS) == sorted(TINY)
    assert cli.main(["train", "--list-models"]) == 0
    assert capsys.readouterr().out.split() == sorted(TINY)
    with pytest.raises(ValueError, match="unknown model 'nope'"):
        models.get("nope")


@pytest.mark.parametrize("name", sorted(TINY))
def test_model_trains_predicts_and_round_trips(name, data, tmp_path):
    schema, train, features = data
    model = build(name, schema)
    assert model.output_shape == (None, 1)
    history = model.fit(train, epochs=4, verbose=0).history["loss"]
    assert np.isfinite(history).all(), history
    assert history[-1] < history[0], history

    batch = predict(model, features)
    assert batch.shape == (16, 1) and np.isfinite(batch).all()
    assert ((batch > 0) & (batch < 1)).all()
    singles = np.concatenate([predict(model, {k: v[i:i + 1] for k, v in features.items()})
                              for i in range(4)])
    np.testing.assert_allclose(singles, batch[:4], rtol=1e-5, atol=1e-6)

    path = str(tmp_path / "weights")
    model.save_weights(path)
    restored = build(name, schema)
    restored.load_weights(path)
    np.testing.assert_array_equal(predict(restored, features), batch)


def test_autofis_search_with_grda_gates_under_fit():
    from deeprec_lite.training import optimizers
    from deeprec_lite.kv import sparse_optimizers
    from deeprec_lite.compat import keras
    from deeprec_lite.layers import GRDA
    from deeprec_lite.data.synthetic.generator import SyntheticConfig, SyntheticCTR
    from deeprec_lite.models import AutoFIS

    generator = SyntheticCTR(SyntheticConfig(num_categorical=4, num_numeric=1, seed=5))
    model = AutoFIS(generator.schema, table=4, dnn=(8,))
    grda = GRDA(learning_rate=1.0, c=0.5, mu=0.8)
    adam = keras.optimizers.Adam(1e-2)
    model.compile(optimizer=optimizers.KVOptimizer(sparse_optimizers.Adagrad(0.05), adam,
                                                   groups={"autofis_gates": grda}),
                  loss="binary_crossentropy")
    model.fit(generator.dataset(2000, 250, day=0), epochs=2, verbose=0)
    gate = model.get_layer("autofis_gate")
    alpha = gate.alpha.numpy()
    assert int(grda.iterations) == int(adam.iterations) == 16
    assert (alpha == 0).any()  # GRDA's threshold zeroes gates; Adam never would
    assert not any(v.name.endswith("alpha:0") for v in adam.variables)
    assert gate.selected_pairs() == [int(a != 0) for a in alpha]
    config = model.optimizer.get_config()
    clone = optimizers.KVOptimizer.from_config(config)
    assert isinstance(clone.groups["autofis_gates"], GRDA)



@pytest.mark.parametrize("name, num_categorical", [("can", 3), ("widedeep", 1), ("gdcn", 1)])
def test_model_with_a_one_member_group_saves_and_loads(name, num_categorical, data, tmp_path):
    """CAN's induction group has one member, as has every group of a schema with one
    categorical field: load_model rebuilds them (Keras hands back a bare tensor)."""
    schema, train, features = data
    schema = Schema(labels=schema.labels, categorical=schema.categorical[:num_categorical],
                    numeric=schema.numeric)
    names = [f.name for f in schema.categorical + schema.numeric]
    features = {k: features[k] for k in names}
    model = build(name, schema)
    model.fit(train.take(2).map(lambda x, y: ({k: x[k] for k in names}, y)), verbose=0)
    expected = predict(model, features)
    model.save(str(tmp_path / "saved"))
    loaded = keras.models.load_model(str(tmp_path / "saved"))
    assert type(loaded) is type(model)
    np.testing.assert_array_equal(predict(loaded, features), expected)


def test_deepfm_without_categorical_fields_is_named(data):
    schema = Schema(labels=data[0].labels, numeric=data[0].numeric)
    with pytest.raises(ValueError, match="DeepFM needs at least one categorical field"):
        models.DeepFM(schema, table=DIM)


@pytest.mark.parametrize("name, match", [("ipnn", "InnerProduct"), ("opnn", "OuterProduct"),
                                         ("autofis", "AutoFISGate")])
def test_pair_models_need_two_fields(name, match, data):
    schema = Schema(labels=data[0].labels, categorical=data[0].categorical[:1])
    with pytest.raises(ValueError, match=f"{match} needs at least 2 fields"):
        build(name, schema)


@pytest.mark.parametrize("name, kwargs, match", [
    ("can", dict(feed_dim=0), "CAN: feed_dim must be a positive integer; received feed_dim=0"),
    ("can", dict(feed_dim=2.5), "received feed_dim=2.5"),
    ("can", dict(coaction_units=()), "CAN: coaction_units must be a non-empty list"),
    ("xdeepint", dict(num_subspaces=0), "PIN: num_subspaces must be a positive integer")])
def test_zoo_arguments_are_named(name, kwargs, match, data):
    with pytest.raises(ValueError, match=match):
        models.get(name)(data[0], table=DIM, **kwargs)
    with pytest.raises(ValueError, match="unknown model None"):
        models.get(None)
