"""Bad input over the public API: whatever wrong value an argument gets (hypothesis draws
them), the call raises ValueError whose message names the argument (or, for files, the
file) and shows the value; never a crash, a hang, or a silent default.

Tables, policies, sparse optimizers, layers, schema fields, readers, export and warm
start; the command line's flags are covered in test_train_job.py."""
import json
import math
import re

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from deeprec_lite.data import (CategoricalField, LabelField, NumericField, Schema,
                               read_parquet)
from deeprec_lite.export import export_embeddings, read_embeddings
from deeprec_lite.compat import tf
from deeprec_lite.kv import (TableConfig, initializers as kv_initializers, policies,
                              sparse_optimizers)
from deeprec_lite.kv.variable import KVVariable
from deeprec_lite.layers import (CIN, DNN, FM, GRDA, PIN, RFM, AutoDis, AutoFISGate, CrossNet,
                                 CrossNetV2, DynInt, EulerNet, FRNet, InnerProduct, KVEmbedding,
                                 OuterProduct)
from deeprec_lite.migration import warm_start
import kill_trials

SETTINGS = settings(max_examples=25, deadline=None,
                    suppress_health_check=[HealthCheck.function_scoped_fixture])


def not_an_integer():
    """Values no integer argument may take: bools, floats, strings, containers."""
    return st.one_of(st.booleans(), st.floats(allow_nan=True, allow_infinity=True),
                     st.text(max_size=3), st.lists(st.integers(), max_size=2))


def integers_below(minimum):
    """Integers below `minimum`, and values that are no integer at all."""
    return st.one_of(st.integers(max_value=minimum - 1), not_an_integer(),
                     st.integers(min_value=2 ** 63))


def not_a_number():
    return st.one_of(st.booleans(), st.text(max_size=3), st.none(),
                     st.just(float("nan")), st.just(float("inf")))


def assert_names(error, name, value):
    message = str(error.value)
    assert name in message, message
    assert repr(value) in message or str(value) in message, message


# ----- tables and policies -----------------------------------------------------------

@SETTINGS
@given(dim=integers_below(1))
def test_kv_variable_dim(dim):
    with pytest.raises(ValueError) as error:
        KVVariable(dim)
    assert_names(error, "dim", dim)


@SETTINGS
@given(key_dtype=st.one_of(st.sampled_from(["int32", "float", "str", "", "INT64"]),
                           st.integers(), st.none()))
def test_kv_variable_key_dtype(key_dtype):
    with pytest.raises(ValueError) as error:
        KVVariable(4, key_dtype=key_dtype)
    assert_names(error, "key_dtype", key_dtype)


@SETTINGS
@given(initializer=st.one_of(st.text(min_size=1, max_size=8).filter(
    lambda s: s not in ("zeros", "constant", "uniform", "normal", "truncated_normal")),
    st.integers()))
def test_kv_variable_initializer(initializer):
    with pytest.raises(ValueError) as error:
        KVVariable(4, initializer=initializer)
    assert "initializer" in str(error.value)


@SETTINGS
@given(default=st.lists(st.floats(allow_nan=False), min_size=2, max_size=5).filter(
    lambda v: len(v) != 4))
def test_kv_variable_default_value_length(default):
    with pytest.raises(ValueError) as error:
        KVVariable(4, default_value=default)
    assert "default_value" in str(error.value)


@SETTINGS
@given(argument=st.sampled_from([
    ("default_value", lambda v: KVVariable(4, default_value=v)),
    ("default_value[1]", lambda v: KVVariable(4, default_value=[0.0, v, 0.0, 0.0])),
    ("slots['m']", lambda v: KVVariable(4, slots={"m": v})),
    ("value", kv_initializers.constant), ("minval", lambda v: kv_initializers.uniform(v, 1.0)),
    ("stddev", lambda v: kv_initializers.normal(0.0, v)),
    ("mean", lambda v: kv_initializers.truncated_normal(v))]),
    value=not_a_number())
def test_table_numbers(argument, value):
    name, make = argument
    with pytest.raises(ValueError) as error:
        make(value)
    assert_names(error, name, value)


@SETTINGS
@given(policy=st.sampled_from([
    (policies.CounterFilter, "CounterFilter.min_count", 1),
    (policies.StalenessEviction, "StalenessEviction.max_staleness", 0),
    (policies.FrequencyEviction, "FrequencyEviction.min_freq", 1),
    (lambda v: policies.StalenessEviction(10, every_n_steps=v), "every_n_steps", 1),
    (lambda v: policies.BloomFilter(2, expected_keys=v), "BloomFilter.expected_keys", 1)]),
    data=st.data())
