// A counting Bloom filter of saturating 16-bit counters. Admission by Bloom
// filter keeps no per-key record for keys below the threshold: their counts live
// only here. Counters are updated with atomics, so shards may share it.
#ifndef DEEPREC_LITE_OPS_COUNTING_BLOOM_FILTER_H_
#define DEEPREC_LITE_OPS_COUNTING_BLOOM_FILTER_H_

#include <algorithm>
#include <atomic>
#include <cstdint>
#include <memory>

#include "key_hash.h"
#include "saturating_count.h"

namespace deeprec_lite {

class CountingBloomFilter {
 public:
  static constexpr uint32_t kMaxCount = 0xffff;

  CountingBloomFilter(int64_t num_counters, int num_hashes)
      : size_(num_counters),
        num_hashes_(num_hashes),
        counters_(num_counters > 0 ? new std::atomic<uint16_t>[num_counters] : nullptr) {
    Clear();
  }

  int64_t size() const { return size_; }
  int num_hashes() const { return num_hashes_; }
  size_t bytes() const { return size_ * sizeof(uint16_t); }

  void Clear() {
    for (int64_t i = 0; i < size_; ++i) counters_[i].store(0, std::memory_order_relaxed);
  }

  // Adds `count` sightings of the key and returns its estimated total count
  // (the minimum over its counters, never below the true count).
  uint32_t Add(uint64_t key_hash, int64_t count) {
    uint32_t estimate = kMaxCount;
    const uint64_t h2 = Mix64(key_hash ^ 0x5bd1e9955bd1e995ULL) | 1;
    for (int i = 0; i < num_hashes_; ++i) {
      std::atomic<uint16_t>& c = counters_[(key_hash + i * h2) % size_];
      uint16_t old = c.load(std::memory_order_relaxed);
      uint16_t next;
      do {
        next = static_cast<uint16_t>(std::min<int64_t>(kMaxCount, AddCount(old, count)));
      } while (!c.compare_exchange_weak(old, next, std::memory_order_relaxed));
      estimate = std::min<uint32_t>(estimate, next);
    }
    return estimate;
  }

  uint16_t Get(int64_t i) const { return counters_[i].load(std::memory_order_relaxed); }
  void Set(int64_t i, uint16_t v) { counters_[i].store(v, std::memory_order_relaxed); }

 private:
  int64_t size_;
  int num_hashes_;
  std::unique_ptr<std::atomic<uint16_t>[]> counters_;
};

}  // namespace deeprec_lite

#endif  // DEEPREC_LITE_OPS_COUNTING_BLOOM_FILTER_H_
