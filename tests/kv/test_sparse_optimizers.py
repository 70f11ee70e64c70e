"""Fused sparse optimizers on KV tables: numpy reference, tf_keras agreement, G-FTRL
properties, version stamping, checkpoints and bad input."""
import numpy as np
import pytest

from deeprec_lite.compat import keras, tf
from deeprec_lite.kv import initializers as kv_initializers, op_library, sparse_optimizers as so
from deeprec_lite.kv.policies import CounterFilter
from deeprec_lite.kv.variable import KVVariable
from kv_reference import records_by_key
from optimizer_reference import SCENARIOS, f32

RTOL = 1e-6


def assert_close(actual, desired, err_msg=""):
    """Equal to 1e-6 relative, measured per row (last axis): |a - d| <= 1e-6 * max|d_row|.

    Per row rather than per element because an element that is a small difference
    of large terms (w - lr * g landing near 0) carries the rounding of the large
    terms, which the float32 storage makes unavoidable; a wrong formula is off by
    orders of magnitude more than this.
    """
    actual, desired = np.asarray(actual, np.float64), np.asarray(desired, np.float64)
    assert actual.shape == desired.shape, (actual.shape, desired.shape)
    scale = np.max(np.abs(desired), axis=-1, keepdims=True)
    bad = np.abs(actual - desired) > RTOL * np.maximum(scale, 1e-30)
    assert not bad.any(), (f"{err_msg}: {bad.sum()} elements differ by more than {RTOL} of "
                           f"their row's scale\nactual {actual[bad]}\ndesired {desired[bad]}")


class Reference:
    """Rows {key: (value, slots)} updated by `update` once per distinct key."""

    def __init__(self, update, **hp):
        self.update = update
        self.hp = {k: f32(v) for k, v in hp.items()}
        self.rows, self.versions, self.initial = {}, {}, {}

    def adopt_new_rows(self, kv, slot_inits):
        """Takes the initial value of keys the table admitted since the last call."""
        for key, (value, _, version, slots, admitted) in records_by_key(kv.export()).items():
            if admitted and key not in self.rows:
                expect = np.repeat(np.float32(slot_inits)[:, None], kv.dim, axis=1)
                np.testing.assert_array_equal(slots.reshape(expect.shape), expect)
                self.rows[key] = (value.copy(), slots.copy())
                self.initial[key] = value.copy()
                self.versions[key] = version

    def apply(self, keys, grads, step, lr):
        sums = {}  # gradients of duplicates are summed in float32, as the table gets them
        for key, g in zip(keys, grads):
            sums[key] = np.float32(sums.get(key, np.float32(0.0)) + np.float32(g))
        updated = 0
        for key, g in sums.items():
            if key not in self.rows:
                continue  # absent or not admitted
            w, s = self.rows[key]
            w, s = self.update(np.float64(w), np.float64(s), g, f32(lr), step, self.hp)
            self.rows[key] = (np.float32(w), np.float32(s))
            self.versions[key] = step
            updated += 1
        return updated

    def assert_matches(self, kv):
        got = records_by_key(kv.export())
        admitted = {k for k, r in got.items() if r[4]}
        assert admitted == set(self.rows)
        for key, (w, s) in self.rows.items():
            value, _, version, slots, _ = got[key]
            assert_close(value, w, err_msg=f"value of {key}")
            assert_close(slots, s, err_msg=f"slots of {key}")
            assert version == self.versions[key], (key, version, self.versions[key])