def test_policy_arguments(policy, data):
    make, name, minimum = policy
    value = data.draw(integers_below(minimum))
    with pytest.raises(ValueError) as error:
        make(value)
    assert_names(error, name, value)


@SETTINGS
@given(step=st.one_of(st.integers(max_value=-1), st.integers(min_value=2 ** 63)))
def test_global_steps_out_of_range(step):
    kv = KVVariable(2)
    with pytest.raises(ValueError) as error:
        kv.lookup_or_insert(np.array([1], np.int64), global_step=step)
    assert_names(error, "global_step", step)


@SETTINGS
@given(step=st.one_of(st.floats(), st.just(np.float32(3.0)), st.just(np.int64(-1))))
def test_global_steps_are_integers(step):
    """A float step would be truncated, a negative numpy int stamp a negative version."""
    kv = KVVariable(2)
    with pytest.raises(ValueError, match="global_step must"):
        kv.lookup_or_insert(np.array([1], np.int64), global_step=step)


def test_counts_are_integers():
    with pytest.raises(ValueError, match="counts must hold integers, got dtype float32"):
        KVVariable(2).lookup_or_insert(np.array([1], np.int64), counts=[0.5])


# ----- sparse optimizers --------------------------------------------------------------

@SETTINGS
@given(optimizer=st.sampled_from([
    (sparse_optimizers.SGD, "learning_rate"), (sparse_optimizers.Adagrad, "learning_rate"),
    (sparse_optimizers.Adagrad, "epsilon"), (sparse_optimizers.Adam, "beta_1"),
    (sparse_optimizers.Adam, "beta_2"), (sparse_optimizers.Ftrl, "learning_rate")]),
    value=st.one_of(not_a_number(), st.floats(max_value=-1e-9, allow_nan=False)))
def test_optimizer_hyperparameters(optimizer, value):
    cls, name = optimizer
    with pytest.raises(ValueError) as error:
        cls(**{name: value})
    assert name in str(error.value)


def test_nonfinite_gradients_mode_is_named():
    with pytest.raises(ValueError, match="nonfinite_gradients.*'ignore'"):
        sparse_optimizers.Adam(nonfinite_gradients="ignore")


# ----- layers -------------------------------------------------------------------------

@SETTINGS
@given(layer=st.sampled_from([(CrossNet, "num_layers"), (CrossNetV2, "num_layers"),
                              (CIN, "layer_sizes"), (DNN, "hidden_units")]),
       value=integers_below(1))
def test_layer_sizes(layer, value):
    cls, name = layer
    argument = [value] if name in ("layer_sizes", "hidden_units") else value
    with pytest.raises(ValueError) as error:
        cls(**{name: argument})
    assert_names(error, name, value)
    assert cls.__name__ in str(error.value)


@SETTINGS
@given(layer=st.sampled_from([
    (lambda **kw: AutoDis(4, **kw), "skip_factor"), (lambda **kw: AutoDis(4, **kw), "temperature"),
    (lambda **kw: AutoDis(4, **kw), "leaky_relu_alpha"), (AutoFISGate, "epsilon"),
    (CrossNetV2, "diag_scale"), (GRDA, "c"), (GRDA, "mu"), (GRDA, "learning_rate")]),
    value=not_a_number())
def test_layer_numbers(layer, value):
    make, name = layer
    with pytest.raises(ValueError) as error:
        make(**{name: value})
    assert_names(error, name, value)


@pytest.mark.parametrize("make, shape, match", [
    (InnerProduct, (2, 1, 3), "InnerProduct needs at least 2 fields"),
    (OuterProduct, (2, 1, 3), "OuterProduct needs at least 2 fields"),
    (AutoFISGate, (2, 1, 3), "AutoFISGate needs at least 2 fields"),
    (InnerProduct, (2, 0, 3), "at least 2 fields"), (FM, (2, 3, 0), "embedding_dim >= 1"),
    (FM, (2, 0, 3), "at least 1 field"), (lambda: PIN(1), (2, 3, 0), "embedding_dim >= 1"),
    (lambda: CrossNet(1), (2, 0), "known d >= 1"),
    (lambda: AutoDis(4), (2, 0), "num_fields >= 1")])
def test_layer_input_sizes(make, shape, match):
    with pytest.raises(ValueError, match=match) as error:
        make()(tf.zeros(shape))
    assert str(shape) in str(error.value)


