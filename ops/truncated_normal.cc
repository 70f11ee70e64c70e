// z = sqrt(2) erfinv(t erf(sqrt(2))) for t = 2u - 1 in (-1, 1), u in (0, 1) from
// the top 24 bits of a stream word, read off a table: the exact curve is
// evaluated at the 4097 points t_j = j / 2048 - 1 and interpolated linearly
// within the cell of u (4096 cells, 12 bits of u pick the cell, the other 12
// place u inside it; at most 5.3e-6 from the curve, at the tails). The curve is
// Giles' single-precision erfinv ("Approximating the erfinv function", 2010),
// whose central branch covers |x| <= erf(sqrt(2)) (there w = -log(1 - x^2) <=
// 2.42), with the Cephes logf polynomial; both by Estrin's scheme. Only IEEE
// float +, -, * and integer ops in a fixed order: the values are bit-identical
// whichever instruction set runs them (the library is built with
// -ffp-contract=off), and tests/test_kv_initial_values.py models them in numpy.
#include "truncated_normal.h"

#include <algorithm>
#include <cstring>

#if defined(__x86_64__) && defined(__GNUC__)
#include <immintrin.h>
#endif

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

// The curve at t in [-1, 1].
float TruncatedStandardNormalAt(float t) {
  static constexpr float kErfinv[9] = {1.50140941f, 0.246640727f, -0.00417768164f,
                                       -0.00125372503f, 0.00021858087f, -4.39150654e-06f,
                                       -3.5233877e-06f, 3.43273939e-07f, 2.81022636e-08f};
  const float x = t * 0.954499736f;  // erf(sqrt(2))
  const float w = -LogPositive((1.0f - x) * (1.0f + x)) - 2.5f;
  const float z = (Poly8(w, kErfinv) * x) * 1.41421356f;
  return std::min(std::max(z, -2.0f), 2.0f);
}

constexpr int kCellBits = 12;
constexpr int kCells = 1 << kCellBits;
constexpr uint32_t kInCellMask = (1u << (24 - kCellBits)) - 1;
constexpr float kInCellScale = 1.0f / (1 << (24 - kCellBits));
constexpr uint64_t kGolden = 0x9e3779b97f4a7c15ULL;

// cell[j] = {the curve at t_j, the curve at t_(j + 1) minus that}: one 8-byte
// load gives both ends of a cell.
struct CurveTable {
  struct Cell {
    float at;
    float step;
  };
  alignas(64) Cell cell[kCells];
  CurveTable() {
    float at = TruncatedStandardNormalAt(-1.0f);
    for (int j = 0; j < kCells; ++j) {
      const float t = static_cast<float>(j + 1) * (2.0f / kCells) - 1.0f;
      const float next = TruncatedStandardNormalAt(t);
      cell[j] = {at, next - at};
      at = next;
    }
  }
};
const CurveTable kCurve;

typedef uint64_t U64x8 __attribute__((vector_size(64)));
typedef uint32_t U32x16 __attribute__((vector_size(64)));
typedef float F32x16 __attribute__((vector_size(64)));

// Stream draws j0 / 2 + 1 .. j0 / 2 + 8 (Mix64 of base + draw * golden), each
// with its high word first in memory: words j0 .. j0 + 15 of the key stream.
inline U32x16 StreamWords(uint64_t stream_base, int64_t j0) {
  // (draw + j0 / 2) * golden, as draw * golden + (j0 / 2) * golden: one vector
  // multiply fewer, the same words (integer arithmetic modulo 2^64).
  const U64x8 draw_golden = {1 * kGolden, 2 * kGolden, 3 * kGolden, 4 * kGolden,
                             5 * kGolden, 6 * kGolden, 7 * kGolden, 8 * kGolden};
  U64x8 x = Mix64Lanes((stream_base + static_cast<uint64_t>(j0 / 2) * kGolden) + draw_golden);
  x = (x >> 32) | (x << 32);
  U32x16 words;
  std::memcpy(&words, &x, sizeof(words));
  return words;
}

// Any CPU; x86 CPUs with AVX2 or AVX-512 run FillAvx2 or FillAvx512 instead.
void FillPortable(uint64_t stream_base, float mean, float stddev, float* out, int64_t dim) {
  for (int64_t j0 = 0; j0 < dim; j0 += kBlock) {
    const U32x16 u = StreamWords(stream_base, j0) >> 8;
    const U32x16 cell = u >> (24 - kCellBits);
    const F32x16 frac =
        (__builtin_convertvector(u & kInCellMask, F32x16) + 0.5f) * kInCellScale;
    F32x16 at, step;
    for (int j = 0; j < kBlock; ++j) {
      at[j] = kCurve.cell[cell[j]].at;
      step[j] = kCurve.cell[cell[j]].step;
    }
    const F32x16 values = mean + stddev * (at + frac * step);
    std::memcpy(out + j0, &values, sizeof(float) * std::min<int64_t>(kBlock, dim - j0));
  }
}

