// Pooling of a feature's embedding rows inside the grouped lookup (combiners and
// sequence padding), and its gradient. The arithmetic is that of the TensorFlow ops
// KVEmbedding pools with at inference, so a pooled training output and its gradient
// are bit for bit those ops' results:
//   sum    out[b] = sum_i w_i rows[i]                       (unsorted_segment_sum, in order)
//   mean   out[b] = div_no_nan(sum_i w_i rows[i], sum_i w_i)
//   sqrtn  out[b] = div_no_nan(sum_i w_i rows[i], sqrt(sum_i w_i^2))
//   sequence out[b, p] = rows[splits[b] + p] for p < min(length, width), else 0
// (i over the ids of example b: splits[b] <= i < splits[b + 1]; w_i = 1 without weights).
#ifndef DEEPREC_LITE_OPS_EMBEDDING_POOLING_H_
#define DEEPREC_LITE_OPS_EMBEDDING_POOLING_H_

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <cstring>
#include <string>

#include "tensorflow/core/framework/tensor.h"
#include "tensorflow/core/framework/tensor_shape.h"
#include "tensorflow/core/platform/errors.h"

namespace deeprec_lite {

enum class Pooling { kNone, kSum, kMean, kSqrtn, kSequence };

inline bool ParsePooling(const std::string& name, Pooling* mode) {
  if (name == "none") *mode = Pooling::kNone;
  else if (name == "sum") *mode = Pooling::kSum;
  else if (name == "mean") *mode = Pooling::kMean;
  else if (name == "sqrtn") *mode = Pooling::kSqrtn;
  else if (name == "sequence") *mode = Pooling::kSequence;
  else return false;
  return true;
}

// One feature's pooling: `examples` rows given by splits [examples + 1] over its ids;
// weights: one per id, or null (all 1); width: sequence positions kept.
struct PoolingSpec {
  Pooling mode = Pooling::kNone;
  const int64_t* splits = nullptr;
  int64_t examples = 0;
  const float* weights = nullptr;
  int64_t width = 0;

  // Reads and checks row_splits / weights for `ids` ids; max_length: the sequence width
  // (-1: the longest example). `what` names the feature in errors.
  static tensorflow::Status Make(const std::string& what, Pooling mode,
                                 const tensorflow::Tensor& row_splits,
                                 const tensorflow::Tensor& weights, int64_t ids,
                                 int64_t max_length, PoolingSpec* spec) {
    using tensorflow::errors::InvalidArgument;
    spec->mode = mode;
    if (mode == Pooling::kNone) return tensorflow::Status();
    const int64_t m = row_splits.NumElements();
    if (row_splits.dims() != 1 || m < 1) {
      return InvalidArgument(what, ": row_splits must be a vector of at least 1 entry, got "
                             "shape ", row_splits.shape().DebugString());
    }
    const int64_t* s = row_splits.flat<int64_t>().data();
    if (s[0] != 0 || s[m - 1] != ids) {
      return InvalidArgument(what, ": row_splits must start at 0 and end at the number of "
                             "ids (", ids, "), got ", s[0], " .. ", s[m - 1]);
    }
    int64_t longest = 0;
    for (int64_t b = 0; b + 1 < m; ++b) {
      if (s[b + 1] < s[b]) {
        return InvalidArgument(what, ": row_splits must not decrease, got ", s[b], " then ",
                               s[b + 1], " at ", b);
      }
      longest = std::max(longest, s[b + 1] - s[b]);
    }
    const int64_t w = weights.NumElements();
    if (w != 0 && (weights.dims() != 1 || w != ids)) {
      return InvalidArgument(what, ": weights must be empty or one per id (", ids,
                             "), got shape ", weights.shape().DebugString());
    }
    spec->splits = s;
    spec->examples = m - 1;
    spec->weights = w == 0 ? nullptr : weights.flat<float>().data();
    spec->width = max_length >= 0 ? max_length : longest;
    return tensorflow::Status();
  }

  // The pooled output's shape: [examples, dim], or [examples, width, dim] for a sequence.
  tensorflow::TensorShape Shape(int64_t dim) const {
    if (mode == Pooling::kSequence) return tensorflow::TensorShape({examples, width, dim});
    return tensorflow::TensorShape({examples, dim});
  }

  float Weight(int64_t i) const { return weights == nullptr ? 1.0f : weights[i]; }

  // The divisor of example b (mean, sqrtn); 0 gives 0 (div_no_nan).
  float Norm(int64_t b) const {
    float norm = 0.0f;
    for (int64_t i = splits[b]; i < splits[b + 1]; ++i) {
      const float w = Weight(i);
      norm += mode == Pooling::kMean ? w : w * w;
    }
    return mode == Pooling::kMean ? norm : std::sqrt(norm);
  }

  // out (Shape(dim)) from rows [ids, dim], examples [lo, hi).
  void Pool(const float* rows, int64_t dim, int64_t lo, int64_t hi, float* out) const {
    if (mode == Pooling::kSequence) {
      for (int64_t b = lo; b < hi; ++b) {
        float* o = out + b * width * dim;
        const int64_t kept = std::min(width, splits[b + 1] - splits[b]);
        std::memcpy(o, rows + splits[b] * dim, sizeof(float) * kept * dim);
        std::memset(o + kept * dim, 0, sizeof(float) * (width - kept) * dim);
      }
      return;
    }
    for (int64_t b = lo; b < hi; ++b) {
      float* o = out + b * dim;
      std::fill(o, o + dim, 0.0f);
      for (int64_t i = splits[b]; i < splits[b + 1]; ++i) {
        const float w = Weight(i);
        const float* r = rows + i * dim;
        for (int64_t d = 0; d < dim; ++d) o[d] += r[d] * w;
      }
      if (mode == Pooling::kSum) continue;
      const float norm = Norm(b);
      for (int64_t d = 0; d < dim; ++d) o[d] = norm == 0.0f ? 0.0f : o[d] / norm;
    }
  }

  // The gradient [ids, dim] of the rows from the output's gradient (Shape(dim)), for the
  // ids of examples [lo, hi): TensorFlow's gradients of the pooling ops above.
  void Gradient(const float* grad, int64_t dim, int64_t lo, int64_t hi, float* out) const {
    for (int64_t b = lo; b < hi; ++b) {
      if (mode == Pooling::kSequence) {
        const int64_t n = splits[b + 1] - splits[b];
        const int64_t kept = std::min(width, n);
        float* o = out + splits[b] * dim;
        std::memcpy(o, grad + b * width * dim, sizeof(float) * kept * dim);
        std::memset(o + kept * dim, 0, sizeof(float) * (n - kept) * dim);
        continue;
      }
      const float* g = grad + b * dim;
      const float norm = mode == Pooling::kSum ? 1.0f : Norm(b);
      for (int64_t i = splits[b]; i < splits[b + 1]; ++i) {
        const float w = Weight(i);
        float* o = out + i * dim;
        for (int64_t d = 0; d < dim; ++d) {
          const float scaled = mode == Pooling::kSum ? g[d] : (norm == 0.0f ? 0.0f : g[d] / norm);
          o[d] = scaled * w;
        }
      }
    }
  }
};

}  // namespace deeprec_lite

#endif  // DEEPREC_LITE_OPS_EMBEDDING_POOLING_H_