@pytest.mark.parametrize("make, built, called", [
    (DynInt, (2, 3, 4), (2, 6, 2)), (DynInt, (2, 3, 4), (2, 3, 2)),
    (lambda: FRNet(attention_size=2, cie_hidden_units=4), (2, 4, 3), (1, 8, 3)),
    (lambda: AutoFISGate(output_mode="pairs"), (2, 4, 3), (2, 5, 3)),
    (lambda: EulerNet([3]), (2, 4, 5), (2, 1, 5)),
    (lambda: RFM(hidden_units=4), (2, 4, 6), (2, 5, 6)),
    (lambda: AutoDis(4, num_buckets=3), (2, 3), (2, 1)), (FM, (2, 3, 4), (2, 4))])
def test_a_later_call_of_another_shape_is_refused(make, built, called):
    layer = make()
    layer(tf.ones(built))
    with pytest.raises(ValueError, match="incompatible with the layer.*" + re.escape(str(called))):
        layer(tf.ones(called))


@SETTINGS
@given(combiner=st.one_of(st.text(max_size=5), st.integers()).filter(
    lambda c: c not in ("sum", "mean", "sqrtn")))
def test_kv_embedding_combiner(combiner):
    with pytest.raises(ValueError) as error:
        KVEmbedding(4, combiner=combiner)
    assert_names(error, "combiner", combiner)


@pytest.mark.parametrize("table, name, value", [
    (4, "optimizer", "adam"), (4, "padding_id", "x"),
    (TableConfig(4, key_dtype="string"), "padding_id", 0)])
def test_kv_embedding_arguments(table, name, value):
    with pytest.raises(ValueError) as error:
        KVEmbedding(table, sequence=name == "padding_id", **{name: value})
    assert_names(error, name, value)


IDS = tf.constant([[1, 2, 3], [4, 5, 6]], tf.int64)
RAGGED = tf.ragged.constant([[1, 2], [3, 4, 5, 6]], dtype=tf.int64)


@pytest.mark.parametrize("training", [False, True])
@pytest.mark.parametrize("layer, ids, weights, match", [
    # as many weights as ids, laid out otherwise: every example would get others' weights
    ("sum", IDS, tf.ones([3, 2]), r"weights must have the shape of the ids \(2, 3\), got "
                                  r"\(3, 2\)"),
    ("sum", IDS, tf.ones([2]), r"weights must have the shape of the ids"),
    ("mean", RAGGED, tf.ragged.constant([[1.0, 1.0, 1.0], [1.0, 1.0, 1.0]]),
     "weights must have the shape of the ids"),
    ("mean", RAGGED, tf.ones([2, 3]), "weights must be ragged .* exactly when the ids are"),
    (None, IDS[:, :1], tf.ones([2, 1]), "weights are for pooled ids"),
    ("sequence", IDS, tf.ones([2, 3]), "weights are for pooled ids")])
def test_kv_embedding_weights_must_fit_the_ids(layer, ids, weights, match, training):
    embed = (KVEmbedding(4, sequence=True) if layer == "sequence"
             else KVEmbedding(4, combiner=layer))
    with pytest.raises((ValueError, tf.errors.InvalidArgumentError), match=match):
        embed(ids, weights=weights, training=training)


@pytest.mark.parametrize("ids", [tf.constant([1, 2], tf.int64), tf.zeros([2, 2, 2], tf.int64)])
def test_kv_embedding_sequence_ids_are_ragged_or_rank_2(ids):
    with pytest.raises(ValueError, match=r"sequence ids must be ragged or dense \[B, L\], got "
                                         r"shape"):
        KVEmbedding(4, sequence=True)(ids)


# ----- schema and readers -------------------------------------------------------------

@SETTINGS
@given(dtype=st.text(max_size=6).filter(lambda d: d not in ("int64", "string")))
def test_categorical_field_dtype(dtype):
    with pytest.raises(ValueError) as error:
        CategoricalField("c", dtype=dtype)
    assert_names(error, "dtype", dtype)


@SETTINGS
@given(value=st.one_of(st.just(math.inf), st.just(math.nan), st.text(max_size=2),
                       st.booleans()))
def test_numeric_field_bounds(value):
    with pytest.raises(ValueError) as error:
        NumericField("n", transform="minmax", min=value, max=1.0)
    assert "numeric field 'n'" in str(error.value) and "min" in str(error.value)


@SETTINGS
@given(batch_size=integers_below(1))
def test_reader_batch_size(batch_size, tmp_path):
    schema = Schema(labels=[LabelField("y")], categorical=[CategoricalField("c")])
    with pytest.raises(ValueError) as error:
        read_parquet(str(tmp_path / "x.parquet"), schema, batch_size=batch_size)
    assert_names(error, "batch_size", batch_size)


def test_reader_missing_file_is_named(tmp_path):
    schema = Schema(labels=[LabelField("y")], categorical=[CategoricalField("c")])
    missing = str(tmp_path / "nowhere-*.parquet")
    with pytest.raises(ValueError, match="nowhere"):
        read_parquet(missing, schema, batch_size=4)


