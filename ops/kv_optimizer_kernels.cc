// CPU kernels of the fused sparse optimizers (definitions in kv_optimizer_ops.cc).
//
// Each kernel updates a group of tables (see table_group.h). It validates its
// inputs, sums gradients by index when given, and scans the gradients of every
// table for rows holding NaN or Inf before it changes anything: with
// nonfinite_gradients = 'error' such a row fails the op and nothing is applied;
// with 'skip' those rows are left out and counted in their table. Then it visits
// the admitted rows of the batch's keys with KvTableBase::ForEachRow, which holds
// the row's shard lock (so the value and its slots change together), runs shards
// in parallel and stamps version = global_step on the rows it updates. The
// per-element arithmetic is done in double from the stored float32 value and
// slots, and the results are stored as float32, so the only rounding per step is
// the final store.
#include <algorithm>
#include <cmath>
#include <cstdint>
#include <string>
#include <vector>

#include "kernel_checks.h"
#include "kv_table.h"
#include "table_group.h"
#include "tensorflow/core/framework/op_kernel.h"
#include "tensorflow/core/framework/resource_mgr.h"
#include "tensorflow/core/framework/tensor.h"

namespace deeprec_lite {

using tensorflow::DataTypeString;
using tensorflow::OpKernel;
using tensorflow::OpKernelConstruction;
using tensorflow::OpKernelContext;
using tensorflow::Status;
using tensorflow::Tensor;
using tensorflow::TensorShape;
using tensorflow::TensorShapeUtils;
using tensorflow::errors::InvalidArgument;

namespace {

// Hyperparameters are read in this order from inputs 3, 4, ... (after table, keys,
// grads); global_step follows them.
struct Hyper {
  const char* name;
  enum Range { kAny, kNonNegative, kPositive, kUnitInterval, kNonPositive } range;
};

Status CheckHyper(const Hyper& h, double x) {
  if (!std::isfinite(x)) return InvalidArgument(h.name, " must be finite, got ", x);
  switch (h.range) {
    case Hyper::kAny:
      break;
    case Hyper::kNonNegative:
      if (x < 0) return InvalidArgument(h.name, " must be >= 0, got ", x);
      break;
    case Hyper::kPositive:
      if (x <= 0) return InvalidArgument(h.name, " must be > 0, got ", x);
      break;
    case Hyper::kUnitInterval:
      if (x < 0 || x >= 1) return InvalidArgument(h.name, " must be in [0, 1), got ", x);
      break;
    case Hyper::kNonPositive:
      if (x > 0) return InvalidArgument(h.name, " must be <= 0, got ", x);
      break;
  }
  return Status();
}

// Shared input handling of the ops over a table group: per table its keys,
// gradients (summed by index when given) and slot count; hyperparameters and
// global_step. Every table's gradients are checked before any table changes.
class KvApplyOp : public OpKernel {
 public:
  KvApplyOp(OpKernelConstruction* ctx, const char* optimizer, int num_slots,
            const char* slot_names, std::vector<Hyper> hypers)
      : OpKernel(ctx),
        optimizer_(optimizer),
        num_slots_(num_slots),
        slot_names_(slot_names),
        hypers_(std::move(hypers)) {
    std::string nonfinite;
    OP_REQUIRES_OK(ctx, ctx->GetAttr("nonfinite_gradients", &nonfinite));
    skip_nonfinite_ = nonfinite == "skip";
  }

