"""KVEmbeddingGroup and the fused update: one lookup op and one update op for many
tables, record for record the same as the per-table path of ops.

The reference does not use the grouped ops at all: per feature, the core API's
KVVariable.lookup_or_insert (tf.unique_with_counts, DrlKvFindOrInsert) and
SparseOptimizer.apply of the gathered rows' gradients, summed by TensorFlow (one
DrlKvApply* per table, without an index).
"""
import numpy as np
import pytest

from deeprec_lite.compat import keras, tf
from deeprec_lite.kv import (CounterFilter, StalenessEviction, TableConfig, op_library,
                              sparse_optimizers)
from deeprec_lite.kv.partitioned_variable import PartitionedKVVariable
from deeprec_lite.kv.variable import KVVariable
from deeprec_lite.layers import KVEmbedding, KVEmbeddingGroup
from deeprec_lite.training import optimizers

BATCH = 64


def member_specs():
    """(name, dim, key dtype, combiner, sequence) of the group's features."""
    return [("user", 4, "int64", None, False), ("items", 4, "int64", "mean", False),
            ("tags", 4, "string", "sqrtn", False), ("clicks", 3, "int64", None, True),
            ("country", 4, "string", None, False), ("pair", 2, "int64", "sum", False),
            ("recent", 2, "int64", None, True)]


def make_members(grouped, num_shards=None, admission=True):
    table = dict(admission=CounterFilter(2) if admission else None,
                 eviction=StalenessEviction(2, every_n_steps=3), seed=5)
    members = []
    for name, dim, dtype, combiner, sequence in member_specs():
        config = TableConfig(dim, key_dtype=dtype, num_shards=num_shards, grouped=grouped,
                             **table)
        max_length = {"clicks": 3, "recent": 2}.get(name)
        members.append(KVEmbedding(config, combiner=combiner, sequence=sequence,
                                   max_length=max_length, name=name))
    # "user_again" shares the user table: the group names that table twice
    members.append(KVEmbedding(members[0].table, shared_table=members[0].kv, name="user_again"))
    return members


def batches(steps, seed=0):
    """Per step the ids of each member (ragged, dense [B, 2] for "pair", dense [B, 3] for
    "recent", dense [B] else)."""
    return [ids for ids, _ in weighted_batches(steps, seed)]


def weighted_batches(steps, seed=0):
    """Per step (ids, weights): weights for the ragged mean ("items") and the dense sum
    ("pair"), None for the others; zero weights make some examples' norm 0."""
    rng = np.random.default_rng(seed)
    out = []
    for _ in range(steps):
        zipf = lambda size: np.minimum(rng.zipf(1.3, size), 200).astype(np.int64)
        lengths = rng.integers(0, 4, BATCH)
        items = tf.RaggedTensor.from_row_lengths(zipf(lengths.sum()), lengths)
        tag_lengths = rng.integers(1, 3, BATCH)
        tags = tf.RaggedTensor.from_row_lengths(
            tf.strings.as_string(zipf(tag_lengths.sum())), tag_lengths)
        click_lengths = rng.integers(0, 5, BATCH)
        clicks = tf.RaggedTensor.from_row_lengths(zipf(click_lengths.sum()), click_lengths)
        country = tf.strings.as_string(zipf(BATCH) % 7)
        pair = tf.constant(zipf(2 * BATCH).reshape(BATCH, 2))
        recent = tf.constant(zipf(3 * BATCH).reshape(BATCH, 3))
        item_weights = items.with_flat_values(
            rng.choice([0.0, 0.5, 1.5, 3.0], lengths.sum()).astype(np.float32))
        pair_weights = tf.constant(rng.uniform(0, 2, (BATCH, 2)).astype(np.float32))
        ids = [tf.constant(zipf(BATCH)), items, tags, clicks, country, pair, recent,
               tf.constant(zipf(BATCH))]
        out.append((ids, [None, item_weights, None, None, None, pair_weights, None, None]))
    return out


