import os

import numpy as np
import pytest

from deeprec_lite.data import (SyntheticCTR, SyntheticConfig, bayes_auc, read_csv, read_parquet,
                               roc_auc, write_csv, write_parquet)
from tests.data.dataset_rows import dataset_columns

SMALL = dict(num_numeric=3, num_categorical=5, vocab_sizes=(7, 50, 300, 2000, 20000), seed=11)


def _same_rows(a, b):
    assert a.columns.keys() == b.columns.keys()
    for k in a.columns:
        np.testing.assert_array_equal(a.columns[k], b.columns[k], err_msg=k)
    np.testing.assert_array_equal(a.probabilities, b.probabilities)


def test_deterministic_by_seed_and_independent_of_size():
    a = SyntheticCTR(**SMALL).generate(70_000, day=2)
    b = SyntheticCTR(**SMALL).generate(70_000, day=2)
    _same_rows(a, b)
    # Rows do not depend on how many are asked for or where the request starts.
    tail = SyntheticCTR(**SMALL).generate(5_000, day=2, start_row=65_000)
    np.testing.assert_array_equal(tail.columns["C5"], a.columns["C5"][65_000:])
    np.testing.assert_array_equal(tail.columns["I1"], a.columns["I1"][65_000:])
    other = SyntheticCTR(**{**SMALL, "seed": 12}).generate(1000, day=2)
    assert not np.array_equal(other.columns["C5"], a.columns["C5"][:1000])
    assert not np.array_equal(SyntheticCTR(**SMALL).generate(1000, day=3).columns["C5"],
                              a.columns["C5"][:1000])


def test_planted_auc_sanity():
    gen = SyntheticCTR(seed=5)               # Criteo-like: 13 numeric, 26 categorical
    rows = gen.generate(200_000)
    best = rows.bayes_auc()
    assert 0.7 < best < 0.95
    # The true probabilities reach the Bayes AUC on the sampled labels (sampling noise only).
    assert roc_auc(rows.labels, rows.probabilities) == pytest.approx(best, abs=0.006)
    # CTR is calibrated, labels follow p.
    assert rows.labels.mean() == pytest.approx(gen.config.target_ctr, abs=0.01)
    assert rows.labels.mean() == pytest.approx(rows.probabilities.mean(), abs=0.005)
    # Interactions are planted: a model of the first-order terms alone falls clearly short.
    parts = rows.logit_parts
    first_only = roc_auc(rows.labels, parts["first_order"] + parts["numeric"])
    assert first_only < best - 0.03
    # Noise cannot rank.
    noise = np.random.default_rng(0).random(rows.num_rows)
    assert roc_auc(rows.labels, noise) == pytest.approx(0.5, abs=0.01)
    # The probability really is the sigmoid of the parts.
    logit = sum(parts.values())
    np.testing.assert_allclose(rows.probabilities, 1 / (1 + np.exp(-logit)), rtol=1e-9)
    assert gen.bayes_auc(200_000) == best


def test_planted_weights_are_functions_of_ids():
    gen = SyntheticCTR(**SMALL)
    rows = gen.generate(4000, day=1)
    w, _ = gen.true_weights(4, rows.columns["C5"][:50], day=1)
    w_again, _ = gen.true_weights(4, rows.columns["C5"][:50], day=1)
    np.testing.assert_array_equal(w, w_again)
    # With only one categorical field and no interactions/numeric terms, the logit is w / 1.
    solo = SyntheticCTR(num_numeric=0, num_categorical=1, vocab_sizes=100, seed=3,
                        numeric_missing_rate=0.0)
    r = solo.generate(500)
    w_solo, _ = solo.true_weights(0, r.columns["C1"])
    np.testing.assert_allclose(r.logit_parts["first_order"], w_solo, rtol=1e-12)


def test_zipf_popularity_and_new_ids_each_day():
    gen = SyntheticCTR(num_numeric=0, num_categorical=1, vocab_sizes=50_000, zipf_exponent=1.2,
                       new_id_rate=0.1, seed=2)
    day0 = gen.generate(300_000, day=0).columns["C1"]
    _, counts = np.unique(day0, return_counts=True)
    counts = np.sort(counts)[::-1]
    # Zipf: frequency of rank r ~ r^-a, so rank 1 vs rank 10 differ by ~10^1.2.
    ratio = counts[0] / counts[9]
    assert 10 ** 1.0 < ratio < 10 ** 1.45
    day1 = gen.generate(300_000, day=1).columns["C1"]
    active0 = set(gen._day_tables(0)[0][0].tolist())
    new_share = np.mean([i not in active0 for i in day1[:20_000]])
    assert 0.05 < new_share < 0.15            # ~new_id_rate of the traffic moves to new ids
    assert len(set(day1[:20_000].tolist()) & set(day0.tolist())) > 1000   # old ids remain