  void Compute(OpKernelContext* ctx) override {
    TableGroup group;
    OP_REQUIRES_OK(ctx, group.Open(ctx, "tables"));
    tensorflow::OpInputList keys, index, grads;
    OP_REQUIRES_OK(ctx, ctx->input_list("keys", &keys));
    OP_REQUIRES_OK(ctx, ctx->input_list("index", &index));
    OP_REQUIRES_OK(ctx, ctx->input_list("grads", &grads));
    const bool indexed = index.size() > 0;
    OP_REQUIRES(ctx, !indexed || index.size() == group.size(),
                InvalidArgument("index must be empty or hold one tensor per table (",
                                group.size(), "), got ", index.size()));
    for (int i = 0; i < group.size(); ++i) {
      OP_REQUIRES_OK(ctx, CheckInputs(group[i], keys[i], indexed ? &index[i] : nullptr,
                                      grads[i]));
    }
    std::vector<double> h(hypers_.size());
    for (size_t j = 0; j < hypers_.size(); ++j) {
      const Tensor* t;
      OP_REQUIRES_OK(ctx, ctx->input(hypers_[j].name, &t));
      OP_REQUIRES(ctx, TensorShapeUtils::IsScalar(t->shape()),
                  InvalidArgument(hypers_[j].name, " must be a scalar, got shape ",
                                  t->shape().DebugString()));
      h[j] = static_cast<double>(t->scalar<float>()());
      OP_REQUIRES_OK(ctx, CheckHyper(hypers_[j], h[j]));
    }
    int start, stop;
    OP_REQUIRES_OK(ctx, ctx->op_kernel().InputRange("global_step", &start, &stop));
    int64_t step;
    OP_REQUIRES_OK(ctx, ReadStep(ctx, start, "global_step", &step));

    // Each table's gradient rows, one per key, and how many hold NaN or Inf.
    std::vector<Tensor> summed(group.size());
    for (int i = 0; indexed && i < group.size(); ++i) {
      OP_REQUIRES_OK(ctx, ctx->allocate_temp(
                              tensorflow::DT_FLOAT,
                              TensorShape({keys[i].NumElements(), group[i].config().dim}),
                              &summed[i]));
    }
    std::vector<const float*> g(group.size());
    std::vector<int64_t> nonfinite(group.size());
    OP_REQUIRES_OK(ctx, group.Run(ctx, [&](int i, const CpuWorkers&) {
      const int64_t dim = group[i].config().dim;
      const int64_t rows = keys[i].NumElements();
      if (indexed) {
        TF_RETURN_IF_ERROR(SumByIndex(index[i], grads[i], dim, rows, &summed[i]));
        g[i] = summed[i].flat<float>().data();
      } else {
        g[i] = grads[i].flat<float>().data();
      }
      nonfinite[i] = CountNonfiniteRows(g[i], rows, dim);
      return Status();
    }));
    for (int i = 0; i < group.size(); ++i) {
      OP_REQUIRES(ctx, nonfinite[i] == 0 || skip_nonfinite_,
                  NonfiniteGradientsError(group[i].config().name, nonfinite[i],
                                          keys[i].NumElements()));
    }
    tensorflow::OpOutputList updated;
    OP_REQUIRES_OK(ctx, ctx->output_list("updated", &updated));
    std::vector<Tensor*> out(group.size());
    for (int i = 0; i < group.size(); ++i) {
      OP_REQUIRES_OK(ctx, updated.allocate(i, TensorShape({}), &out[i]));
    }
    OP_REQUIRES_OK(ctx, group.Run(ctx, [&](int i, const CpuWorkers& workers) {
      KvTableBase& table = group[i];
      const int64_t dim = table.config().dim;
      if (nonfinite[i] > 0) table.CountNonfiniteSkipped(nonfinite[i]);
      out[i]->scalar<int64_t>()() =
          table.ForEachRow(workers, keys[i], step, [&](int64_t r, const RowView& row) {
            const float* grad = g[i] + r * dim;
            if (nonfinite[i] > 0 && !AllFinite(grad, dim)) return false;
            Apply(h, dim, grad, row.value, row.slots);
            return true;
          });
      return Status();
    }));
  }

 protected:
  // Updates one row: value [dim], slots [num_slots * dim] (slot-major) from grad [dim].
  virtual void Apply(const std::vector<double>& h, int64_t dim, const float* grad, float* value,
                     float* slots) const = 0;

 private:
  Status CheckInputs(const KvTableBase& table, const Tensor& keys, const Tensor* index,
                     const Tensor& grads) const {
    const TableConfig& config = table.config();
    if (config.num_slots != num_slots_) {
      return InvalidArgument(optimizer_, " needs a table with ", num_slots_, " slot(s) ",
                             slot_names_, ", but table '", config.name, "' has ",
                             config.num_slots,
                             " slot(s); create the KVVariable with slots=optimizer.slots");
    }
    TF_RETURN_IF_ERROR(CheckKeys(table, keys));
    TensorShape want = index == nullptr ? keys.shape() : index->shape();
    want.AddDim(config.dim);
    if (grads.shape() != want) {
      return InvalidArgument("grads of table '", config.name, "' must have shape ",
                             index == nullptr ? "keys.shape" : "index.shape", " + [dim] = ",
                             want.DebugString(), ", got ", grads.shape().DebugString());
    }
    if (index != nullptr && (keys.dims() != 1 || index->dims() != 1)) {
      return InvalidArgument("with index, keys and index of table '", config.name,
                             "' must be vectors, got shapes ", keys.shape().DebugString(),
                             " and ", index->shape().DebugString());
    }
    return Status();
  }

  // summed [rows, dim] = the sum of grads [n, dim] by index [n], in float32 and in
  // input order (as tf.math.unsorted_segment_sum); InvalidArgument for an index
  // outside [0, rows).
  static Status SumByIndex(const Tensor& index, const Tensor& grads, int64_t dim, int64_t rows,
                           Tensor* summed) {
    const int64_t* idx = index.flat<int64_t>().data();
    const float* g = grads.flat<float>().data();
    float* out = summed->flat<float>().data();
    std::fill(out, out + rows * dim, 0.0f);
    for (int64_t i = 0; i < index.NumElements(); ++i) {
      if (idx[i] < 0 || idx[i] >= rows) {
        return InvalidArgument("index[", i, "] = ", idx[i], " is not in [0, ", rows,
                               ") (one position per key)");
      }
      float* __restrict__ dst = out + idx[i] * dim;
      const float* __restrict__ src = g + i * dim;
      for (int64_t j = 0; j < dim; ++j) dst[j] += src[j];
    }
    return Status();
  }

