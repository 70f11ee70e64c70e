// z = sqrt(2) erfinv(t erf(sqrt(2))) for t = 2u - 1 in (-1, 1), u the top 24
// bits of a word (t is exact). erfinv is Giles' single-precision approximation
// ("Approximating the erfinv function", 2010), whose central branch covers
// |x| <= erf(sqrt(2)) (there w = -log(1 - x^2) <= 2.42), and log is the Cephes
// logf polynomial; both polynomials are evaluated by Estrin's scheme (short
// dependency chains). Only IEEE float +, -, * and integer ops, in a fixed order:
// the values are bit-identical whichever instruction set runs them (the library
// is built with -ffp-contract=off), and tests/test_kv_initial_values.py models them in
// numpy.
#include "truncated_normal.h"

#include <algorithm>
#include <cstring>

#include "key_hash.h"

namespace deeprec_lite {
namespace {

constexpr int kBlock = 16;  // values per block: 8 stream draws

// c0 + c1 x + ... + c8 x^8, Estrin's scheme.
inline float Poly8(float x, const float (&c)[9]) {
  const float x2 = x * x;
  const float x4 = x2 * x2;
  const float x8 = x4 * x4;
  const float q0 = c[0] + c[1] * x;
  const float q1 = c[2] + c[3] * x;
  const float q2 = c[4] + c[5] * x;
  const float q3 = c[6] + c[7] * x;
  const float r0 = q0 + q1 * x2;
  const float r1 = q2 + q3 * x2;
  return (r0 + r1 * x4) + c[8] * x8;
}

// Natural log of a positive normal float y = 2^k m, m in [sqrt(1/2), sqrt(2)).
inline float LogPositive(float y) {
  static constexpr float kLog[9] = {3.3333331174e-1f, -2.4999993993e-1f, 2.0000714765e-1f,
                                    -1.6668057665e-1f, 1.4249322787e-1f, -1.2420140846e-1f,
                                    1.1676998740e-1f, -1.1514610310e-1f, 7.0376836292e-2f};
  uint32_t bits;
  std::memcpy(&bits, &y, sizeof(bits));
  const uint32_t off = bits - 0x3f3504f3u;  // the bits of sqrt(1/2)
  const float k = static_cast<float>(static_cast<int32_t>(off) >> 23);
  const uint32_t m_bits = bits - (off & 0xff800000u);
  float m;
  std::memcpy(&m, &m_bits, sizeof(m));
  const float f = m - 1.0f;
  const float f2 = f * f;
  const float p = (Poly8(f, kLog) * f) * f2 + k * -2.12194440e-4f + f2 * -0.5f;
  return (f + p) + k * 0.693359375f;
}

inline float TruncatedStandardNormal(uint32_t word) {
  static constexpr float kErfinv[9] = {1.50140941f, 0.246640727f, -0.00417768164f,
                                       -0.00125372503f, 0.00021858087f, -4.39150654e-06f,
                                       -3.5233877e-06f, 3.43273939e-07f, 2.81022636e-08f};
  const int32_t odd = static_cast<int32_t>(word >> 8) * 2 + 1 - (1 << 24);
  const float t = static_cast<float>(odd) * (1.0f / 16777216.0f);
  const float x = t * 0.954499736f;  // erf(sqrt(2))
  const float w = -LogPositive((1.0f - x) * (1.0f + x)) - 2.5f;
  const float z = (Poly8(w, kErfinv) * x) * 1.41421356f;
  return std::min(std::max(z, -2.0f), 2.0f);
}

}  // namespace

// Compiled once per x86 instruction set level and picked at load time (GCC 12+);
// every version computes the same bits (no FMA contraction: -ffp-contract=off).
#if defined(__x86_64__) && defined(__GNUC__) && !defined(__clang__) && __GNUC__ >= 12
__attribute__((target_clones("arch=x86-64-v4", "arch=x86-64-v3", "default")))
#endif
void FillTruncatedNormal(uint64_t stream_base, float mean, float stddev, float* out,
                         int64_t dim) {
  constexpr uint64_t kGolden = 0x9e3779b97f4a7c15ULL;
  for (int64_t j0 = 0; j0 < dim; j0 += kBlock) {
    uint64_t draws[kBlock / 2];
    for (int i = 0; i < kBlock / 2; ++i) {
      const uint64_t r = Mix64(stream_base + static_cast<uint64_t>(j0 / 2 + i + 1) * kGolden);
      draws[i] = (r >> 32) | (r << 32);  // the high word first, in memory
    }
    uint32_t words[kBlock];
    std::memcpy(words, draws, sizeof(words));
    float values[kBlock];
    for (int j = 0; j < kBlock; ++j) values[j] = mean + stddev * TruncatedStandardNormal(words[j]);
    if (dim - j0 >= kBlock) {
      std::memcpy(out + j0, values, sizeof(values));
    } else {
      std::memcpy(out + j0, values, sizeof(float) * (dim - j0));
    }
  }
}

}  // namespace deeprec_lite