def loss_of(outputs):
    """A fixed linear function of every output (each output element its own weight)."""
    total = 0.0
    for i, out in enumerate(outputs):
        flat = tf.reshape(out, [BATCH, -1])
        weights = tf.sin(tf.range(tf.shape(flat)[1], dtype=tf.float32) + 1.0 + i)
        total += tf.reduce_sum(flat * weights[None, :] * tf.cos(tf.range(BATCH, dtype=tf.float32)
                                                                 )[:, None])
    return total


def train_grouped(sparse, steps=7, num_shards=None):
    group = KVEmbeddingGroup(make_members(True, num_shards), name="group")
    optimizer = optimizers.KVOptimizer(sparse, keras.optimizers.SGD(0.1))

    @tf.function
    def step(ids, weights):
        with tf.GradientTape() as tape:
            loss = loss_of(group(ids, weights=weights, training=True))
        variables = group.trainable_weights
        optimizer.apply_gradients(zip(tape.gradient(loss, variables), variables))
        return loss

    for ids, weights in weighted_batches(steps):
        step(ids, weights)
    return {m.name: m.kv for m in group.embeddings}, step


def train_reference(sparse, steps=7):
    members = make_members(False)

    @tf.function
    def step(ids, weights, global_step):
        with tf.GradientTape() as tape:
            outputs, lookups = [], []
            for member, x, w in zip(members, ids, weights):
                x = member._ids(x)
                unique, index, counts = tf.unique_with_counts(member._flat_ids(x),
                                                              out_idx=tf.int64)
                values, _ = member.kv.lookup_or_insert(unique, counts)
                tape.watch(values)
                lookups.append((unique, values))
                outputs.append(member._output(x, w, tf.gather(values, index)))
            loss = loss_of(outputs)
        grads = tape.gradient(loss, [values for _, values in lookups])
        for member, (unique, _), grad in zip(members, lookups, grads):
            member.kv.ensure_slots(sparse.slots)
            sparse.apply(member.kv, unique, tf.convert_to_tensor(grad), global_step,
                         unique_keys=True)
        for member in members:  # evictions after all updates (user_again shares user)
            member.kv.step.assign(global_step)
            member.kv.maybe_evict(global_step)
        return loss

    for t, (ids, weights) in enumerate(weighted_batches(steps)):
        step(ids, weights, tf.constant(t + 1, tf.int64))
    return {m.name: m.kv for m in members}


def sorted_records(kv):
    records = kv.export()
    order = np.argsort(records.keys.numpy())
    return {field: getattr(records, field).numpy()[order]
            for field in ("keys", "values", "slots", "freqs", "versions", "admitted")}


@pytest.mark.parametrize("sparse", [
    sparse_optimizers.SGD(0.2), sparse_optimizers.Adagrad(0.3), sparse_optimizers.Adam(0.05),
    sparse_optimizers.Ftrl(0.2, l1_regularization_strength=0.01),
    sparse_optimizers.GroupFtrl(0.2, lambda1=0.01)], ids=lambda o: type(o).__name__)
def test_grouped_tables_match_the_per_table_path_record_for_record(sparse):
    grouped, _ = train_grouped(sparse)
    reference = train_reference(sparse)
    check_same_records(grouped, reference)


def check_same_records(grouped, reference):
    evicted = pending = 0
    for name in grouped:
        got, want = sorted_records(grouped[name]), sorted_records(reference[name])
        assert len(want["keys"]) > 5
        for field in want:
            np.testing.assert_array_equal(got[field], want[field], err_msg=f"{name}.{field}")
        pending += int(np.sum(~got["admitted"]))
        evicted += int(grouped[name].evicted.numpy())
        assert int(grouped[name].evicted.numpy()) == int(reference[name].evicted.numpy())
        assert int(grouped[name].step.numpy()) == 7
    assert evicted > 0 and pending > 0  # eviction removed keys, admission kept some pending