  const char* optimizer_;
  const int num_slots_;
  const char* slot_names_;
  const std::vector<Hyper> hypers_;
  bool skip_nonfinite_;
};

// grads [..., dim] unchanged, or InvalidArgument naming table_name when a row holds
// NaN or Inf: a partitioned table checks its whole batch before any shard changes.
class CheckFiniteGradientsOp : public OpKernel {
 public:
  explicit CheckFiniteGradientsOp(OpKernelConstruction* ctx) : OpKernel(ctx) {
    OP_REQUIRES_OK(ctx, ctx->GetAttr("table_name", &table_name_));
  }

  void Compute(OpKernelContext* ctx) override {
    const Tensor& grads = ctx->input(0);
    OP_REQUIRES(ctx, grads.dims() >= 1,
                InvalidArgument("grads must have rank >= 1, got shape ",
                                grads.shape().DebugString()));
    const auto rows = grads.flat_inner_dims<float>();
    const int64_t nonfinite =
        CountNonfiniteRows(rows.data(), rows.dimension(0), rows.dimension(1));
    OP_REQUIRES(ctx, nonfinite == 0,
                NonfiniteGradientsError(table_name_, nonfinite, rows.dimension(0)));
    ctx->set_output(0, grads);
  }

 private:
  std::string table_name_;
};

class KvApplySgdOp : public KvApplyOp {
 public:
  explicit KvApplySgdOp(OpKernelConstruction* ctx)
      : KvApplyOp(ctx, "SGD", 0, "(none)", {{"learning_rate", Hyper::kNonNegative}}) {}

 protected:
  void Apply(const std::vector<double>& h, int64_t dim, const float* __restrict__ grad,
             float* __restrict__ w, float*) const override {
    const double lr = h[0];
    for (int64_t j = 0; j < dim; ++j) w[j] = static_cast<float>(w[j] - lr * grad[j]);
  }
};

class KvApplyAdagradOp : public KvApplyOp {
 public:
  explicit KvApplyAdagradOp(OpKernelConstruction* ctx)
      : KvApplyOp(ctx, "Adagrad", 1, "['accumulator']",
                  {{"learning_rate", Hyper::kNonNegative}, {"epsilon", Hyper::kNonNegative}}) {}

 protected:
  // A zero denominator (accumulator and epsilon both 0) leaves w unchanged.
  void Apply(const std::vector<double>& h, int64_t dim, const float* __restrict__ grad,
             float* __restrict__ w, float* __restrict__ slots) const override {
    const double lr = h[0], eps = h[1];
    float* __restrict__ acc = slots;
    for (int64_t j = 0; j < dim; ++j) {  // branch-free so that it vectorizes
      const double g = grad[j];
      const double a = static_cast<double>(acc[j]) + g * g;
      const double denom = std::sqrt(a + eps);
      acc[j] = static_cast<float>(a);
      const double step = lr * g / denom;
      w[j] = static_cast<float>(w[j] - (denom > 0 ? step : 0.0));
    }
  }
};

class KvApplyAdamOp : public KvApplyOp {
 public:
  explicit KvApplyAdamOp(OpKernelConstruction* ctx)
      : KvApplyOp(ctx, "Adam", 2, "['m', 'v']",
                  {{"learning_rate", Hyper::kNonNegative},
                   {"beta_1", Hyper::kUnitInterval},
                   {"beta_2", Hyper::kUnitInterval},
                   {"beta_1_power", Hyper::kUnitInterval},
                   {"beta_2_power", Hyper::kUnitInterval},
                   {"epsilon", Hyper::kNonNegative}}) {}