#if defined(__x86_64__) && defined(__GNUC__)
// The same values with AVX-512 gathers from the table.
__attribute__((target("avx512f,avx512dq"))) void FillAvx512(uint64_t stream_base, float mean,
                                                           float stddev, float* out,
                                                           int64_t dim) {
  for (int64_t j0 = 0; j0 < dim; j0 += kBlock) {
    __m512i u;
    const U32x16 words = StreamWords(stream_base, j0) >> 8;
    std::memcpy(&u, &words, sizeof(u));
    const __m512i cell = _mm512_srli_epi32(u, 24 - kCellBits);
    const __m512 frac = _mm512_mul_ps(
        _mm512_add_ps(_mm512_cvtepi32_ps(_mm512_and_si512(u, _mm512_set1_epi32(kInCellMask))),
                      _mm512_set1_ps(0.5f)),
        _mm512_set1_ps(kInCellScale));
    // Lanes 0-7 and 8-15 each gather their cells' (at, step) pairs; the pairs
    // are then split into the at and step vectors.
    const __m512i lo = _mm512_i32gather_epi64(_mm512_castsi512_si256(cell), kCurve.cell, 8);
    const __m512i hi =
        _mm512_i32gather_epi64(_mm512_extracti64x4_epi64(cell, 1), kCurve.cell, 8);
    const __m512i even =
        _mm512_setr_epi32(0, 2, 4, 6, 8, 10, 12, 14, 16, 18, 20, 22, 24, 26, 28, 30);
    const __m512 at = _mm512_castsi512_ps(_mm512_permutex2var_epi32(lo, even, hi));
    const __m512 step = _mm512_castsi512_ps(
        _mm512_permutex2var_epi32(lo, _mm512_add_epi32(even, _mm512_set1_epi32(1)), hi));
    const __m512 z = _mm512_add_ps(at, _mm512_mul_ps(frac, step));
    const __m512 values =
        _mm512_add_ps(_mm512_set1_ps(mean), _mm512_mul_ps(_mm512_set1_ps(stddev), z));
    const int64_t n = std::min<int64_t>(kBlock, dim - j0);
    _mm512_mask_storeu_ps(out + j0, static_cast<__mmask16>((1u << n) - 1), values);
  }
}
#endif

#if defined(__x86_64__) && defined(__GNUC__)
// a * c modulo 2^64 in each 64-bit lane (AVX2 has no 64-bit multiply): c_lo and
// c_hi hold the low and high 32 bits of c in the low half of each lane.
__attribute__((target("avx2"), always_inline)) inline __m256i MulLanes(__m256i a, __m256i c_lo,
                                                                      __m256i c_hi) {
  const __m256i cross = _mm256_add_epi64(_mm256_mul_epu32(_mm256_srli_epi64(a, 32), c_lo),
                                         _mm256_mul_epu32(a, c_hi));
  return _mm256_add_epi64(_mm256_mul_epu32(a, c_lo), _mm256_slli_epi64(cross, 32));
}

// Mix64 of four lanes (GCC's own code for Mix64Lanes on a 4 x 64-bit vector
// made the whole fill 1.5x slower).
__attribute__((target("avx2"), always_inline)) inline __m256i Mix64x4(__m256i x) {
  constexpr uint64_t kM1 = 0xbf58476d1ce4e5b9ULL;
  constexpr uint64_t kM2 = 0x94d049bb133111ebULL;
  x = _mm256_xor_si256(x, _mm256_srli_epi64(x, 30));
  x = MulLanes(x, _mm256_set1_epi64x(kM1 & 0xffffffff), _mm256_set1_epi64x(kM1 >> 32));
  x = _mm256_xor_si256(x, _mm256_srli_epi64(x, 27));
  x = MulLanes(x, _mm256_set1_epi64x(kM2 & 0xffffffff), _mm256_set1_epi64x(kM2 >> 32));
  return _mm256_xor_si256(x, _mm256_srli_epi64(x, 31));
}

