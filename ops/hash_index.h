// Open-addressing hash index (linear probing, backward-shift deletion, no
// tombstones). Each 8-byte entry holds a 32-bit tag (the low 32 bits of the key
// hash) and a 32-bit reference (reference + 1, so 0 marks an empty entry). An
// entry's home position comes from its tag, so growing and deleting never read
// the records; key comparison is delegated to the caller, which owns them.
// Capacity is at most 2^32 entries.
#ifndef DEEPREC_LITE_OPS_HASH_INDEX_H_
#define DEEPREC_LITE_OPS_HASH_INDEX_H_

#include <cstdint>
#include <vector>

namespace deeprec_lite {

class HashIndex {
 public:
  static constexpr int64_t kNotFound = -1;

  HashIndex() { Reset(16); }

  size_t count() const { return count_; }
  size_t capacity() const { return entries_.size(); }
  size_t bytes() const { return entries_.capacity() * sizeof(uint64_t); }

  static uint32_t Tag(uint64_t hash) { return static_cast<uint32_t>(hash); }
  static uint32_t Ref(uint64_t entry) { return static_cast<uint32_t>(entry) - 1; }
  static bool SameTag(uint64_t entry, uint64_t hash) {
    return static_cast<uint32_t>(entry >> 32) == Tag(hash);
  }
  uint64_t entry(size_t pos) const { return entries_[pos]; }

  size_t HomeOf(uint64_t hash) const { return Tag(hash) & mask_; }
  // Always inlined, as a prefetch in a call of its own may be deleted (see
  // PrefetchRecord in kv_table.cc).
  [[gnu::always_inline]] void Prefetch(uint64_t hash) const {
    __builtin_prefetch(&entries_[HomeOf(hash)]);
  }

  // Returns the position holding the key (as decided by `same_key(ref)`), or
  // kNotFound. `*insert_pos` receives the empty position where it would go.
  template <typename SameKey>
  int64_t Find(uint64_t hash, const SameKey& same_key, size_t* insert_pos = nullptr) const {
    for (size_t pos = HomeOf(hash);; pos = (pos + 1) & mask_) {
      const uint64_t e = entries_[pos];
      if (e == 0) {
        if (insert_pos != nullptr) *insert_pos = pos;
        return kNotFound;
      }
      if (SameTag(e, hash) && same_key(Ref(e))) return pos;
    }
  }

  void Set(size_t pos, uint64_t hash, uint32_t ref) {
    entries_[pos] = (static_cast<uint64_t>(Tag(hash)) << 32) | (static_cast<uint64_t>(ref) + 1);
  }
  void Insert(size_t pos, uint64_t hash, uint32_t ref) {
    Set(pos, hash, ref);
    ++count_;
  }

  // True when one more insert needs Grow() first (load factor 3/4).
  bool Full() const { return (count_ + 1) * 4 > entries_.size() * 3; }

  // Doubles the capacity.
  void Grow() { Rehash(entries_.size() * 2); }

  // Grows, at most once, so that `n` entries in all fit without another Grow().
  void Reserve(size_t n) {
    size_t capacity = entries_.size();
    while (n * 4 > capacity * 3) capacity *= 2;
    if (capacity > entries_.size()) Rehash(capacity);
  }

  // Removes the entry at `pos`, shifting later entries of its probe run back.
  void Erase(size_t pos) {
    size_t hole = pos;
    for (size_t j = (pos + 1) & mask_; entries_[j] != 0; j = (j + 1) & mask_) {
      const size_t home = Home(entries_[j]);
      // The entry at j may move into the hole unless its home lies in (hole, j].
      const bool home_between = ((j - home) & mask_) < ((j - hole) & mask_);
      if (!home_between) {
        entries_[hole] = entries_[j];
        hole = j;
      }
    }
    entries_[hole] = 0;
    --count_;
  }

  void Clear() {
    entries_.clear();
    entries_.shrink_to_fit();
    Reset(16);
  }

 private:
  size_t Home(uint64_t entry) const { return static_cast<uint32_t>(entry >> 32) & mask_; }

  // Places every entry again in a new array of `capacity` entries. Throws
  // std::bad_alloc, with the index unchanged, when the array cannot be allocated.
  void Rehash(size_t capacity) {
    std::vector<uint64_t> old(capacity, 0);
    old.swap(entries_);
    mask_ = capacity - 1;
    // Without a branch on empty old slots (half of them, at random: a mispredicted
    // branch each): they are written to `sink`, which stays 0.
    uint64_t sink = 0;
    uint64_t* const base = entries_.data();
    for (uint64_t e : old) {
      size_t pos = Home(e);
      uint64_t* slot = e != 0 ? base + pos : &sink;
      while (*slot != 0) {
        pos = (pos + 1) & mask_;
        slot = base + pos;
      }
      *slot = e;
    }
  }

  void Reset(size_t capacity) {
    entries_.assign(capacity, 0);
    mask_ = capacity - 1;
    count_ = 0;
  }

  std::vector<uint64_t> entries_;
  size_t mask_ = 0;
  size_t count_ = 0;
};

}  // namespace deeprec_lite

#endif  // DEEPREC_LITE_OPS_HASH_INDEX_H_
