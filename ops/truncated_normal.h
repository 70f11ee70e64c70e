// The standard normal truncated to [-2, 2] by inverse-CDF sampling: one 32-bit
// stream word gives one value, with no rejection and no branches, so rows of
// them vectorize (truncated_normal.cc).
#ifndef DEEPREC_LITE_OPS_TRUNCATED_NORMAL_H_
#define DEEPREC_LITE_OPS_TRUNCATED_NORMAL_H_

#include <cstdint>

namespace deeprec_lite {

// Fills out[0, dim) with mean + stddev * z_j, z_j drawn from word j of the key
// stream whose base is `stream_base` (see KeyStream: word 2i is the high half
// and word 2i + 1 the low half of Mix64(stream_base + (i + 1) * golden)).
void FillTruncatedNormal(uint64_t stream_base, float mean, float stddev, float* out, int64_t dim);

}  // namespace deeprec_lite

#endif  // DEEPREC_LITE_OPS_TRUNCATED_NORMAL_H_