# ----- export and warm start ----------------------------------------------------------

@pytest.fixture(scope="module")
def table():
    kv = KVVariable(2, name="t")
    kv.lookup_or_insert(np.arange(5, dtype=np.int64), global_step=1)
    return kv


@SETTINGS
@given(argument=st.sampled_from(["min_freq", "max_staleness"]), value=integers_below(0))
def test_export_thresholds(table, tmp_path, argument, value):
    with pytest.raises(ValueError) as error:
        export_embeddings({"t": table}, str(tmp_path / "out"), **{argument: value})
    assert_names(error, argument, value)
    assert not (tmp_path / "out").exists()


@SETTINGS
@given(garbage=st.binary(min_size=1, max_size=64))
def test_reading_a_damaged_export_names_the_file(table, tmp_path, garbage):
    out = tmp_path / "export"
    if not out.exists():
        export_embeddings({"t": table}, str(out))
    (out / "manifest.json").write_bytes(garbage)
    with pytest.raises(ValueError, match="manifest.json"):
        read_embeddings(str(out))


@pytest.mark.parametrize("kwargs, match", [
    ({"threads": 0}, "threads must be a positive integer or None, got 0"),
    ({"threads": 1.5}, "threads must be a positive integer or None, got 1.5"),
    ({"compression": "zzz"}, r"compression must be None, 'none' or a Parquet codec .*got 'zzz'"),
    ({"compression": 3}, r"compression must be None, 'none' or a Parquet codec .*got 3"),
    ({"global_step": 7.9}, "global_step must be a non-negative integer, got 7.9"),
    ({"global_step": "abc"}, "global_step must be a non-negative integer, got 'abc'")])
def test_export_arguments(table, tmp_path, kwargs, match):
    with pytest.raises(ValueError, match=match):
        export_embeddings({"t": table}, str(tmp_path / "out"), **kwargs)
    assert not (tmp_path / "out").exists()


@pytest.mark.parametrize("tamper", [
    lambda m: m.pop("tables"), lambda m: m.update(tables=["t"]),
    lambda m: m["tables"]["t"].pop("files"), lambda m: m["tables"]["t"].pop("kept"),
    lambda m: m["tables"]["t"]["files"][0].pop("sha256")])
def test_a_manifest_without_its_fields_is_named(table, tmp_path, tamper):
    out = tmp_path / "export"
    export_embeddings({"t": table}, str(out))
    meta = json.loads((out / "manifest.json").read_text())
    tamper(meta)
    (out / "manifest.json").write_text(json.dumps(meta))
    with pytest.raises(ValueError, match="manifest.json is malformed"):
        read_embeddings(str(out))


def test_keys_of_another_dtype_than_the_manifest_says_are_named(table, tmp_path):
    out = tmp_path / "export"
    export_embeddings({"t": table}, str(out))
    path = out / json.loads((out / "manifest.json").read_text())["tables"]["t"]["files"][0]["path"]
    part = pq.read_table(path)
    pq.write_table(part.set_column(0, "key", pa.array(
        [str(k) for k in part.column("key").to_pylist()])), path)
    with pytest.raises(ValueError, match="table 't' has keys string, the manifest says int64"):
        read_embeddings(str(out), verify=False)  # the checksum would catch it first


@pytest.mark.parametrize("kwargs, match", [
    ({"rename": ["emb_a"]}, r"rename must be a mapping of old name to new name \(strings\), "
                            r"got \['emb_a'\]"),
    ({"rename": {"emb_a": 3}}, "rename must be a mapping"),
    # the source's emb_b would vanish: neither migrated nor reported unused
    ({"rename": {"emb_a": "emb_b"}}, "rename: the source's tables 'emb_a' and 'emb_b' would "
                                     "both become 'emb_b'"),
    ({"include": "["}, r"include must be regular expressions, got \['\['\]"),
    ({"exclude": [3]}, r"exclude must be regular expressions, got \[3\]")])
def test_warm_start_selection(models, kwargs, match):
    old, new = models
    with pytest.raises(ValueError, match=match):
        warm_start(new, old, **kwargs)


@SETTINGS
@given(argument=st.sampled_from(["min_freq", "max_staleness"]), value=integers_below(0))
def test_warm_start_thresholds(models, argument, value):
    old, new = models
    with pytest.raises(ValueError) as error:
        warm_start(new, old, **{argument: value})
    assert_names(error, argument, value)


@pytest.fixture(scope="module")
def models():
    return kill_trials.build(), kill_trials.build()
