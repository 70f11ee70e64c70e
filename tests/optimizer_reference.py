"""An independent numpy reference of the sparse optimizers (deeprec_lite.kv.
sparse_optimizers), and the scenarios the tests run them in: SCENARIOS[name] =
(optimizer factory of the learning rate, reference update, float32 hyperparameters).

The updates are elementwise in the value and slot rows, so they take one row or many
(w [..., dim], s [num_slots, ..., dim]).
"""
import numpy as np

from deeprec_lite.kv import sparse_optimizers as so


def f32(x):
    """A hyperparameter as the op sees it: rounded to float32, then used in float64."""
    return float(np.float32(x))


# ----- an independent numpy reference ----------------------------------------------
# Each update takes float64 copies of the stored float32 row and slots and returns
# the new ones; the reference stores them back as float32, as the table does.

def ref_sgd(w, s, g, lr, step, hp):
    return w - lr * g, s


def ref_adagrad(w, s, g, lr, step, hp):
    acc = s[0] + g * g
    return w - lr * g / np.sqrt(acc + hp["epsilon"]), np.stack([acc])


def ref_adam(w, s, g, lr, step, hp):
    b1, b2, t = hp["beta_1"], hp["beta_2"], step + 1
    m = s[0] + (g - s[0]) * (1 - b1)
    v = s[1] + (g * g - s[1]) * (1 - b2)
    b1t, b2t = f32(b1 ** t), f32(b2 ** t)  # float32 powers, as tf_keras
    w = w - lr * np.sqrt(1 - b2t) / (1 - b1t) * m / (np.sqrt(v) + hp["epsilon"])
    return w, np.stack([m, v])


def ref_ftrl(w, s, g, lr, step, hp):
    z, n = s
    power = -hp["learning_rate_power"]
    l1, l2 = hp["l1_regularization_strength"], hp["l2_regularization_strength"]
    shrink = hp["l2_shrinkage_regularization_strength"]
    n_new = n + g ** 2
    z = z + g + 2 * shrink * w - (n_new ** power - n ** power) / lr * w
    quadratic = n_new ** power / lr + 2 * (l2 + hp["beta"] / (2 * lr))
    w = np.where(np.abs(z) > l1, -(z - np.sign(z) * l1) / quadratic, 0.0)
    return w, np.stack([z, n_new])


def ref_group_ftrl(w, s, g, alpha, step, hp):
    z, n = s
    sigma = (np.sqrt(n + g ** 2) - np.sqrt(n)) / alpha
    z = z + g - sigma * w
    n = n + g ** 2
    threshold = hp["lambda1"] * np.sqrt(len(w))
    norm = np.linalg.norm(z)
    if norm <= threshold:
        w = np.zeros_like(w)
    else:
        w = -(1 - threshold / norm) * z / ((hp["beta"] + np.sqrt(n)) / alpha + hp["lambda2"])
    return w, np.stack([z, n])


SCENARIOS = {
    "sgd": (lambda lr: so.SGD(lr), ref_sgd, {}),
    "adagrad": (lambda lr: so.Adagrad(lr, initial_accumulator_value=0.2, epsilon=1e-3),
                ref_adagrad, {"epsilon": 1e-3}),
    "adam": (lambda lr: so.Adam(lr, beta_1=0.8, beta_2=0.95, epsilon=1e-4),
             ref_adam, {"beta_1": 0.8, "beta_2": 0.95, "epsilon": 1e-4}),
    "ftrl": (lambda lr: so.Ftrl(lr, learning_rate_power=-0.5, initial_accumulator_value=0.1,
                                l1_regularization_strength=0.05,
                                l2_regularization_strength=0.1,
                                l2_shrinkage_regularization_strength=0.02, beta=0.5),
             ref_ftrl, {"learning_rate_power": -0.5, "l1_regularization_strength": 0.05,
                        "l2_regularization_strength": 0.1,
                        "l2_shrinkage_regularization_strength": 0.02, "beta": 0.5}),
    "ftrl_power": (lambda lr: so.Ftrl(lr, learning_rate_power=-0.3,
                                      initial_accumulator_value=0.3,
                                      l1_regularization_strength=0.01),
                   ref_ftrl, {"learning_rate_power": -0.3, "l1_regularization_strength": 0.01,
                              "l2_regularization_strength": 0.0,
                              "l2_shrinkage_regularization_strength": 0.0, "beta": 0.0}),
    "group_ftrl": (lambda lr: so.GroupFtrl(lr, beta=0.5, lambda1=0.3, lambda2=0.2,
                                           initial_accumulator_value=0.05),
                   ref_group_ftrl, {"beta": 0.5, "lambda1": 0.3, "lambda2": 0.2}),
}
