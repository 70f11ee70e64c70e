// Stable 64-bit hashes of table keys. They decide a key's shard, its slot in the
// hash index and the random stream of its initial value, so they must never change
// between releases: checkpoints and initial values depend on them.
#ifndef DEEPREC_LITE_OPS_KEY_HASH_H_
#define DEEPREC_LITE_OPS_KEY_HASH_H_

#include <cstdint>
#include <cstring>
#include <string>

#include "tensorflow/core/platform/tstring.h"

namespace deeprec_lite {

// splitmix64 finalizer: a bijective mix of all 64 bits; lane by lane for a GCC
// vector of uint64_t.
template <typename U64>
inline U64 Mix64Lanes(U64 x) {
  x ^= x >> 30;
  x *= 0xbf58476d1ce4e5b9ULL;
  x ^= x >> 27;
  x *= 0x94d049bb133111ebULL;
  x ^= x >> 31;
  return x;
}

inline uint64_t Mix64(uint64_t x) { return Mix64Lanes(x); }

inline uint64_t HashKey(int64_t key) { return Mix64(static_cast<uint64_t>(key)); }

// Bytes are mixed 8 at a time; the length seeds the state so that strings that
// differ only by trailing zero bytes hash differently.
inline uint64_t HashBytes(const char* p, size_t n) {
  uint64_t h = Mix64(0x243f6a8885a308d3ULL ^ (n * 0x9e3779b97f4a7c15ULL));
  for (; n >= 8; p += 8, n -= 8) {
    uint64_t w;
    std::memcpy(&w, p, 8);
    h = Mix64(h ^ w) + 0x9e3779b97f4a7c15ULL;
  }
  uint64_t tail = 0;
  std::memcpy(&tail, p, n);
  return Mix64(h ^ tail);
}

inline uint64_t HashKey(const tensorflow::tstring& key) { return HashBytes(key.data(), key.size()); }

inline uint64_t HashKey(const std::string& key) { return HashBytes(key.data(), key.size()); }

// The partition in [0, num_parts) of a partitioned variable that owns a key of
// table hash `hash` (DrlKvShardIndex). It re-mixes the hash with a salt: a table's
// own hash index uses the low bits of the unsalted hash, so the keys of one
// partition still spread over its whole index. Multiply-high maps the 64-bit hash
// onto [0, num_parts) without the bias of a modulo.
inline int32_t PartitionOf(uint64_t hash, int64_t num_parts) {
  constexpr uint64_t kPartitionSalt = 0x6a09e667f3bcc909ULL;
  const unsigned __int128 n = static_cast<uint64_t>(num_parts);
  return static_cast<int32_t>((Mix64(hash ^ kPartitionSalt) * n) >> 64);
}

}  // namespace deeprec_lite

#endif  // DEEPREC_LITE_OPS_KEY_HASH_H_
