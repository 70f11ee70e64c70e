// Sums of occurrence counts (freq, a batch's per-key counts, Bloom counters) that
// stop at the largest int64 instead of wrapping to a negative number, which
// frequency filters would read as "never seen".
#ifndef DEEPREC_LITE_OPS_SATURATING_COUNT_H_
#define DEEPREC_LITE_OPS_SATURATING_COUNT_H_

#include <cstdint>
#include <limits>

namespace deeprec_lite {

// total + count for counts >= 0, at most INT64_MAX.
inline int64_t AddCount(int64_t total, int64_t count) {
  constexpr int64_t kMax = std::numeric_limits<int64_t>::max();
  return count > kMax - total ? kMax : total + count;
}

}  // namespace deeprec_lite

#endif  // DEEPREC_LITE_OPS_SATURATING_COUNT_H_