def test_files_round_trip_through_readers(tmp_path):
    gen = SyntheticCTR(**{**SMALL, "id_dtype": "string", "categorical_missing_rate": 0.05})
    pq_files = write_parquet(gen, str(tmp_path / "pq"), 3000, day=1, rows_per_file=1100)
    csv_files = write_csv(gen, str(tmp_path / "csv"), 3000, day=1, rows_per_file=1100)
    assert [os.path.basename(p) for p in pq_files.paths] == [
        "day001-part00000.parquet", "day001-part00001.parquet", "day001-part00002.parquet"]
    assert sorted(os.listdir(tmp_path / "csv")) == [os.path.basename(p) for p in csv_files.paths]
    direct, _ = dataset_columns(gen.dataset(3000, 512, day=1))
    from_pq, _ = dataset_columns(read_parquet(pq_files.paths, gen.schema, 700, num_parallel_reads=1))
    from_csv, _ = dataset_columns(read_csv(csv_files.paths, gen.schema, 700, num_parallel_reads=1))
    assert from_pq == direct
    assert from_csv == direct
    rows = gen.generate(3000, day=1)
    assert direct["C3"].count("__missing__") == int(rows.missing["C3"].sum()) > 0
    assert pq_files.bayes_auc == pytest.approx(bayes_auc(rows.probabilities), abs=1e-12)
    assert pq_files.ctr == pytest.approx(rows.labels.mean())


@pytest.mark.parametrize("kwargs, pattern", [
    (dict(vocab_sizes=(1, 2)), "vocab_sizes"),
    (dict(num_categorical=3, num_interaction_pairs=4), r"num_interaction_pairs.*\[0, 3\]"),
    (dict(target_ctr=1.0), "target_ctr"),
    (dict(id_dtype="float"), "id_dtype"),
    (dict(num_numeric=0, num_categorical=0), "at least one"),
    (dict(seed=-1), "seed"),
    (dict(seed=2 ** 64), r"seed must be at most 2\*\*63 - 1"),
    (dict(zipf_exponent=float("inf")), "zipf_exponent must be finite, got inf"),
    (dict(zipf_exponent="1.1"), "zipf_exponent must be a number, got '1.1'"),
    (dict(new_id_rate="x"), "new_id_rate must be a number"),
    (dict(first_order_scale=float("inf")), "first_order_scale must be finite"),
    (dict(interaction_scale=float("nan")), "interaction_scale must be finite"),
    (dict(numeric_scale=True), "numeric_scale must be a number"),
    (dict(numeric_missing_rate="0.1"), "numeric_missing_rate must be a number"),
    (dict(categorical_missing_rate=1.0), r"categorical_missing_rate must be >= 0 and < 1"),
    (dict(target_ctr=1e-30), r"target_ctr must be >= 1e-06 and <= 0.999999, got 1e-30"),
])
def test_config_validation(kwargs, pattern):
    with pytest.raises(ValueError, match=pattern):
        SyntheticConfig(**kwargs)


def test_numpy_scalar_parameters_give_the_same_rows():
    plain = SyntheticCTR(**SMALL).generate(500)
    numpy_scalars = SyntheticCTR(**SMALL, first_order_scale=np.float32(1.0),
                                 numeric_scale=np.float64(0.5), new_id_rate=np.float32(0.05))
    _same_rows(numpy_scalars.generate(500), plain)


@pytest.mark.parametrize("kwargs", [
    dict(first_order_scale=50.0, target_ctr=0.001),   # bias far below -30
    dict(interaction_scale=40.0, target_ctr=0.999),   # bias far above 30
    dict(target_ctr=1e-6),
])
def test_bias_reaches_the_target_ctr(kwargs):
    from deeprec_lite.data.synthetic.generator import CHUNK_ROWS
    gen = SyntheticCTR(**{**SMALL, **kwargs})
    # The bias is calibrated on the first chunk of day 0: its mean probability is the target.
    mean = gen.generate(CHUNK_ROWS).probabilities.mean()
    assert mean == pytest.approx(kwargs["target_ctr"], rel=1e-6)


def test_row_argument_validation():
    with pytest.raises(ValueError, match="day must be"):
        SyntheticCTR(**SMALL).generate(10, day=-1)


@pytest.mark.parametrize("call, pattern", [
    (lambda g, d: g.iter_rows(100, max_rows=-1), "max_rows must be a positive integer, got -1"),
    (lambda g, d: g.iter_rows(100, max_rows=0), "max_rows must be a positive integer, got 0"),
    (lambda g, d: g.iter_rows(-1), "num_rows must be a non-negative integer, got -1"),
    (lambda g, d: g.bayes_auc(0), "num_rows must be an integer >= 2, got 0"),
    (lambda g, d: g.true_weights(-1, [1]), r"field must be an integer in \[0, 5\), got -1"),
    (lambda g, d: g.true_weights(5, [1]), r"field must be an integer in \[0, 5\), got 5"),
    (lambda g, d: g.dataset(-5, 10), "num_rows must be a non-negative integer, got -5"),
    (lambda g, d: g.dataset(5, 10, day=-1), "day must be a non-negative integer, got -1"),
    (lambda g, d: write_parquet(g, d, -5), "num_rows must be a non-negative integer, got -5"),
    (lambda g, d: write_csv(g, d, 0, day=-3), "day must be a non-negative integer, got -3"),
    (lambda g, d: write_parquet(g, d, 2.5), "num_rows must be a non-negative integer, got 2.5"),
])
def test_row_arguments_fail_when_called(tmp_path, call, pattern):
    # Named errors from the call itself, not from iterating what it returns.
    with pytest.raises(ValueError, match=pattern):
        call(SyntheticCTR(**SMALL), str(tmp_path))
    assert not os.listdir(tmp_path)


def test_iter_rows_max_rows_splits_the_rows():
    gen = SyntheticCTR(**SMALL)
    pieces = list(gen.iter_rows(25, start_row=3, max_rows=10))
    assert [p.num_rows for p in pieces] == [10, 10, 5]
    whole = gen.generate(25, start_row=3)
    np.testing.assert_array_equal(np.concatenate([p.probabilities for p in pieces]),
                                  whole.probabilities)