def test_partitioned_tables_in_a_group_match_the_per_table_path():
    sparse = sparse_optimizers.Adam(0.05)
    grouped, step = train_grouped(sparse, num_shards=3)
    assert isinstance(grouped["user"], PartitionedKVVariable)
    check_same_records(grouped, train_reference(sparse))
    graph = step.get_concrete_function(*weighted_batches(1)[0]).graph
    kinds = [op.type for op in graph.get_operations() if op.type.startswith("DrlKv")]
    # all shards live on this machine: one lookup and one update per key dtype, and the
    # features' distinct ids routed to the shards by one op per key dtype
    assert kinds.count("DrlKvGroupFindOrInsert") == 2 and kinds.count("DrlKvApplyAdam") == 2
    assert kinds.count("DrlKvGroupRoute") == 2 and "DrlKvShardIndex" not in kinds
    per_feature = {"DynamicPartition", "DynamicStitch"}
    assert not per_feature & {op.type for op in graph.get_operations()}


def test_one_lookup_and_one_update_op_per_step_for_all_tables():
    _, step = train_grouped(sparse_optimizers.Adagrad(0.1), steps=1)
    graph = step.get_concrete_function(*weighted_batches(1)[0]).graph
    kinds = [op.type for op in graph.get_operations() if op.type.startswith("DrlKv")]
    # one lookup per key dtype (int64, string), one update per key dtype, and the gradient
    # of each of the 5 pooled features' pooling
    assert sorted(kinds) == (["DrlKvApplyAdagrad"] * 2 + ["DrlKvGroupFindOrInsert"] * 2
                             + ["DrlKvPoolingGrad"] * 5)
    # combiners and sequence padding run inside the lookup op
    tf_pooling = {"UnsortedSegmentSum", "RaggedTensorToTensor", "DivNoNan", "GatherV2"}
    assert not tf_pooling & {op.type for op in graph.get_operations()}
    # the gradient anchors ([1, dim] weights, the group's only ones) get their gradients
    # without being read: no remote read on a parameter-server cluster (the records of
    # the tests above show they still get them)
    assert not [op.name for op in graph.get_operations()
                if op.type == "ReadVariableOp" and op.outputs[0].shape.rank == 2]


def test_pooled_training_outputs_equal_the_inference_outputs():
    # no admission: a key that the shared table admits at "user_again"'s lookup would
    # give "user" (looked up before) the default value but the initial value at inference
    group = KVEmbeddingGroup(make_members(True, admission=False), name="group")
    (ids, weights), = weighted_batches(1, seed=3)
    trained = group(ids, weights=weights, training=True)  # creates the keys, no update
    served = group(ids, weights=weights, training=False)  # pools with TensorFlow ops
    for member, got, want in zip(group.embeddings, trained, served):
        assert got.shape == want.shape, member.name
        np.testing.assert_array_equal(got.numpy(), want.numpy(), err_msg=member.name)
    assert np.any(trained[1].numpy() == 0) and np.any(trained[1].numpy() != 0)


@pytest.mark.parametrize("mode", ["error", "skip"])
def test_a_nonfinite_gradient_in_one_table_of_the_group(mode):
    sparse = sparse_optimizers.Adagrad(0.1, nonfinite_gradients=mode)
    tables = [KVVariable(2, slots=sparse.slots, name=f"t{i}") for i in range(3)]
    for t in tables:
        t.lookup_or_insert([1, 2, 3])
    before = [sorted_records(t) for t in tables]
    keys = [tf.constant([1, 2], tf.int64)] * 3
    indices = [tf.constant([0, 1, 1], tf.int64)] * 3
    grads = [tf.ones([3, 2]), tf.constant([[1.0, 1.0], [np.nan, 1.0], [1.0, 1.0]]),
             tf.ones([3, 2])]
    if mode == "error":
        with pytest.raises(tf.errors.InvalidArgumentError, match=r"'t1'.*1 of 2"):
            sparse.apply_indexed(tables, keys, indices, grads, 4)
        for t, b in zip(tables, before):  # nothing applied to any table
            for field, value in sorted_records(t).items():
                np.testing.assert_array_equal(value, b[field])
        return
    updated = [int(u) for u in sparse.apply_indexed(tables, keys, indices, grads, 4)]
    assert updated == [2, 1, 2]
    assert [t.stats()["nonfinite_skipped"] for t in tables] == [0, 1, 0]
    versions = sorted_records(tables[1])["versions"]
    np.testing.assert_array_equal(versions, [4, 0, 0])  # key 2 (NaN) and 3 (absent) unchanged


