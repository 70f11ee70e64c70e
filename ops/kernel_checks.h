// Input checks and the table-kernel base shared by the KV table, checkpoint and
// optimizer kernels.
#ifndef DEEPREC_LITE_OPS_KERNEL_CHECKS_H_
#define DEEPREC_LITE_OPS_KERNEL_CHECKS_H_

#include <unistd.h>

#include <cstdint>
#include <cstring>
#include <string>

#include "kv_table.h"
#include "tensorflow/core/framework/op_kernel.h"
#include "tensorflow/core/framework/resource_mgr.h"
#include "tensorflow/core/framework/tensor.h"
#include "tensorflow/core/framework/tensor_shape.h"
#include "tensorflow/core/platform/strcat.h"

namespace deeprec_lite {

// Base for kernels that operate on an existing table (input 0).
class TableKernel : public tensorflow::OpKernel {
 public:
  using OpKernel::OpKernel;
  void Compute(tensorflow::OpKernelContext* ctx) override {
    tensorflow::core::RefCountPtr<KvTableBase> table;
    OP_REQUIRES_OK(ctx, LookupResource(ctx, tensorflow::HandleFromInput(ctx, 0), &table));
    ComputeWithTable(ctx, table.get());
  }
  virtual void ComputeWithTable(tensorflow::OpKernelContext* ctx, KvTableBase* table) = 0;
};

// A kernel whose key outputs are of type `asked` reads a table of those keys.
inline tensorflow::Status CheckKeyOutput(const KvTableBase& table, tensorflow::DataType asked) {
  if (table.key_dtype() == asked) return tensorflow::Status();
  return tensorflow::errors::InvalidArgument(
      "the table has ", tensorflow::DataTypeString(table.key_dtype()), " keys, the op asked for ",
      tensorflow::DataTypeString(asked));
}

// keys: the table's dtype, rank <= 2, fewer than 2^32 of them.
inline tensorflow::Status CheckKeys(const KvTableBase& table, const tensorflow::Tensor& keys) {
  using tensorflow::errors::InvalidArgument;
  if (keys.dtype() != table.key_dtype()) {
    return InvalidArgument("keys: the table has ", tensorflow::DataTypeString(table.key_dtype()),
                           " keys, got ", tensorflow::DataTypeString(keys.dtype()), " keys");
  }
  if (keys.dims() > 2) {
    return InvalidArgument("keys must have rank 0, 1 or 2, got shape ",
                           keys.shape().DebugString());
  }
  if (keys.NumElements() >= (int64_t{1} << 32)) {
    return InvalidArgument("a batch holds at most 2^32 - 1 keys, got ", keys.NumElements());
  }
  return tensorflow::Status();
}

// An int64 scalar input named `name` in errors, at least `minimum`.
inline tensorflow::Status ReadInt64(tensorflow::OpKernelContext* ctx, int input, const char* name,
                                    int64_t minimum, int64_t* value) {
  const tensorflow::Tensor& t = ctx->input(input);
  if (!tensorflow::TensorShapeUtils::IsScalar(t.shape())) {
    return tensorflow::errors::InvalidArgument(name, " must be a scalar, got shape ",
                                               t.shape().DebugString());
  }
  *value = t.scalar<int64_t>()();
  if (*value < minimum) {
    return tensorflow::errors::InvalidArgument(name, " must be >= ", minimum, ", got ", *value);
  }
  return tensorflow::Status();
}

// A global step (what versions are stamped with): an int64 scalar >= 0. With steps
// and versions never negative, step - version never overflows.
inline tensorflow::Status ReadStep(tensorflow::OpKernelContext* ctx, int input, const char* name,
                                   int64_t* step) {
  return ReadInt64(ctx, input, name, 0, step);
}

// True when none of the n floats at x is NaN or +-Inf (the only floats whose exponent
// bits are all ones). Branch-free, so that it vectorizes.
inline bool AllFinite(const float* x, int64_t n) {
  uint32_t non_finite = 0;
  for (int64_t j = 0; j < n; ++j) {
    uint32_t bits;
    std::memcpy(&bits, x + j, sizeof(bits));
    non_finite |= static_cast<uint32_t>((bits & 0x7f800000u) == 0x7f800000u);
  }
  return non_finite == 0;
}

// The number of rows of grads [rows, dim] that hold a NaN or an Inf.
inline int64_t CountNonfiniteRows(const float* grads, int64_t rows, int64_t dim) {
  int64_t count = 0;
  for (int64_t i = 0; i < rows; ++i) count += !AllFinite(grads + i * dim, dim);
  return count;
}

// The error for `nonfinite` rows among `rows` gradient rows of table `table`.
inline tensorflow::Status NonfiniteGradientsError(const std::string& table, int64_t nonfinite,
                                                  int64_t rows) {
  return tensorflow::errors::InvalidArgument(
      "table '", table, "': ", nonfinite, " of ", rows,
      " gradient rows hold NaN or Inf; nothing of the batch was applied (a sparse optimizer "
      "with nonfinite_gradients='skip' skips and counts such rows)");
}

// OK when `bytes` for `what` of table `table` (`overflow`: more than an int64 holds) fit
// in this machine's physical memory; ResourceExhausted naming both otherwise.
inline tensorflow::Status CheckFitsInMemory(const std::string& table, const std::string& what,
                                            bool overflow, int64_t bytes) {
  const int64_t memory = static_cast<int64_t>(sysconf(_SC_PHYS_PAGES)) * sysconf(_SC_PAGE_SIZE);
  if (!overflow && bytes <= memory) return tensorflow::Status();
  return tensorflow::errors::ResourceExhausted(
      "table '", table, "': ", what, " takes ",
      overflow ? std::string("more than 2^63 - 1") : std::to_string(bytes),
      " bytes, more than this machine's ", memory, " bytes of memory");
}

// A row's value and slots, 4 * dim * (1 + num_slots) bytes, must fit in memory.
inline tensorflow::Status CheckRowBytes(const std::string& table, int64_t dim,
                                        int64_t num_slots) {
  int64_t floats = 0, bytes = 0;
  const bool overflow = num_slots == INT64_MAX ||
                        __builtin_mul_overflow(dim, num_slots + 1, &floats) ||
                        __builtin_mul_overflow(floats, int64_t{4}, &bytes);
  return CheckFitsInMemory(table,
                           tensorflow::strings::StrCat("a row of dim ", dim, " with ", num_slots,
                                                       " slot(s) (4 * dim * (1 + num_slots))"),
                           overflow, bytes);
}

}  // namespace deeprec_lite

#endif  // DEEPREC_LITE_OPS_KERNEL_CHECKS_H_
