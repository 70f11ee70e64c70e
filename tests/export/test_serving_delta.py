"""Serving from deltas (export.serving_delta): the serving SavedModel rebuilt from the
serving model of an earlier step and a serving delta serves, bit for bit, what
export_saved_model of the live model serves at the later step, runs stock TensorFlow
only, and can be the base of the next delta; a delta of another base is refused."""
import os

import numpy as np
import pytest

from deeprec_lite import CounterFilter, StalenessEviction, cli
from deeprec_lite.compat import tf
from deeprec_lite.data.synthetic.generator import SyntheticCTR, SyntheticConfig
from deeprec_lite.export import export_saved_model
from deeprec_lite.export.serving_delta import apply_serving_delta, export_serving_delta
from deeprec_lite.kv import TableConfig
from deeprec_lite.training import optimizers
from deeprec_lite.training.model_tables import kv_tables

FILTERS = dict(min_freq=2, max_staleness=10)


def trained_deepfm():
    from deeprec_lite import models

    gen = SyntheticCTR(SyntheticConfig(num_categorical=3, num_numeric=1, vocab_sizes=3000,
                                       seed=2))
    table = TableConfig(4, admission=CounterFilter(2),
                        eviction=StalenessEviction(14, every_n_steps=4))
    model = models.DeepFM(gen.schema, table=table, dnn=(8,))
    model.compile(optimizer=optimizers.Adagrad(0.05), loss="binary_crossentropy")
    model.fit(gen.dataset(4000, 200, day=0), verbose=0)
    return gen, model


def batch_of(gen, day):
    rows = gen.generate(3000, day=day)
    batch = {f.name: rows.columns[f.name] for f in gen.schema.categorical}
    batch.update({f.name: np.log1p(np.nan_to_num(rows.columns[f.name])).astype(np.float32)
                  for f in gen.schema.numeric})
    return batch


def served(directory, batch, model):
    loaded = tf.saved_model.load(str(directory))
    keys = {name: kv.export().keys.numpy() for name, kv in kv_tables(model).items()}
    return loaded.serve(batch).numpy(), {name: loaded.tables[name].lookup(k).numpy()
                                         for name, k in keys.items()}


def test_a_rebuilt_serving_model_serves_what_a_full_export_serves(tmp_path):
    gen, model = trained_deepfm()
    export_saved_model(model, tmp_path / "s0", **FILTERS)
    base = tmp_path / "s0"
    for day in (1, 2):
        model.fit(gen.dataset(1500, 200, day=day), verbose=0)
        if day == 2:  # served keys removed and seen once again: no longer served
            for kv in kv_tables(model).values():
                keys = kv.export().keys.numpy()[:20]
                kv.remove(keys)
                kv.lookup_or_insert(keys, global_step=kv.step)
        delta = export_serving_delta(model, tmp_path / f"delta{day}", since=base)
        assert delta["kind"] == "serving_delta"
        rebuilt = tmp_path / f"rebuilt{day}"
        if day == 1:
            apply_serving_delta(base, tmp_path / f"delta{day}", rebuilt)
        else:  # the shell command
            assert cli.main(["serving", "apply-delta", "--base", str(base), "--delta",
                             str(tmp_path / f"delta{day}"), "--out", str(rebuilt)]) == 0
        full = export_saved_model(model, tmp_path / f"full{day}", **FILTERS)
        batch = batch_of(gen, day)
        got, got_rows = served(rebuilt, batch, model)
        want, want_rows = served(tmp_path / f"full{day}", batch, model)
        np.testing.assert_array_equal(got, want)
        for name in want_rows:
            np.testing.assert_array_equal(got_rows[name], want_rows[name])
        # the delta is a fraction of the model
        embeddings = os.path.join(tmp_path / f"delta{day}", "embeddings")
        kept = sum(t["kept"] for t in delta["tables"].values())
        assert os.path.isdir(embeddings) and kept < sum(t["kept"] for t in full["tables"].values())
        # keys left: evicted, or dropped by the staleness filter
        assert sum(t["tombstones"]["rows"] for t in delta["tables"].values()) > 0
        graph = open(os.path.join(rebuilt, "saved_model.pb"), "rb").read()
        assert b"DrlKv" not in graph  # stock TensorFlow only
        base = rebuilt  # the next delta builds on the rebuilt model


def test_a_delta_of_another_base_is_refused(tmp_path):
    gen, model = trained_deepfm()
    export_saved_model(model, tmp_path / "s0", **FILTERS)
    model.fit(gen.dataset(1000, 200, day=1), verbose=0)
    export_saved_model(model, tmp_path / "s1", **FILTERS)
    export_serving_delta(model, tmp_path / "delta", since=tmp_path / "s1")
    with pytest.raises(ValueError, match=r"is the delta of export .*, not of .*s0"):
        apply_serving_delta(tmp_path / "s0", tmp_path / "delta", tmp_path / "out")
    assert cli.main(["serving", "apply-delta", "--base", str(tmp_path / "s0"), "--delta",
                     str(tmp_path / "delta"), "--out", str(tmp_path / "out")]) == 2
    with pytest.raises(ValueError, match="not a serving delta"):
        apply_serving_delta(tmp_path / "s0", tmp_path / "s1", tmp_path / "out")
    with pytest.raises(ValueError, match="not a serving SavedModel"):
        apply_serving_delta(tmp_path / "delta", tmp_path / "delta", tmp_path / "out")
    assert not os.path.exists(tmp_path / "out")


def test_a_table_refilled_in_place_keeps_its_rows_and_drops_dead_ones():
    import pyarrow as pa

    from deeprec_lite.export import arrow_tables
    from deeprec_lite.export.serving_delta import _apply_to_table
    from deeprec_lite.export.serving_table import ServingTable

    dim = 2
    keys = np.arange(1, 11, dtype=np.int64)
    table = ServingTable(keys, np.arange(20, dtype=np.float32).reshape(10, 2), [-1.0, -1.0])

    def delta(upserts, tombstones):
        values = np.full((len(upserts), dim), 100.0, np.float32) + upserts[:, None]
        records = arrow_tables.records_table(pa.array(upserts), values,
                                             np.ones(len(upserts)), np.ones(len(upserts)))
        _apply_to_table(table, records, pa.array(tombstones, pa.int64()))

    delta(np.array([2, 11], np.int64), [3])  # 2 overwritten, 11 new, 3 gone: no compaction
    assert len(table.values.numpy()) == 12
    want = {1: [0, 1], 2: [102, 102], 3: [-1, -1], 4: [6, 7], 11: [111, 111], 99: [-1, -1]}
    got = table.lookup(tf.constant(list(want), tf.int64)).numpy()
    np.testing.assert_array_equal(got, np.array(list(want.values()), np.float32))
    delta(np.array([12], np.int64), list(range(4, 11)))  # 3 live keys, 9 dead rows: compacted
    assert len(table.values.numpy()) == 1 + 4
    want = {1: [0, 1], 2: [102, 102], 5: [-1, -1], 11: [111, 111], 12: [112, 112]}
    got = table.lookup(tf.constant(list(want), tf.int64)).numpy()
    np.testing.assert_array_equal(got, np.array(list(want.values()), np.float32))