// The same values with AVX2, 8 at a time (4 stream draws). Its gathers are slow
// on AMD Zen 2 / 3, so the 8 cells' (at, step) pairs are read with scalar loads
// and split into the at and step vectors by two shuffles and a permute each:
// 1.8x faster than FillPortable built for AVX2, on Zen 3.
__attribute__((target("avx2"))) void FillAvx2(uint64_t stream_base, float mean, float stddev,
                                              float* out, int64_t dim) {
  const __m256i in_cell_mask = _mm256_set1_epi32(kInCellMask);
  const __m256 half = _mm256_set1_ps(0.5f);
  const __m256 in_cell_scale = _mm256_set1_ps(kInCellScale);
  const __m256 mean8 = _mm256_set1_ps(mean);
  const __m256 stddev8 = _mm256_set1_ps(stddev);
  const __m256i unzip = _mm256_setr_epi32(0, 1, 4, 5, 2, 3, 6, 7);
  const __m256i draw_golden =
      _mm256_setr_epi64x(1 * kGolden, 2 * kGolden, 3 * kGolden, 4 * kGolden);
  const __m256i four_golden = _mm256_set1_epi64x(4 * kGolden);
  const long long* cells = reinterpret_cast<const long long*>(kCurve.cell);
  for (int64_t j0 = 0; j0 < dim; j0 += kBlock) {
    // Draws j0 / 2 + 1 .. j0 / 2 + 4, then the next four, as in StreamWords.
    const __m256i draws = _mm256_add_epi64(
        _mm256_set1_epi64x(stream_base + static_cast<uint64_t>(j0 / 2) * kGolden), draw_golden);
    const __m256i mixed[2] = {Mix64x4(draws), Mix64x4(_mm256_add_epi64(draws, four_golden))};
    for (int h = 0; h < 2 && j0 + 8 * h < dim; ++h) {
      // Words high half first, top 24 bits.
      const __m256i u = _mm256_srli_epi32(_mm256_shuffle_epi32(mixed[h], 0xb1), 8);
      alignas(32) int32_t cell[8];
      _mm256_store_si256(reinterpret_cast<__m256i*>(cell), _mm256_srli_epi32(u, 24 - kCellBits));
      const __m256 lo = _mm256_castsi256_ps(
          _mm256_setr_epi64x(cells[cell[0]], cells[cell[1]], cells[cell[2]], cells[cell[3]]));
      const __m256 hi = _mm256_castsi256_ps(
          _mm256_setr_epi64x(cells[cell[4]], cells[cell[5]], cells[cell[6]], cells[cell[7]]));
      // lo, hi: a0 s0 a1 s1 a2 s2 a3 s3 | a4 s4 ...; each shuffle gives a0 a1 a4 a5 a2 a3 a6 a7.
      const __m256 at = _mm256_permutevar8x32_ps(_mm256_shuffle_ps(lo, hi, 0x88), unzip);
      const __m256 step = _mm256_permutevar8x32_ps(_mm256_shuffle_ps(lo, hi, 0xdd), unzip);
      const __m256 frac = _mm256_mul_ps(
          _mm256_add_ps(_mm256_cvtepi32_ps(_mm256_and_si256(u, in_cell_mask)), half),
          in_cell_scale);
      const __m256 values = _mm256_add_ps(
          mean8, _mm256_mul_ps(stddev8, _mm256_add_ps(at, _mm256_mul_ps(frac, step))));
      const int64_t n = dim - (j0 + 8 * h);
      float* const o = out + j0 + 8 * h;
      if (n >= 8) {
        _mm256_storeu_ps(o, values);
      } else {
        const __m256i lanes = _mm256_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7);
        _mm256_maskstore_ps(o, _mm256_cmpgt_epi32(_mm256_set1_epi32(static_cast<int>(n)), lanes),
                            values);
      }
    }
  }
}
#endif

using FillFn = void (*)(uint64_t, float, float, float*, int64_t);

// Runs while the library loads, so it initializes the CPU feature check itself.
FillFn PickFill() {
#if defined(__x86_64__) && defined(__GNUC__)
  __builtin_cpu_init();
  if (__builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx512dq")) return FillAvx512;
  if (__builtin_cpu_supports("avx2")) return FillAvx2;
#endif
  return FillPortable;
}

const FillFn kFill = PickFill();

}  // namespace

void FillTruncatedNormal(uint64_t stream_base, float mean, float stddev, float* out,
                         int64_t dim) {
  kFill(stream_base, mean, stddev, out, dim);
}

}  // namespace deeprec_lite