 protected:
  void Apply(const std::vector<double>& h, int64_t dim, const float* __restrict__ grad,
             float* __restrict__ w, float* __restrict__ slots) const override {
    const double lr = h[0], b1 = h[1], b2 = h[2], b1p = h[3], b2p = h[4], eps = h[5];
    const double alpha = lr * std::sqrt(1.0 - b2p) / (1.0 - b1p);
    float* __restrict__ m = slots;
    float* __restrict__ v = slots + dim;
    for (int64_t j = 0; j < dim; ++j) {  // branch-free so that it vectorizes
      const double g = grad[j];
      const double mj = m[j] + (g - m[j]) * (1.0 - b1);
      const double vj = v[j] + (g * g - v[j]) * (1.0 - b2);
      m[j] = static_cast<float>(mj);
      v[j] = static_cast<float>(vj);
      const double denom = std::sqrt(vj) + eps;
      const double step = mj * alpha / denom;
      w[j] = static_cast<float>(w[j] - (denom > 0 ? step : 0.0));
    }
  }
};

class KvApplyFtrlOp : public KvApplyOp {
 public:
  explicit KvApplyFtrlOp(OpKernelConstruction* ctx)
      : KvApplyOp(ctx, "FTRL", 2, "['z', 'n']",
                  {{"learning_rate", Hyper::kPositive},
                   {"learning_rate_power", Hyper::kNonPositive},
                   {"l1", Hyper::kNonNegative},
                   {"l2", Hyper::kNonNegative},
                   {"l2_shrinkage", Hyper::kNonNegative},
                   {"beta", Hyper::kNonNegative}}) {}

 protected:
  void Apply(const std::vector<double>& h, int64_t dim, const float* grad, float* w,
             float* slots) const override {
    const double lr = h[0], p = h[1], l1 = h[2], l2 = h[3], l2s = h[4], beta = h[5];
    const bool sqrt_power = p == -0.5;
    auto power = [&](double x) { return sqrt_power ? std::sqrt(x) : std::pow(x, -p); };
    float* z = slots;
    float* n = slots + dim;
    for (int64_t j = 0; j < dim; ++j) {
      const double g = grad[j];
      const double wj = w[j];
      const double nj = n[j];
      const double n_new = nj + g * g;
      const double pn_new = power(n_new);
      const double zj = z[j] + (g + 2.0 * l2s * wj) - (pn_new - power(nj)) / lr * wj;
      const double quadratic = pn_new / lr + 2.0 * l2 + beta / lr;
      const double clipped = std::min(std::max(zj, -l1), l1);
      z[j] = static_cast<float>(zj);
      n[j] = static_cast<float>(n_new);
      w[j] = quadratic > 0 ? static_cast<float>((clipped - zj) / quadratic) : 0.0f;
    }
  }
};

class KvApplyGroupFtrlOp : public KvApplyOp {
 public:
  explicit KvApplyGroupFtrlOp(OpKernelConstruction* ctx)
      : KvApplyOp(ctx, "GroupFTRL", 2, "['z', 'n']",
                  {{"alpha", Hyper::kPositive},
                   {"beta", Hyper::kNonNegative},
                   {"lambda1", Hyper::kNonNegative},
                   {"lambda2", Hyper::kNonNegative}}) {}

 protected:
  void Apply(const std::vector<double>& h, int64_t dim, const float* grad, float* w,
             float* slots) const override {
    const double alpha = h[0], beta = h[1], lambda1 = h[2], lambda2 = h[3];
    thread_local std::vector<double> buf;
    buf.resize(2 * dim);
    double* znew = buf.data();
    double* nnew = buf.data() + dim;
    float* z = slots;
    float* n = slots + dim;
    double norm2 = 0.0;
    for (int64_t j = 0; j < dim; ++j) {
      const double g = grad[j];
      const double nj = n[j];
      const double n_new = nj + g * g;
      const double sigma = (std::sqrt(n_new) - std::sqrt(nj)) / alpha;
      const double zj = z[j] + g - sigma * w[j];
      z[j] = static_cast<float>(zj);
      n[j] = static_cast<float>(n_new);
      znew[j] = zj;
      nnew[j] = n_new;
      norm2 += zj * zj;
    }
    const double norm = std::sqrt(norm2);
    const double threshold = lambda1 * std::sqrt(static_cast<double>(dim));
    if (norm <= threshold) {
      std::fill(w, w + dim, 0.0f);
      return;
    }
    const double shrink = 1.0 - threshold / norm;
    for (int64_t j = 0; j < dim; ++j) {
      const double denom = (beta + std::sqrt(nnew[j])) / alpha + lambda2;
      w[j] = denom > 0 ? static_cast<float>(-shrink * znew[j] / denom) : 0.0f;
    }
  }
};

#define DRL_CPU_KERNEL(NAME, CLASS) \
  REGISTER_KERNEL_BUILDER(Name(NAME).Device(tensorflow::DEVICE_CPU), CLASS)

DRL_CPU_KERNEL("DrlKvApplySgd", KvApplySgdOp);
DRL_CPU_KERNEL("DrlKvApplyAdagrad", KvApplyAdagradOp);
DRL_CPU_KERNEL("DrlKvApplyAdam", KvApplyAdamOp);
DRL_CPU_KERNEL("DrlKvApplyFtrl", KvApplyFtrlOp);
DRL_CPU_KERNEL("DrlKvApplyGroupFtrl", KvApplyGroupFtrlOp);
DRL_CPU_KERNEL("DrlCheckFiniteGradients", CheckFiniteGradientsOp);

}  // namespace

}  // namespace deeprec_lite