@pytest.mark.parametrize("name", sorted(SCENARIOS))
@pytest.mark.parametrize("key_dtype", ["int64", "string"])
def test_matches_numpy_reference(name, key_dtype):
    """6 steps with duplicate keys, keys not admitted, absent keys and a learning-rate
    variable that changes every step."""
    make, update, hp = SCENARIOS[name]
    lr = tf.Variable(0.3)
    opt = make(lr)
    kv = KVVariable(4, key_dtype=key_dtype, slots=opt.slots, admission=CounterFilter(2),
                    initializer=kv_initializers.uniform(-0.5, 0.5), seed=7)
    ref = Reference(update, **hp)
    rng = np.random.default_rng(1)
    as_key = (lambda k: k) if key_dtype == "int64" else (lambda k: f"id{k}".encode())
    skipped_pending = 0
    for step in range(6):
        lookup = rng.integers(0, 12, size=9)
        kv.lookup_or_insert(np.array([as_key(k) for k in lookup]), global_step=step)
        ref.adopt_new_rows(kv, list(opt.slots.values()))
        pending = {k for k, r in records_by_key(kv.export()).items() if not r[4]}
        # every looked-up key (duplicates included), twice key 3, and absent keys 50, 51
        batch = np.concatenate([lookup, [3, 3, 50, 51]])
        keys = np.array([as_key(k) for k in batch]).reshape(-1, 1)  # rank 2 keys
        grads = rng.normal(size=(len(batch), 1, 4)).astype(np.float32)
        lr.assign(0.3 / (1 + step) + 0.01 * step)
        updated = opt.apply(kv, keys, grads, global_step=step)
        expected = ref.apply([k[0] for k in keys], grads[:, 0], step, lr.numpy())
        assert int(updated) == expected
        skipped_pending += len(pending & {k[0] for k in keys})
        ref.assert_matches(kv)
    assert skipped_pending > 0  # the scenario exercised admission
    moved = [k for k in ref.rows if not np.allclose(ref.rows[k][0], ref.initial[k], atol=1e-4)]
    assert len(moved) >= len(ref.rows) // 2


# ----- agreement with tf_keras's optimizers on a dense variable --------------------

KERAS_CASES = {
    "sgd": (lambda lr: so.SGD(lr), lambda lr: keras.optimizers.SGD(lr, jit_compile=False)),
    "adagrad": (lambda lr: so.Adagrad(lr, initial_accumulator_value=0.3, epsilon=0.01),
                lambda lr: keras.optimizers.Adagrad(lr, initial_accumulator_value=0.3,
                                                    epsilon=0.01, jit_compile=False)),
    "adam": (lambda lr: so.Adam(lr, beta_1=0.85, beta_2=0.99, epsilon=1e-6),
             lambda lr: keras.optimizers.Adam(lr, beta_1=0.85, beta_2=0.99, epsilon=1e-6,
                                              jit_compile=False)),
    "ftrl": (lambda lr: so.Ftrl(lr, initial_accumulator_value=0.2,
                                l1_regularization_strength=0.02,
                                l2_regularization_strength=0.05,
                                l2_shrinkage_regularization_strength=0.01, beta=0.4),
             lambda lr: keras.optimizers.Ftrl(lr, initial_accumulator_value=0.2,
                                              l1_regularization_strength=0.02,
                                              l2_regularization_strength=0.05,
                                              l2_shrinkage_regularization_strength=0.01,
                                              beta=0.4, jit_compile=False)),
    "ftrl_power": (lambda lr: so.Ftrl(lr, learning_rate_power=-0.7,
                                      l1_regularization_strength=0.01),
                   lambda lr: keras.optimizers.Ftrl(lr, learning_rate_power=-0.7,
                                                    l1_regularization_strength=0.01,
                                                    jit_compile=False)),
}


@pytest.mark.parametrize("name", sorted(KERAS_CASES))
def test_matches_tf_keras_on_a_dense_variable(name):
    """Every row gets a gradient each step (so lazy and dense updates coincide); the
    learning rate is a tf_keras schedule, evaluated at global_step / iterations."""
    make, make_keras = KERAS_CASES[name]
    schedule = keras.optimizers.schedules.ExponentialDecay(0.2, decay_steps=1, decay_rate=0.7)
    opt, keras_opt = make(schedule), make_keras(schedule)
    keys = np.array([11, 22, 33, 44, 55], np.int64)
    kv = KVVariable(3, slots=opt.slots, initializer=kv_initializers.uniform(-1, 1), seed=2)
    kv.lookup_or_insert(keys)
    dense = tf.Variable(kv.lookup(keys))
    initial = dense.numpy()
    rng = np.random.default_rng(3)
    for step in range(6):
        idx = np.concatenate([rng.permutation(5), rng.integers(0, 5, size=4)])
        grads = rng.normal(size=(len(idx), 3)).astype(np.float32)
        dense_grad = np.zeros((5, 3), np.float32)
        np.add.at(dense_grad, idx, grads)
        keras_opt.apply_gradients([(tf.constant(dense_grad), dense)])
        assert int(opt.apply(kv, keys[idx], grads, global_step=step)) == 5
        assert_close(kv.lookup(keys), dense.numpy(), err_msg=f"step {step}")
    assert not np.allclose(dense.numpy(), initial, atol=1e-3)


