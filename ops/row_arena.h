// Fixed-stride rows in chunks of kChunkRows rows, addressed by row number (the
// hash index stores row numbers, never pointers). The first chunk starts small
// and doubles (moving its rows) until it is full size, so a small table stays
// small; later chunks are allocated whole, so growth copies nothing, and their
// pages are mapped in one call rather than one fault each. Freed rows are
// reused. Row pointers are valid until the next Allocate(). Allocate() throws
// std::bad_alloc when memory runs out, with the arena unchanged.
#ifndef DEEPREC_LITE_OPS_ROW_ARENA_H_
#define DEEPREC_LITE_OPS_ROW_ARENA_H_

#include <algorithm>
#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <memory>
#include <vector>

#if defined(__linux__)
#include <sys/mman.h>
#endif

namespace deeprec_lite {

class RowArena {
 public:
  static constexpr int kChunkBits = 10;
  static constexpr uint32_t kChunkRows = 1u << kChunkBits;

  explicit RowArena(size_t stride_bytes) : stride_(stride_bytes) {}

  size_t stride() const { return stride_; }
  size_t live() const { return high_ - free_.size(); }
  // Rows handed out so far: [0, high()) holds the live rows and the freed ones.
  uint32_t high() const { return high_; }
  const std::vector<uint32_t>& free_rows() const { return free_; }
  size_t bytes() const {
    const size_t full_chunks = chunks_.empty() ? 0 : chunks_.size() - 1;
    return (first_chunk_rows_ + full_chunks * kChunkRows) * stride_ +
           chunks_.capacity() * sizeof(void*) + free_.capacity() * sizeof(uint32_t);
  }

  char* Row(uint32_t r) const {
    return chunks_[r >> kChunkBits].get() + (r & (kChunkRows - 1)) * stride_;
  }

  uint32_t Allocate() {
    if (!free_.empty()) {
      const uint32_t r = free_.back();
      free_.pop_back();
      return r;
    }
    if (high_ < kChunkRows) {
      if (high_ == first_chunk_rows_) GrowFirstChunk();
    } else if ((high_ >> kChunkBits) == chunks_.size()) {
      std::unique_ptr<char[]> chunk(new char[kChunkRows * stride_]);
      chunks_.push_back(std::move(chunk));
      MapPages(chunks_.back().get(), kChunkRows * stride_);
    }
    return high_++;
  }

  void Free(uint32_t r) { free_.push_back(r); }

  // Prefetches, for writing, the row that Allocate() returns once `ahead` more
  // rows have been handed out, when it lies in the chunk being filled and no
  // freed row will be handed out first.
  [[gnu::always_inline]] void PrefetchNewRow(uint32_t ahead) const {
    const uint32_t r = high_ + ahead;
    if (!free_.empty() || (r >> kChunkBits) != ((high_ - 1) >> kChunkBits)) return;
    if (high_ < kChunkRows && r >= first_chunk_rows_) return;
    const char* row = Row(r);
    __builtin_prefetch(row, 1);
    __builtin_prefetch(row + stride_ - 1, 1);
  }

  // A copy of this arena with rows of `new_stride` bytes: `move(new_row, old_row)`
  // fills each new row (free rows included) from the old one. Row numbers do not
  // change. Throws std::bad_alloc when memory runs out (this arena is unchanged).
  template <typename Move>
  RowArena Restrided(size_t new_stride, const Move& move) const {
    RowArena out(new_stride);
    out.high_ = high_;
    out.first_chunk_rows_ = first_chunk_rows_;
    out.free_ = free_;
    out.chunks_.resize(chunks_.size());
    for (size_t c = 0; c < chunks_.size(); ++c) {
      const uint32_t rows = c == 0 ? first_chunk_rows_ : kChunkRows;
      out.chunks_[c].reset(new char[rows * new_stride]);
      const uint32_t used = std::min<uint32_t>(rows, high_ - c * kChunkRows);
      for (uint32_t r = 0; r < used; ++r) {
        move(out.chunks_[c].get() + r * new_stride, chunks_[c].get() + r * stride_);
      }
    }
    return out;
  }

  void Clear() {
    chunks_.clear();
    free_.clear();
    free_.shrink_to_fit();
    high_ = 0;
    first_chunk_rows_ = 0;
  }

 private:
  static constexpr uint32_t kFirstChunkMinRows = 16;

  // Maps the whole pages of [p, p + bytes) now (Linux 5.14+; elsewhere a no-op:
  // they fault in as rows are written).
  static void MapPages(char* p, size_t bytes) {
#if defined(__linux__)
    constexpr int kPopulateWrite = 23;  // MADV_POPULATE_WRITE, missing from older headers
    const uintptr_t first = (reinterpret_cast<uintptr_t>(p) + 4095) & ~uintptr_t{4095};
    const uintptr_t last = (reinterpret_cast<uintptr_t>(p) + bytes) & ~uintptr_t{4095};
    if (last > first) madvise(reinterpret_cast<void*>(first), last - first, kPopulateWrite);
#endif
  }

  void GrowFirstChunk() {
    const uint32_t rows = first_chunk_rows_ == 0 ? kFirstChunkMinRows : 2 * first_chunk_rows_;
    std::unique_ptr<char[]> chunk(new char[rows * stride_]);
    if (high_ > 0) std::memcpy(chunk.get(), chunks_[0].get(), high_ * stride_);
    if (chunks_.empty()) chunks_.emplace_back();
    chunks_[0] = std::move(chunk);
    first_chunk_rows_ = rows;
  }

  size_t stride_;
  uint32_t high_ = 0;
  uint32_t first_chunk_rows_ = 0;
  std::vector<std::unique_ptr<char[]>> chunks_;
  std::vector<uint32_t> free_;
};

}  // namespace deeprec_lite

#endif  // DEEPREC_LITE_OPS_ROW_ARENA_H_
