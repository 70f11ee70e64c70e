import numpy as np
import pytest

from deeprec_lite.compat import keras, tf
from deeprec_lite.layers.feature_selection.grda import GRDA, grda_threshold, grda_update


def run(opt, w0, grads):
    var = tf.Variable(np.asarray(w0, np.float32))
    trajectory = []
    for g in grads:
        opt.apply_gradients([(tf.constant(np.asarray(g, np.float32)), var)])
        trajectory.append(var.numpy().copy())
    return np.array(trajectory)


def test_thresholds_hand_computed():
    np.testing.assert_allclose([grda_threshold(0.1, 0.5, 0.5, t) for t in (1, 2, 3)],
                               [0.05, 0.0707107, 0.0866025], rtol=1e-6)


def test_optimizer_applies_the_growing_threshold():
    # w0 = 0 and g = -1 give v_t = 0.1 t, so w_t = 0.1 t - tau_t
    traj = run(GRDA(learning_rate=0.1, c=0.5, mu=0.5), [0.0], [[-1.0]] * 3)[:, 0]
    np.testing.assert_allclose(traj, [0.1 - 0.05, 0.2 - 0.0707107, 0.3 - 0.0866025], rtol=1e-5)


def test_small_accumulators_become_exactly_zero_and_sign_is_kept():
    traj = run(GRDA(learning_rate=0.1, c=0.5, mu=0.5), [0.0, 0.0, 0.0],
               [[-0.4, 0.4, 0.1]] * 3)
    # v_t = (0.04 t, -0.04 t, -0.01 t) against tau = 0.05, 0.0707, 0.0866
    np.testing.assert_array_equal(traj[:, 2], 0.0)
    np.testing.assert_array_equal(traj[0, :2], 0.0)
    np.testing.assert_allclose(traj[2, :2], [0.12 - 0.0866025, -(0.12 - 0.0866025)], rtol=1e-5)


def test_c_zero_is_plain_sgd_on_the_accumulator_started_at_w0():
    grads = [[0.5, -1.0], [2.0, 0.25], [-1.0, 1.0]]
    traj = run(GRDA(learning_rate=0.3, c=0.0, mu=0.8), [1.0, -2.0], grads)
    expected = np.array([1.0, -2.0]) - 0.3 * np.cumsum(grads, axis=0)
    np.testing.assert_allclose(traj, expected, rtol=1e-6)


def test_pure_function_agrees_with_the_optimizer():
    rng = np.random.RandomState(1)
    w0 = rng.normal(size=5).astype(np.float32)
    grads = rng.normal(size=(4, 5)).astype(np.float32)
    traj = run(GRDA(learning_rate=0.2, c=0.05, mu=0.7), w0, grads)
    v = w0
    for t, g in enumerate(grads, start=1):
        v, w = grda_update(v, g, 0.2, 0.05, 0.7, t)
        np.testing.assert_allclose(traj[t - 1], w, rtol=1e-5, atol=1e-7)


def test_works_inside_model_fit_and_config_round_trip():
    model = keras.Sequential([keras.layers.Dense(1, input_shape=(3,))])
    model.compile(optimizer=GRDA(learning_rate=0.05, c=0.01, mu=0.7), loss="mse")
    x = np.random.RandomState(0).normal(size=(16, 3)).astype(np.float32)
    before = model.get_weights()[0].copy()
    model.fit(x, x.sum(1, keepdims=True), epochs=2, batch_size=8, verbose=0)
    assert int(model.optimizer.iterations.numpy()) == 4
    assert not np.allclose(before, model.get_weights()[0])
    cfg = model.optimizer.get_config()
    clone = GRDA.from_config(cfg)
    assert (clone.c, clone.mu) == (0.01, 0.7) and clone.get_config() == cfg


def test_numpy_scalar_hyperparameters_act_as_floats():
    traj = run(GRDA(learning_rate=np.float32(0.1), c=np.float32(0.5), mu=np.int64(0)),
               [0.0], [[-1.0]] * 2)[:, 0]
    # v_t = 0.1 t, tau_t = 0.5 * 0.1^0.5 = 0.158114 (mu = 0): zero, then 0.2 - tau
    np.testing.assert_allclose(traj, [0.0, 0.2 - 0.1581139], rtol=1e-5)


@pytest.mark.parametrize("kw", [dict(c=-1.0), dict(mu="x"), dict(c=True), dict(c=float("nan")),
                                dict(mu=float("nan")), dict(c=float("inf")),
                                dict(mu=float("inf")), dict(learning_rate=-1.0),
                                dict(learning_rate=0.0), dict(learning_rate=float("nan"))])
def test_bad_arguments(kw):
    with pytest.raises(ValueError, match=next(iter(kw))):
        GRDA(**kw)