# ----- duplicates, versions, graph mode ----------------------------------------------

def test_duplicate_keys_get_one_update_with_summed_gradient():
    opt = so.Adagrad(0.5)
    kvs = [KVVariable(2, slots=opt.slots, initializer="zeros") for _ in range(3)]
    for kv in kvs:
        kv.lookup_or_insert([5])
    opt.apply(kvs[0], [5, 5], [[1.0, 2.0], [1.0, 2.0]], global_step=1)
    opt.apply(kvs[1], [5], [[2.0, 4.0]], global_step=1)
    opt.apply(kvs[2], [5, 5], [[1.0, 2.0], [1.0, 2.0]], global_step=1, unique_keys=True)
    np.testing.assert_array_equal(kvs[0].lookup([5]), kvs[1].lookup([5]))
    np.testing.assert_array_equal(kvs[0].export().slots, kvs[1].export().slots)
    # without the dedup the key would get two updates, which is not the same
    assert not np.allclose(kvs[2].lookup([5]), kvs[1].lookup([5]))


@pytest.mark.parametrize("opt", [so.SGD(0.1), so.Adagrad(0.1), so.Adam(0.1), so.Ftrl(0.1),
                                 so.GroupFtrl(0.1)], ids=lambda o: type(o).__name__)
def test_version_is_stamped_only_on_updated_keys(opt):
    kv = KVVariable(3, slots=opt.slots, admission=CounterFilter(2))
    kv.lookup_or_insert([1, 1, 2, 2, 3, 4], global_step=1)  # 4 stays pending
    kv.lookup_or_insert([4], global_step=2)  # now 4 is admitted at step 2
    kv.lookup_or_insert([6], global_step=2)  # 6 pending
    assert int(opt.apply(kv, [1, 4, 6, 99], tf.ones([4, 3]), global_step=9)) == 2
    recs = records_by_key(kv.export())
    assert {k: r[2] for k, r in recs.items()} == {1: 9, 2: 1, 3: 1, 4: 9, 6: 2}
    assert not recs[6][4] and 99 not in recs
    np.testing.assert_array_equal(recs[6][0], np.zeros(3))


def test_apply_in_tf_function_with_unknown_shapes_and_string_keys():
    opt = so.Adam(0.05)
    kv = KVVariable(2, key_dtype="string", slots=opt.slots, initializer="zeros")
    eager = KVVariable(2, key_dtype="string", slots=opt.slots, initializer="zeros")

    @tf.function(input_signature=[tf.TensorSpec([None], tf.string),
                                  tf.TensorSpec([None, 2], tf.float32),
                                  tf.TensorSpec([], tf.int64)])
    def train(keys, grads, step):
        kv.lookup_or_insert(keys, global_step=step)
        return opt.apply(kv, keys, grads, step)

    rng = np.random.default_rng(0)
    for step in range(5):
        keys = tf.constant(["a", "b", "a", "c"][: 2 + step % 3])
        grads = tf.constant(rng.normal(size=(keys.shape[0], 2)), tf.float32)
        train(keys, grads, tf.constant(step, tf.int64))
        eager.lookup_or_insert(keys, global_step=step)
        opt.apply(eager, keys, grads, step)
    np.testing.assert_array_equal(kv.lookup(["a", "b", "c"]), eager.lookup(["a", "b", "c"]))
    assert np.abs(kv.lookup(["a", "b", "c"]).numpy()).min() > 0


# ----- non-finite gradients ---------------------------------------------------------------

NONFINITE = (np.nan, np.inf, -np.inf)


def skipping(opt):
    """The same optimizer with nonfinite_gradients="skip", made from its config."""
    return type(opt)(**dict(opt.get_config(), nonfinite_gradients="skip"))


def finite_part(keys, grads):
    """The batch's distinct keys whose summed gradient row (float32, in input order, as
    `apply` sums them) is finite, those rows, and the number of the other keys."""
    sums = {}
    for key, g in zip(keys, grads):
        sums[key] = np.float32(sums.get(key, np.float32(0.0)) + g)
    finite = {k: g for k, g in sums.items() if np.isfinite(g).all()}
    return list(finite), list(finite.values()), len(sums) - len(finite)


