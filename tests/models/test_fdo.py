"""FDO: PCA of trained KV tables proposes the planted rank per field."""
import numpy as np
import pytest

from deeprec_lite.data.synthetic.generator import SyntheticCTR, SyntheticConfig
from deeprec_lite.kv.variable import KVRecords
from deeprec_lite.models import GDCN, fdo


def planted(rank, n=300, dim=8, noise=1e-3, seed=0):
    rng = np.random.default_rng(seed)
    return (rng.normal(size=(n, rank)) @ rng.normal(size=(rank, dim))
            + noise * rng.normal(size=(n, dim))).astype(np.float32)


def test_pca_dim_finds_the_planted_rank():
    for rank in (1, 3, 5):
        assert fdo.pca_dim(planted(rank), threshold=0.99) == rank
    assert fdo.pca_dim(np.zeros((5, 4))) == 1
    assert fdo.pca_dim(np.zeros((5, 4)), min_dim=10) == 4  # never wider than the table
    with pytest.raises(ValueError, match="threshold"):
        fdo.pca_dim(planted(2), threshold=1.5)


@pytest.mark.parametrize("kwargs, match", [
    ({"threshold": "0.5"}, "threshold must be a number, got '0.5'"),
    ({"min_dim": 0}, "min_dim must be a positive integer, got 0"),
    ({"min_dim": 2.5}, "min_dim must be a positive integer, got 2.5"),
    ({"weights": np.r_[np.nan, np.ones(299)]}, "weights must be 300 finite non-negative"),
    ({"values": np.full((5, 4), np.inf)}, r"values must be a non-empty \[N, D\] matrix of "
                                          "finite numbers")])
def test_pca_dim_arguments_are_named(kwargs, match):
    with pytest.raises(ValueError, match=match):
        fdo.pca_dim(**{"values": planted(2), **kwargs})


def test_frequency_weighting_lets_frequent_keys_decide():
    values = np.concatenate([planted(1, n=50, seed=1), planted(4, n=50, seed=2)])
    freqs = np.concatenate([np.full(50, 1000.0), np.full(50, 1.0)])
    assert fdo.pca_dim(values, freqs, threshold=0.95) == 1
    assert fdo.pca_dim(values, None, threshold=0.95) > 1


def test_propose_field_dims_on_a_model_and_retrain_gdcn_with_them():
    generator = SyntheticCTR(SyntheticConfig(num_categorical=3, num_numeric=1, vocab_sizes=50,
                                             seed=2))
    model = GDCN(generator.schema, table=8, cross_layers=1, dnn=(4,))
    features, _ = next(iter(generator.dataset(8, 8)))
    model(features, training=False)
    tables = fdo.field_tables(model)
    assert sorted(tables) == ["C1", "C2", "C3"]
    for rank, field in enumerate(sorted(tables), start=1):  # plant rank 1, 2, 3
        values = planted(rank, n=200, seed=rank)
        tables[field].import_records(KVRecords(
            keys=np.arange(200, dtype=np.int64), values=values,
            freqs=np.arange(1, 201, dtype=np.int64), versions=np.zeros(200, np.int64),
            slots=np.zeros((200, 0, 8), np.float32), admitted=np.ones(200, bool),
            bloom_counts=np.zeros(0, np.int32)))
    dims = fdo.propose_field_dims(model, threshold=0.99)
    assert dims == {"C1": 1, "C2": 2, "C3": 3}

    smaller = GDCN(generator.schema, table=8, cross_layers=1, dnn=(4,), field_dims=dims)
    out = smaller(features, training=False)
    assert out.shape == (8, 1)
    assert smaller.get_layer("embedding_C3").kv.dim == 3
    with pytest.raises(ValueError, match="field_dims"):
        GDCN(generator.schema, field_dims={"C9": 2})


def test_gdcn_field_dims_keep_shared_tables_shared():
    from deeprec_lite.data.formats.schema import CategoricalField, LabelField, Schema
    schema = Schema(labels=[LabelField("y")], categorical=[
        CategoricalField("a", table="t"), CategoricalField("b", table="t"), CategoricalField("c")])
    model = GDCN(schema, table=4, cross_layers=1, dnn=(4,), field_dims={"a": 2, "b": 2})
    assert model.get_layer("embedding_a").kv is model.get_layer("embedding_b").kv
    assert model.get_layer("embedding_a").kv.dim == 2
    with pytest.raises(ValueError, match="fields sharing table 't' must get the same dim; "
                                         "received dims \\{'a': 2, 'b': 4\\}"):
        GDCN(schema, table=4, field_dims={"a": 2})
    with pytest.raises(ValueError, match="field_dims=\\[\\('a', 2\\)\\]"):
        GDCN(schema, table=4, field_dims=[("a", 2)])