def test_indexed_update_sums_each_keys_rows_in_float32_order():
    sparse = sparse_optimizers.SGD(1.0)
    kv = KVVariable(1, initializer="zeros")
    kv.lookup_or_insert([5, 6])
    rows = np.array([[1e8], [1.0], [-1e8], [1.0], [3.0]], np.float32)
    sparse.apply_indexed([kv], [[5, 6]], [[0, 0, 0, 0, 1]], [rows], 1)
    want = np.float32(0)
    for r in rows[:4, 0]:
        want = np.float32(want + r)  # ((1e8 + 1) - 1e8) + 1 = 1 in float32
    np.testing.assert_array_equal(kv.lookup([5, 6]).numpy()[:, 0], [-want, -3.0])


def test_counts_of_the_group_lookup_add_up_per_distinct_id():
    # what a partitioned table's shards get: ids with their numbers of occurrences
    kv = KVVariable(2, admission=CounterFilter(5), name="clicks")
    ops = op_library.load()
    out = ops.drl_kv_group_find_or_insert(
        [kv.resource_handle], [tf.constant([5, 6, 5], tf.int64)], [tf.constant(3, tf.int64)],
        [tf.zeros([0], tf.int64)], [tf.zeros([0])], [tf.constant([2, 3, 4], tf.int64)])
    assert out.index[0].numpy().tolist() in ([0, 1, 0], [1, 0, 1])
    records = sorted_records(kv)
    assert records["keys"].tolist() == [5, 6] and records["freqs"].tolist() == [6, 3]
    assert records["admitted"].tolist() == [True, False]  # 6 >= 5 > 3
    # a sum past int64 stays at its largest value (wrapped, 6 would read as never seen)
    ops.drl_kv_group_find_or_insert(
        [kv.resource_handle], [tf.constant([6, 6], tf.int64)], [tf.constant(4, tf.int64)],
        [tf.zeros([0], tf.int64)], [tf.zeros([0])], [tf.constant([2 ** 63 - 2, 7], tf.int64)])
    records = sorted_records(kv)
    assert records["freqs"].tolist() == [6, 2 ** 63 - 1]
    assert records["admitted"].tolist() == [True, True]