def assert_same_records(got, want):
    assert got.keys() == want.keys()
    for key in want:
        for name, x, y in zip(("value", "freq", "version", "slots", "admitted"), got[key],
                              want[key]):
            np.testing.assert_array_equal(x, y, err_msg=f"{name} of key {key}")


@pytest.mark.parametrize("name", sorted(SCENARIOS))
def test_nonfinite_gradient_rows_fail_the_update_and_change_nothing(name):
    opt = SCENARIOS[name][0](0.3)
    kv = KVVariable(4, slots=opt.slots, admission=CounterFilter(2),
                    initializer=kv_initializers.uniform(-0.5, 0.5), seed=7, name="ctr")
    kv.lookup_or_insert(np.concatenate([np.arange(12), np.arange(10)]), global_step=0)
    rng = np.random.default_rng(2)
    assert int(opt.apply(kv, np.arange(12), rng.normal(size=(12, 4)).astype(np.float32),
                         global_step=1)) == 10  # keys 10, 11 pending
    before = records_by_key(kv.export())
    for bad in NONFINITE:
        grads = rng.normal(size=(6, 4)).astype(np.float32)
        grads[1, 2] = grads[4, 0] = bad  # key 1 (admitted) and key 10 (pending)
        with pytest.raises(tf.errors.InvalidArgumentError,
                           match=r"table 'ctr': 2 of 6 gradient rows hold NaN or Inf; nothing "
                                 r"of the batch was applied"):
            opt.apply(kv, [0, 1, 2, 3, 10, 50], grads, global_step=2)
        assert_same_records(records_by_key(kv.export()), before)
    assert int(kv.stats()["nonfinite_skipped"]) == 0


@pytest.mark.parametrize("name", sorted(SCENARIOS))
def test_skip_applies_exactly_the_finite_rows_and_counts_the_others(name):
    """3 steps with NaN, +Inf and -Inf rows among finite ones, a duplicated key with one
    NaN occurrence (one non-finite row after the sum), and non-finite rows of pending
    and absent keys; the reference gets the finite rows only."""
    make, update, hp = SCENARIOS[name]
    opt = skipping(make(0.3))
    kv = KVVariable(4, slots=opt.slots, admission=CounterFilter(2),
                    initializer=kv_initializers.uniform(-0.5, 0.5), seed=7, name="ctr")
    kv.lookup_or_insert(np.arange(10), global_step=0)  # one more lookup admits these
    ref = Reference(update, **hp)
    rng = np.random.default_rng(4)
    skipped = applied = 0
    for step in range(3):
        lookup = rng.integers(0, 12, size=9)
        kv.lookup_or_insert(lookup, global_step=step)
        ref.adopt_new_rows(kv, list(opt.slots.values()))
        freqs = {k: r[1] for k, r in records_by_key(kv.export()).items()}
        keys = np.concatenate([lookup, [3, 3, 50]])
        grads = rng.normal(size=(len(keys), 4)).astype(np.float32)
        grads[rng.choice(9, 2, replace=False), rng.integers(0, 4, 2)] = NONFINITE[step]
        grads[9, 1] = np.nan   # the first of the two extra occurrences of key 3
        grads[11, 0] = np.inf  # absent key 50
        finite_keys, finite_grads, nonfinite = finite_part(keys, grads)
        updated = int(opt.apply(kv, keys, grads, global_step=step))
        assert updated == ref.apply(finite_keys, finite_grads, step, 0.3)
        applied += updated
        ref.assert_matches(kv)  # values, slots, versions: the non-finite keys are untouched
        assert {k: r[1] for k, r in records_by_key(kv.export()).items()} == freqs
        skipped += nonfinite
        assert int(kv.stats()["nonfinite_skipped"]) == skipped
    assert skipped >= 9 and applied >= 8  # the scenario exercised both kinds of rows


