"""Initial values equal an independent numpy model of the per-key stream, so a build
on another machine (or another instruction set) initializes alike."""
import numpy as np
import pytest

from deeprec_lite.kv import initializers as kv_initializers
from deeprec_lite.kv.variable import KVVariable
from kv_reference import mix64

I64_MIN, I64_MAX = -(2 ** 63), 2 ** 63 - 1
KEYS = np.array([0, 1, -1, 123456789, I64_MIN, I64_MAX] + list(range(1000, 1500)), np.int64)
F = np.float32


def stream_words(keys, seed, n):
    """[len(keys), n] words: splitmix64 of a per-key counter, two 32-bit words per draw
    (the high one first)."""
    golden = np.uint64(0x9E3779B97F4A7C15)
    with np.errstate(over="ignore"):
        base = mix64(mix64(keys.view(np.uint64)) ^ mix64(np.uint64(seed) + golden))
        draws = [mix64(base + np.uint64(c) * golden) for c in range(1, (n + 1) // 2 + 1)]
    words = []
    for r in draws:
        words += [r >> np.uint64(32), r & np.uint64(0xFFFFFFFF)]
    return np.stack(words[:n], axis=1).astype(np.uint32)


def poly8(x, c):
    """c0 + c1 x + ... + c8 x^8 by Estrin's scheme, in float32, as ops/truncated_normal.cc."""
    c = [F(v) for v in c]
    x2 = x * x
    x4 = x2 * x2
    x8 = x4 * x4
    q0, q1, q2, q3 = (c[0] + c[1] * x, c[2] + c[3] * x, c[4] + c[5] * x, c[6] + c[7] * x)
    return ((q0 + q1 * x2) + (q2 + q3 * x2) * x4) + c[8] * x8


def log_positive(y):
    bits = y.view(np.uint32)
    off = bits - np.uint32(0x3F3504F3)
    k = (off.view(np.int32) >> 23).astype(F)
    f = (bits - (off & np.uint32(0xFF800000))).view(F) - F(1)
    f2 = f * f
    p = poly8(f, [3.3333331174e-1, -2.4999993993e-1, 2.0000714765e-1, -1.6668057665e-1,
                  1.4249322787e-1, -1.2420140846e-1, 1.1676998740e-1, -1.1514610310e-1,
                  7.0376836292e-2])
    p = ((p * f) * f2 + k * F(-2.12194440e-4)) + f2 * F(-0.5)
    return (f + p) + k * F(0.693359375)


def truncated_normal_curve(t):
    """sqrt(2) erfinv(t erf(sqrt(2))) for float32 t in [-1, 1], as ops/truncated_normal.cc."""
    x = t * F(0.954499736)
    w = -log_positive((F(1) - x) * (F(1) + x)) - F(2.5)
    p = poly8(w, [1.50140941, 0.246640727, -0.00417768164, -0.00125372503, 0.00021858087,
                  -4.39150654e-06, -3.5233877e-06, 3.43273939e-07, 2.81022636e-08])
    return np.clip((p * x) * F(1.41421356), F(-2), F(2))


CELL_BITS = 12
CURVE = truncated_normal_curve(np.arange(2 ** CELL_BITS + 1).astype(F) * F(2.0 ** (1 - CELL_BITS))
                               - F(1))
STEP = CURVE[1:] - CURVE[:-1]


def truncated_standard_normal(words):
    """The curve at u = the top 24 bits of each word, interpolated linearly between its values
    at the 4097 cell edges t_j = j / 2048 - 1."""
    u = words >> np.uint32(8)
    cell = u >> np.uint32(24 - CELL_BITS)
    frac = ((u & np.uint32(2 ** (24 - CELL_BITS) - 1)).astype(F) + F(0.5)) * F(
        2.0 ** (CELL_BITS - 24))
    return CURVE[cell] + frac * STEP[cell]


def test_uniform_initial_values_match_the_model():
    """24-bit floats from each word."""
    seed, dim, low, high = 42, 6, F(-0.5), F(1.5)
    u = ((stream_words(KEYS, seed, dim) >> np.uint32(8)).astype(F) + F(0.5)) * F(2.0 ** -24)
    want = low + (high - low) * u
    kv = KVVariable(dim, initializer=kv_initializers.uniform(-0.5, 1.5), seed=seed)
    np.testing.assert_array_equal(kv.lookup_or_insert(KEYS)[0].numpy(), want)


@pytest.mark.parametrize("dim", [1, 6, 12, 16, 17, 40])
def test_truncated_normal_initial_values_match_the_model(dim):
    """Inverse-CDF sampling of the normal truncated to 2 stddev: value j from word j
    (words are drawn 16 at a time)."""
    seed, mean, stddev = 7, F(0.25), F(0.05)
    z = truncated_standard_normal(stream_words(KEYS, seed, -(-dim // 16) * 16))[:, :dim]
    want = mean + stddev * z
    kv = KVVariable(dim, initializer=kv_initializers.truncated_normal(0.25, 0.05), seed=seed)
    np.testing.assert_array_equal(kv.lookup_or_insert(KEYS)[0].numpy(), want)


def test_table_follows_the_curve():
    """Interpolating the table is within 5.3e-6 of the curve itself, for every 24-bit u."""
    u = np.arange(2 ** 24, dtype=np.uint32)
    t = ((u.astype(np.int64) * 2 + 1 - 2 ** 24).astype(F) * F(2.0 ** -24))
    error = np.abs(truncated_standard_normal(u << np.uint32(8)) - truncated_normal_curve(t))
    assert error.max() < 5.3e-6


def test_model_is_a_truncated_normal():
    z = truncated_standard_normal(stream_words(np.arange(20000, dtype=np.int64), 3, 16)).ravel()
    assert z.min() >= -2 and z.max() <= 2 and z.min() < -1.99 and z.max() > 1.99
    assert abs(z.mean()) < 0.005 and abs(z.std() - 0.8796) < 0.003
    # the CDF of the truncated normal at a few points
    for point, cdf in ((-1.0, 0.1424), (0.0, 0.5), (0.5, 0.7006), (1.5, 0.9538)):
        assert abs((z <= point).mean() - cdf) < 0.006, point