def test_bad_index_and_ids_are_named():
    sparse = sparse_optimizers.SGD(1.0)
    kv = KVVariable(2, name="clicks")
    with pytest.raises(tf.errors.InvalidArgumentError, match=r"index\[1\] = 2 is not in \[0, 2\)"):
        sparse.apply_indexed([kv], [[5, 6]], [[0, 2]], [tf.ones([2, 2])], 1)
    with pytest.raises(tf.errors.InvalidArgumentError,
                       match=r"grads of table 'clicks' must have shape index.shape"):
        sparse.apply_indexed([kv], [[5, 6]], [[0, 1]], [tf.ones([3, 2])], 1)
    with pytest.raises(ValueError, match="one entry per table, got 1, 2, 1 and 1"):
        sparse.apply_indexed([kv], [[5], [6]], [[0]], [tf.ones([1, 2])], 1)
    ops = op_library.load()
    with pytest.raises(tf.errors.InvalidArgumentError,
                       match=r"ids\[0\] \(table 'clicks'\) must be a vector"):
        ops.drl_kv_group_find_or_insert([kv.resource_handle], [tf.constant([[1]], tf.int64)],
                                        [tf.constant(0, tf.int64)], [tf.zeros([0], tf.int64)],
                                        [tf.zeros([0])], [tf.zeros([0], tf.int64)])

    def pooled(row_splits, weights, combiner="mean", counts=()):
        return ops.drl_kv_group_find_or_insert(
            [kv.resource_handle], [tf.constant([1, 2, 3], tf.int64)], [tf.constant(0, tf.int64)],
            [tf.constant(row_splits, tf.int64)], [tf.constant(weights, tf.float32)],
            [tf.constant(counts, tf.int64)], combiners=[combiner], max_lengths=[-1])

    with pytest.raises(tf.errors.InvalidArgumentError,
                       match=r"ids\[0\] \(table 'clicks'\): counts must be empty or have one "
                             r"entry per key \(3\), got shape \[2\]"):
        pooled([0, 3], [], counts=[1, 2])
    with pytest.raises(tf.errors.InvalidArgumentError,
                       match=r"ids\[0\] \(table 'clicks'\): counts must be >= 0, got -1 at "
                             r"position 2"):
        pooled([0, 3], [], counts=[1, 2, -1])

    with pytest.raises(tf.errors.InvalidArgumentError,
                       match=r"table 'clicks'.*row_splits must start at 0 and end at the "
                             r"number of ids \(3\), got 0 .. 2"):
        pooled([0, 2], [])
    with pytest.raises(tf.errors.InvalidArgumentError, match=r"must not decrease, got 2 then 1"):
        pooled([0, 2, 1, 3], [])
    with pytest.raises(tf.errors.InvalidArgumentError,
                       match=r"weights must be empty or one per id \(3\), got shape \[2\]"):
        pooled([0, 3], [1.0, 2.0])
    with pytest.raises(tf.errors.InvalidArgumentError, match=r"combiners.*got 'max'"):
        pooled([0, 3], [], combiner="max")
    with pytest.raises(tf.errors.InvalidArgumentError,
                       match=r"grad must have shape \[2,2\], got \[3,2\]"):
        ops.drl_kv_pooling_grad(tf.ones([3, 2]), tf.constant([0, 1, 3], tf.int64),
                                tf.zeros([0]), combiner="sum")
    with pytest.raises(ValueError, match="embeddings must be a non-empty list of KVEmbedding"):
        KVEmbeddingGroup([keras.layers.Dense(1)])
    group = KVEmbeddingGroup([KVEmbedding(2, name="a"), KVEmbedding(2, name="b")])
    with pytest.raises(ValueError, match="ids must be a list of 2 tensors"):
        group([tf.constant([1], tf.int64)])


def test_config_round_trip_keeps_shared_tables():
    first = KVEmbedding(TableConfig(3, admission=CounterFilter(2)), name="a")
    group = KVEmbeddingGroup([first, KVEmbedding(first.table, shared_table=first.kv, name="b"),
                              KVEmbedding(TableConfig(2, key_dtype="string"), combiner="mean",
                                          name="c")], name="g")
    config = group.get_config()
    assert config["shares"] == [None, 0, None]
    again = KVEmbeddingGroup.from_config(config)
    assert [m.name for m in again.embeddings] == ["a", "b", "c"]
    assert again.embeddings[1].kv is again.embeddings[0].kv
    assert again.embeddings[2].kv is not again.embeddings[0].kv
    assert again.embeddings[2].combiner == "mean"
    assert again.embeddings[0].table == first.table


def test_inference_outputs_equal_the_members_own_calls():
    group = KVEmbeddingGroup(make_members(True))
    ids = batches(1)[0]
    group(ids, training=True)  # insert keys
    together = group(ids, training=False)
    for member, x, out in zip(group.embeddings, ids, together):
        np.testing.assert_array_equal(out.numpy(), member(x, training=False).numpy())