def test_nonfinite_gradients_in_a_tf_function_with_string_keys_and_duplicates():
    opt = so.Adam(0.05)
    kv = KVVariable(2, key_dtype="string", slots=opt.slots, initializer="zeros", name="users")

    def train(optimizer):
        return tf.function(lambda keys, grads, step: optimizer.apply(kv, keys, grads, step),
                           input_signature=[tf.TensorSpec([None], tf.string),
                                            tf.TensorSpec([None, 2], tf.float32),
                                            tf.TensorSpec([], tf.int64)])

    kv.lookup_or_insert(["a", "b", "c"])
    keys = tf.constant(["a", "b", "c", "a"])
    assert int(train(opt)(keys, tf.ones([4, 2]), tf.constant(0, tf.int64))) == 3
    before = records_by_key(kv.export())
    grads = tf.constant([[1.0, 1.0], [2.0, 2.0], [3.0, 3.0], [np.nan, 0.0]])  # "a" sums to NaN
    with pytest.raises(tf.errors.InvalidArgumentError,
                       match=r"table 'users': 1 of 3 gradient rows hold NaN or Inf"):
        train(opt)(keys, grads, tf.constant(1, tf.int64))
    assert_same_records(records_by_key(kv.export()), before)
    assert int(train(skipping(opt))(keys, grads, tf.constant(1, tf.int64))) == 2
    after = records_by_key(kv.export())
    assert {k: r[2] for k, r in after.items()} == {b"a": 0, b"b": 1, b"c": 1}
    np.testing.assert_array_equal(after[b"a"][0], before[b"a"][0])
    np.testing.assert_array_equal(after[b"a"][3], before[b"a"][3])
    assert int(kv.stats()["nonfinite_skipped"]) == 1


def test_nonfinite_gradients_argument_is_checked_and_round_trips():
    for opt in (so.SGD(), so.Adagrad(), so.Adam(), so.Ftrl(), so.GroupFtrl()):
        assert opt.get_config()["nonfinite_gradients"] == "error"
        skip = skipping(opt)
        assert skip.nonfinite_gradients == "skip"
        assert type(opt)(**skip.get_config()).get_config() == skip.get_config()
        with pytest.raises(ValueError, match=r"nonfinite_gradients must be 'error' or 'skip', "
                                             r"got 'ignore'"):
            type(opt)(nonfinite_gradients="ignore")


# ----- G-FTRL properties ---------------------------------------------------------------

def test_group_ftrl_zeroes_rows_with_small_z_norm_exactly():
    """d = 4, lambda1 = 1: rows with ||z||_2 <= 2 become exactly zero, others do not."""
    opt = so.GroupFtrl(alpha=0.5, beta=1.0, lambda1=1.0, lambda2=0.1)
    kv = KVVariable(4, slots=opt.slots, initializer="zeros")  # w = 0, so z = g
    kv.lookup_or_insert([1, 2, 3, 4, 5, 6])
    grads = np.array([[1, 1, 1, 1],           # ||z|| = 2: on the threshold -> zero
                      [2, 0, 0, 0],           # ||z|| = 2 -> zero
                      [0.5, -1, 0.5, 1.2],    # ||z|| < 2 -> zero
                      [0, 0, 1.99, 0],        # ||z|| < 2 -> zero
                      [1.01, 1, 1, 1],        # just above -> kept
                      [3, 0, 0, 0]], np.float32)
    opt.apply(kv, [1, 2, 3, 4, 5, 6], grads, global_step=1)
    values = kv.lookup([1, 2, 3, 4, 5, 6]).numpy()
    assert np.all(values[:4] == 0.0)
    assert np.all(values[4] != 0.0) and values[5][0] != 0.0
    # the kept rows are shrunk towards zero: w = -(1 - 2 / ||z||) z / ((beta + sqrt(n)) / alpha + l2)
    z5 = grads[4].astype(np.float64)
    expect = -(1 - 2 / np.linalg.norm(z5)) * z5 / ((1.0 + np.abs(z5)) / 0.5 + 0.1)
    assert_close(values[4], expect, err_msg="kept row")
    # a trained row whose z shrinks below the threshold becomes exactly zero again
    opt.apply(kv, [6], [[-2.0, 0.5, 0.0, 0.0]], global_step=2)
    row = records_by_key(kv.export())[6]
    assert np.linalg.norm(row[3][0]) <= 2.0
    assert np.all(row[0] == 0.0)


