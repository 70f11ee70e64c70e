// The distinct keys of a batch, found by open addressing on the low bits of
// their hashes and numbered in order of first occurrence, each with the sum of
// its occurrences' counts. Used where a batch's keys are deduplicated before
// they reach a table (the group lookup op's walk, DrlKvGroupRoute).
#ifndef DEEPREC_LITE_OPS_DISTINCT_KEYS_H_
#define DEEPREC_LITE_OPS_DISTINCT_KEYS_H_

#include <cstddef>
#include <cstdint>
#include <vector>

#include "saturating_count.h"

namespace deeprec_lite {

template <typename K>
class DistinctKeys {
 public:
  // keys: the batch that Add's positions refer to; at_most: how many Adds follow.
  DistinctKeys(const K* keys, int64_t at_most) : keys_(keys) {
    size_t capacity = 16;
    while (capacity < 2 * static_cast<size_t>(at_most)) capacity <<= 1;
    slot_.assign(capacity, -1);
    first.reserve(at_most);
    hashes.reserve(at_most);
    counts.reserve(at_most);
  }

  // Adds keys[i] (its hash: hash) with `count` occurrences; returns its number
  // among the distinct keys.
  int32_t Add(int64_t i, uint64_t hash, int64_t count) {
    const size_t mask = slot_.size() - 1;
    size_t pos = hash & mask;
    int32_t u;
    while ((u = slot_[pos]) >= 0 && (hashes[u] != hash || !(keys_[first[u]] == keys_[i]))) {
      pos = (pos + 1) & mask;
    }
    if (u < 0) {
      u = slot_[pos] = static_cast<int32_t>(first.size());
      first.push_back(i);
      hashes.push_back(hash);
      counts.push_back(0);
    }
    counts[u] = AddCount(counts[u], count);
    return u;
  }

  int64_t size() const { return static_cast<int64_t>(first.size()); }

  // Per distinct key, by number: the position of its first occurrence, its hash,
  // the sum of its counts.
  std::vector<int64_t> first;
  std::vector<uint64_t> hashes;
  std::vector<int64_t> counts;

 private:
  const K* keys_;
  std::vector<int32_t> slot_;  // by hash position: a distinct key's number, or -1
};

}  // namespace deeprec_lite

#endif  // DEEPREC_LITE_OPS_DISTINCT_KEYS_H_
