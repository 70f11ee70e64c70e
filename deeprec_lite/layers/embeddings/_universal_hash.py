"""Seeded universal hashing of int64 ids, integer arithmetic only (used by DHE and double hashing).

An id ``x`` (any int64, negative ones included) is read as its 64-bit two's-complement
pattern and split into three limbs ``x0`` (22 bits), ``x1`` (21 bits), ``x2`` (21 bits).
Hash function ``i`` with parameters ``(a0, a1, a2, b)`` drawn uniformly from ``[0, p)`` is

    h_i(x) = ((a0*x0 + a1*x1 + a2*x2 + b) mod p) mod m

the vector form of the Carter-Wegman family: two distinct ids collide modulo ``p`` with
probability at most ``1/p`` over the draw of the parameters, with no special treatment of
large ids (reducing a 64-bit id modulo a 31-bit prime first would make every pair of ids
congruent modulo ``p`` collide in every hash). With ``p < 2^31`` each product is below
``2^53`` and the sum below ``2^55``: exact in int64, never in floating point, never
Python's salted ``hash()``.
"""
import numpy as np

from deeprec_lite._checks import check_int, is_int
from deeprec_lite.compat import tf

DEFAULT_PRIME = 2 ** 31 - 1  # Mersenne prime M31
_LIMB_SHIFTS = (0, 22, 43)
_LIMB_MASKS = (2 ** 22 - 1, 2 ** 21 - 1, 2 ** 21 - 1)


def _is_prime(n):
    if n < 2:
        return False
    if n % 2 == 0:
        return n == 2
    f = 3
    while f * f <= n:
        if n % f == 0:
            return False
        f += 2
    return True


def check_prime(prime, layer_name):
    """``prime`` must be a prime below 2^31 (keeps every product exact in int64)."""
    if not is_int(prime) or not 2 <= prime < 2 ** 31 or not _is_prime(int(prime)):
        raise ValueError(f"{layer_name}: prime must be a prime number in [2, 2^31); "
                         f"received prime={prime!r}")
    return int(prime)


def draw_hash_params(num_hashes, seed, prime):
    """``(num_hashes, 4)`` int64 parameters ``(a0, a1, a2, b)``, deterministic in ``seed``."""
    rng = np.random.RandomState(seed)
    params = rng.randint(0, prime, size=(num_hashes, 4), dtype=np.int64)
    params[:, 0] = np.maximum(params[:, 0], 1)  # a0 = 0 would ignore the low limb entirely
    return params


def check_seed(seed, layer_name):
    """The seed of the hash parameters' draw (numpy's RandomState: [0, 2**32)) as an int."""
    return check_int(seed, "seed", minimum=0, below=2 ** 32, owner=layer_name)


def int64_array(values, arg_name, layer_name):
    """`values` as an int64 array; ValueError for anything but integers (floats would be
    truncated to other ids or parameters)."""
    array = np.asarray(values if values is not None else [])
    if array.size == 0:
        return array.astype(np.int64)
    if array.dtype.kind not in "iu":
        raise ValueError(f"{layer_name}: {arg_name} must be integers; "
                         f"received {arg_name}={values!r}")
    try:
        return array.astype(np.int64, casting="safe")
    except TypeError:  # uint64 beyond int64
        raise ValueError(f"{layer_name}: {arg_name} must be int64 integers; "
                         f"received {arg_name}={values!r}") from None


def check_hash_params(hash_params, num_hashes, prime, layer_name):
    """Validate user-given parameters (e.g. restored from a config); return an int64 array."""
    params = int64_array(hash_params, "hash_params", layer_name)
    if params.shape != (num_hashes, 4) or params.min() < 0 or params.max() >= prime:
        raise ValueError(
            f"{layer_name}: hash_params must be a ({num_hashes}, 4) table of integers in "
            f"[0, prime={prime}); received hash_params with shape {params.shape}")
    return params


def universal_hash(ids, hash_params, prime, num_buckets):
    """Hash int ids of any shape with every function: returns int64 ``ids.shape + (num_hashes,)``.

    ``hash_params`` is the ``(num_hashes, 4)`` array from :func:`draw_hash_params`.
    """
    x = tf.cast(ids, tf.int64)[..., None]
    params = tf.constant(np.asarray(hash_params, dtype=np.int64))
    acc = params[:, 3]
    for limb in range(3):  # three limbs of one id, not a loop over hashes or fields
        part = tf.bitwise.bitwise_and(tf.bitwise.right_shift(x, _LIMB_SHIFTS[limb]),
                                      tf.constant(_LIMB_MASKS[limb], tf.int64))
        acc = acc + params[:, limb] * part
    return tf.math.floormod(tf.math.floormod(acc, prime), num_buckets)