def test_group_ftrl_without_regularization_is_per_coordinate_ftrl():
    g_opt = so.GroupFtrl(alpha=0.3, beta=0.7, lambda1=0.0, lambda2=0.0,
                         initial_accumulator_value=0.1)
    f_opt = so.Ftrl(learning_rate=0.3, beta=0.7, initial_accumulator_value=0.1)
    assert g_opt.slots == f_opt.slots
    kvs = [KVVariable(5, slots=o.slots, initializer="normal", seed=4) for o in (g_opt, f_opt)]
    rng = np.random.default_rng(5)
    for step in range(6):
        keys = rng.integers(0, 8, size=10)
        grads = rng.normal(size=(10, 5)).astype(np.float32)
        for kv, opt in zip(kvs, (g_opt, f_opt)):
            kv.lookup_or_insert(keys, global_step=step)
            opt.apply(kv, keys, grads, global_step=step)
    g, f = records_by_key(kvs[0].export()), records_by_key(kvs[1].export())
    assert set(g) == set(f)
    for key in g:
        assert_close(g[key][0], f[key][0], err_msg=f"value of {key}")
        assert_close(g[key][3], f[key][3], err_msg=f"slots of {key}")
    assert any(np.abs(g[k][0]).min() > 0 for k in g)


def test_group_ftrl_with_l1_sparsifies_whole_rows():
    opt = so.GroupFtrl(alpha=0.1, beta=1.0, lambda1=0.5, lambda2=0.0)
    kv = KVVariable(8, slots=opt.slots, initializer="normal")
    rng = np.random.default_rng(6)
    keys = np.arange(40)
    kv.lookup_or_insert(keys)
    scale = np.where(keys < 20, 0.05, 3.0)[:, None]  # rare/weak features vs strong ones
    for step in range(5):
        opt.apply(kv, keys, (rng.normal(size=(40, 8)) * scale).astype(np.float32), step)
    values = kv.lookup(keys).numpy()
    zero_rows = np.all(values == 0.0, axis=1)
    assert zero_rows[:20].all() and not zero_rows[20:].any()


# ----- checkpoints ----------------------------------------------------------------------

@pytest.mark.parametrize("opt", [so.Adagrad(0.1), so.Adam(0.1), so.Ftrl(0.1, l1_regularization_strength=0.01),
                                 so.GroupFtrl(0.1, lambda1=0.05)],
                         ids=lambda o: type(o).__name__)
def test_slots_round_trip_through_checkpoint_and_training_continues_identically(opt, tmp_path):
    def make():
        return KVVariable(3, slots=opt.slots, initializer="uniform", seed=9)

    kv = make()
    rng = np.random.default_rng(7)
    batches = [(rng.integers(0, 10, size=12), rng.normal(size=(12, 3)).astype(np.float32))
               for _ in range(6)]
    for step, (keys, grads) in enumerate(batches[:3]):
        kv.lookup_or_insert(keys, global_step=step)
        opt.apply(kv, keys, grads, global_step=step)
    path = tf.train.Checkpoint(kv=kv).write(str(tmp_path / "ckpt"))
    restored = make()
    tf.train.Checkpoint(kv=restored).read(path).assert_consumed()

    def snapshot(v):
        return {k: tuple(np.asarray(x).tolist() for x in r)
                for k, r in records_by_key(v.export()).items()}

    assert snapshot(restored) == snapshot(kv)
    assert np.abs(kv.export().slots.numpy()).max() > 0
    for step, (keys, grads) in enumerate(batches[3:], start=3):
        for v in (kv, restored):
            v.lookup_or_insert(keys, global_step=step)
            opt.apply(v, keys, grads, global_step=step)
    assert snapshot(restored) == snapshot(kv)


# ----- bad input ------------------------------------------------------------------------

