"""Serving from deltas (export.serving_delta): the serving SavedModel rebuilt from the
serving model of an earlier step and a serving delta serves, bit for bit, what
export_saved_model of the live model serves at the later step, runs stock TensorFlow
only, and can be the base of the next delta; a delta of another base is refused."""
import os

import numpy as np
import pytest

from deeprec_lite import CounterFilter, StalenessEviction
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
        delta = export_serving_delta(model, tmp_path / f"delta{day}", since=base)
        assert delta["kind"] == "serving_delta"
        rebuilt = tmp_path / f"rebuilt{day}"
        apply_serving_delta(base, tmp_path / f"delta{day}", rebuilt)
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
    with pytest.raises(ValueError, match="not a serving delta"):
        apply_serving_delta(tmp_path / "s0", tmp_path / "s1", tmp_path / "out")
    with pytest.raises(ValueError, match="not a serving SavedModel"):
        apply_serving_delta(tmp_path / "delta", tmp_path / "delta", tmp_path / "out")
    assert not os.path.exists(tmp_path / "out")
