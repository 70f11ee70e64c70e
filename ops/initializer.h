// Deterministic initial values: a new key's embedding is a pure function of
// (key hash, seed, initializer), independent of batch order, thread count and
// shard count. Each key draws from its own counter-based stream (splitmix64);
// normals come from the Marsaglia-Tsang ziggurat (128 layers), truncated normals
// from the inverse CDF, one stream word per value (truncated_normal.h).
#ifndef DEEPREC_LITE_OPS_INITIALIZER_H_
#define DEEPREC_LITE_OPS_INITIALIZER_H_

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <string>

#include "key_hash.h"
#include "truncated_normal.h"

namespace deeprec_lite {

// Ziggurat tables for the standard normal (Marsaglia & Tsang, 2000).
struct ZigguratTables {
  static constexpr double kR = 3.442619855899;  // start of the tail
  uint32_t k[128];
  double w[128];
  double f[128];

  ZigguratTables() {
    const double v = 9.91256303526217e-3;  // area of each layer
    const double m = 2147483648.0;
    double d = kR, t = kR;
    const double q = v / std::exp(-0.5 * d * d);
    k[0] = static_cast<uint32_t>((d / q) * m);
    k[1] = 0;
    w[0] = q / m;
    w[127] = d / m;
    f[0] = 1.0;
    f[127] = std::exp(-0.5 * d * d);
    for (int i = 126; i >= 1; --i) {
      d = std::sqrt(-2.0 * std::log(v / d + std::exp(-0.5 * d * d)));
      k[i + 1] = static_cast<uint32_t>((d / t) * m);
      t = d;
      f[i] = std::exp(-0.5 * d * d);
      w[i] = d / m;
    }
  }

  static const ZigguratTables& Get() {
    static const ZigguratTables tables;
    return tables;
  }
};

enum class InitKind { kZeros, kConstant, kUniform, kNormal, kTruncatedNormal };

inline bool ParseInitKind(const std::string& name, InitKind* kind) {
  if (name == "zeros") *kind = InitKind::kZeros;
  else if (name == "constant") *kind = InitKind::kConstant;
  else if (name == "uniform") *kind = InitKind::kUniform;
  else if (name == "normal") *kind = InitKind::kNormal;
  else if (name == "truncated_normal") *kind = InitKind::kTruncatedNormal;
  else return false;
  return true;
}

// a: constant value, uniform minval, or (truncated) normal mean.
// b: uniform maxval, or (truncated) normal stddev. Truncation is at 2 stddev.
// A key's random stream: 32-bit words drawn two at a time from splitmix64 of a
// counter, so every value depends only on (key hash, seed, position).
class KeyStream {
 public:
  explicit KeyStream(uint64_t base) : base_(base) {}

  // The seed's share of every base, computed once per table.
  static uint64_t SeedMix(uint64_t seed) { return Mix64(seed + 0x9e3779b97f4a7c15ULL); }

  static uint64_t Base(uint64_t key_hash, uint64_t seed_mix) { return Mix64(key_hash ^ seed_mix); }

  uint32_t Next32() {
    if (has_spare_) {
      has_spare_ = false;
      return spare_;
    }
    const uint64_t r = Next64();
    spare_ = static_cast<uint32_t>(r);
    has_spare_ = true;
    return static_cast<uint32_t>(r >> 32);
  }

  float Uniform01f() {  // in (0, 1), 24 bits
    return (static_cast<float>(Next32() >> 8) + 0.5f) * (1.0f / 16777216.0f);
  }

  double Uniform01() {  // in (0, 1), 53 bits (for the rare ziggurat tail and wedges)
    return (static_cast<double>(Next64() >> 11) + 0.5) * (1.0 / 9007199254740992.0);
  }

  // Marsaglia-Tsang ziggurat: the layer comes from the low 7 bits of the word.
  __attribute__((always_inline)) float StandardNormal() {
    const ZigguratTables& z = ZigguratTables::Get();
    for (;;) {
      const int32_t hz = static_cast<int32_t>(Next32());
      const int layer = hz & 127;
      const double x = hz * z.w[layer];
      const uint32_t magnitude = hz < 0 ? static_cast<uint32_t>(-(int64_t)hz) : hz;
      if (magnitude < z.k[layer]) return static_cast<float>(x);  // ~99% of draws
      if (layer == 0) {  // the tail beyond kR
        double tx, ty;
        do {
          tx = -std::log(Uniform01()) / ZigguratTables::kR;
          ty = -std::log(Uniform01());
        } while (ty + ty < tx * tx);
        return static_cast<float>(hz > 0 ? ZigguratTables::kR + tx : -ZigguratTables::kR - tx);
      }
      if (z.f[layer] + Uniform01() * (z.f[layer - 1] - z.f[layer]) < std::exp(-0.5 * x * x)) {
        return static_cast<float>(x);
      }
    }
  }

 private:
  uint64_t Next64() { return Mix64(base_ + (++counter_) * 0x9e3779b97f4a7c15ULL); }

  const uint64_t base_;
  uint64_t counter_ = 0;
  uint32_t spare_ = 0;
  bool has_spare_ = false;
};

struct Initializer {
  InitKind kind = InitKind::kTruncatedNormal;
  float a = 0.0f;
  float b = 1.0f;
  uint64_t seed_mix = KeyStream::SeedMix(0);  // KeyStream::SeedMix(seed)

  void Fill(uint64_t key_hash, float* out, int64_t dim) const {
    const uint64_t base = KeyStream::Base(key_hash, seed_mix);
    KeyStream stream(base);
    switch (kind) {
      case InitKind::kZeros:
        std::fill(out, out + dim, 0.0f);
        return;
      case InitKind::kConstant:
        std::fill(out, out + dim, a);
        return;
      case InitKind::kUniform:
        for (int64_t j = 0; j < dim; ++j) out[j] = a + (b - a) * stream.Uniform01f();
        return;
      case InitKind::kNormal:
        for (int64_t j = 0; j < dim; ++j) out[j] = a + b * stream.StandardNormal();
        return;
      case InitKind::kTruncatedNormal:
        FillTruncatedNormal(base, a, b, out, dim);
        return;
    }
  }
};

}  // namespace deeprec_lite

#endif  // DEEPREC_LITE_OPS_INITIALIZER_H_