def test_wrong_slots_are_rejected_with_the_expected_names():
    kv = KVVariable(2, slots={"accumulator": 0.1})
    with pytest.raises(ValueError, match=r"Adam needs a KVVariable with slots \['m', 'v'\]"):
        so.Adam().apply(kv, [1], [[1.0, 1.0]], 0)
    with pytest.raises(ValueError, match=r"slots \['z', 'n'\]"):
        so.Ftrl().apply(KVVariable(2, slots=["n", "z"]), [1], [[1.0, 1.0]], 0)
    with pytest.raises(ValueError, match=r"SGD needs a KVVariable with slots \[\]"):
        so.SGD().apply(kv, [1], [[1.0, 1.0]], 0)
    # the op checks the slot count itself
    ops = op_library.load()
    with pytest.raises(tf.errors.InvalidArgumentError,
                       match=r"Adam needs a table with 2 slot\(s\) \['m', 'v'\].*has 1"):
        ops.drl_kv_apply_adam([kv.resource_handle], [tf.constant([1], tf.int64)], [],
                              [[[1.0, 1.0]]], 0.1, 0.9, 0.999, 0.9, 0.999, 1e-7,
                              tf.constant(0, tf.int64))


def test_bad_grads_and_keys():
    opt = so.Adagrad(0.1)
    kv = KVVariable(3, slots=opt.slots)
    with pytest.raises(ValueError, match=r"grads must have shape keys.shape \+ \[dim\] = "
                                         r"\(2, 3\), got \(2, 4\)"):
        opt.apply(kv, [1, 2], tf.zeros([2, 4]), 0)
    with pytest.raises(ValueError, match="grads must be a float tensor, got dtype int32"):
        opt.apply(kv, [1, 2], tf.zeros([2, 3], tf.int32), 0)
    with pytest.raises(ValueError, match="keys must be int64 for this table, got dtype string"):
        opt.apply(kv, ["a"], tf.zeros([1, 3]), 0)
    ops = op_library.load()
    with pytest.raises(tf.errors.InvalidArgumentError,
                       match=r"grads of table '.*' must have shape keys.shape \+ \[dim\] = "
                             r"\[2,3\], got \[3,3\]"):
        ops.drl_kv_apply_adagrad([kv.resource_handle], [tf.constant([1, 2], tf.int64)], [],
                                 [tf.zeros([3, 3])], 0.1, 1e-7, tf.constant(0, tf.int64))

    @tf.function(input_signature=[tf.TensorSpec(None, tf.int64), tf.TensorSpec(None, tf.float32)])
    def apply(keys, grads):
        return opt.apply(kv, keys, grads, 0)

    with pytest.raises(tf.errors.InvalidArgumentError, match=r"grads must have shape"):
        apply(tf.constant([1, 2], tf.int64), tf.zeros([2, 2]))


def test_bad_hyperparameters():
    with pytest.raises(ValueError, match=r"beta_1 must be >= 0 and < 1, got 1.0"):
        so.Adam(beta_1=1.0)
    with pytest.raises(ValueError, match=r"learning_rate_power must be <= 0, got 0.5"):
        so.Ftrl(learning_rate_power=0.5)
    with pytest.raises(ValueError, match=r"learning_rate must be > 0, got 0"):
        so.Ftrl(learning_rate=0)
    with pytest.raises(ValueError, match=r"lambda1 must be >= 0, got -1"):
        so.GroupFtrl(lambda1=-1)
    with pytest.raises(ValueError, match=r"learning_rate must be a number.*got 'fast'"):
        so.SGD("fast")
    kv = KVVariable(2)
    with pytest.raises(tf.errors.InvalidArgumentError, match=r"learning_rate must be >= 0, got -0.5"):
        so.SGD(tf.constant(-0.5)).apply(kv, [1], [[1.0, 1.0]], 0)
    kv2 = KVVariable(2, slots=so.Ftrl().slots)
    with pytest.raises(tf.errors.InvalidArgumentError, match=r"learning_rate must be > 0, got 0"):
        so.Ftrl(tf.Variable(0.0)).apply(kv2, [1], [[1.0, 1.0]], 0)
    ops = op_library.load()
    with pytest.raises(tf.errors.InvalidArgumentError,
                       match=r"learning_rate must be a scalar, got shape \[2\]"):
        ops.drl_kv_apply_sgd([kv.resource_handle], [tf.constant([1], tf.int64)], [],
                             [[[1.0, 1.0]]], [0.1, 0.2], tf.constant(0, tf.int64))
    with pytest.raises(tf.errors.InvalidArgumentError, match=r"epsilon must be finite, got nan"):
        kv3 = KVVariable(2, slots=so.Adagrad().slots)
        so.Adagrad(epsilon=tf.constant(np.nan, tf.float32)).apply(kv3, [1], [[1.0, 1.0]], 0)
