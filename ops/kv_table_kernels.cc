// CPU kernels of the KV table ops (definitions in kv_table_ops.cc).
#include <cmath>
#include <cstring>
#include <new>
#include <string>
#include <vector>

#include "embedding_pooling.h"
#include "kernel_checks.h"
#include "kv_table.h"
#include "table_group.h"
#include "tensorflow/core/framework/op_kernel.h"
#include "tensorflow/core/framework/resource_mgr.h"
#include "tensorflow/core/framework/tensor.h"

namespace deeprec_lite {

using tensorflow::DataType;
using tensorflow::DataTypeString;
using tensorflow::OpKernel;
using tensorflow::OpKernelConstruction;
using tensorflow::OpKernelContext;
using tensorflow::ResourceHandle;
using tensorflow::Status;
using tensorflow::Tensor;
using tensorflow::TensorShape;
using tensorflow::TensorShapeUtils;
using tensorflow::errors::InvalidArgument;
using tensorflow::errors::ResourceExhausted;

namespace {

Status ParseConfig(OpKernelConstruction* ctx, TableConfig* c) {
  TF_RETURN_IF_ERROR(ctx->GetAttr("table_name", &c->name));
  TF_RETURN_IF_ERROR(ctx->GetAttr("dim", &c->dim));
  if (c->dim <= 0) return InvalidArgument("dim must be positive, got ", c->dim);
  TF_RETURN_IF_ERROR(ctx->GetAttr("num_slots", &c->num_slots));
  if (c->num_slots < 0) return InvalidArgument("num_slots must be >= 0, got ", c->num_slots);
  TF_RETURN_IF_ERROR(CheckRowBytes(c->name, c->dim, c->num_slots));
  TF_RETURN_IF_ERROR(ctx->GetAttr("slot_init", &c->slot_init));
  if (c->slot_init.empty()) c->slot_init.assign(c->num_slots, 0.0f);
  if (static_cast<int64_t>(c->slot_init.size()) != c->num_slots) {
    return InvalidArgument("slot_init must have num_slots=", c->num_slots, " values, got ",
                           c->slot_init.size());
  }
  std::string init;
  TF_RETURN_IF_ERROR(ctx->GetAttr("initializer", &init));
  if (!ParseInitKind(init, &c->initializer.kind)) {
    return InvalidArgument("initializer must be one of zeros, constant, uniform, normal, "
                           "truncated_normal; got '", init, "'");
  }
  TF_RETURN_IF_ERROR(ctx->GetAttr("init_a", &c->initializer.a));
  TF_RETURN_IF_ERROR(ctx->GetAttr("init_b", &c->initializer.b));
  int64_t seed;
  TF_RETURN_IF_ERROR(ctx->GetAttr("seed", &seed));
  c->initializer.seed_mix = KeyStream::SeedMix(static_cast<uint64_t>(seed));
  TF_RETURN_IF_ERROR(ctx->GetAttr("default_value", &c->default_value));
  try {  // dim floats: what a row's value takes, which fits in memory but may not be free
    if (c->default_value.empty()) c->default_value.assign(c->dim, 0.0f);
    if (c->default_value.size() == 1) c->default_value.assign(c->dim, c->default_value[0]);
  } catch (const std::bad_alloc&) {
    return ResourceExhausted("table '", c->name, "': out of memory for its default value of ",
                             c->dim, " floats (", c->dim * sizeof(float), " bytes)");
  }
  if (static_cast<int64_t>(c->default_value.size()) != c->dim) {
    return InvalidArgument("default_value must have 1 or dim=", c->dim, " values, got ",
                           c->default_value.size());
  }
  std::string admission;
  TF_RETURN_IF_ERROR(ctx->GetAttr("admission", &admission));
  TF_RETURN_IF_ERROR(ctx->GetAttr("min_count", &c->min_count));
  TF_RETURN_IF_ERROR(ctx->GetAttr("bloom_counters", &c->bloom_counters));
  TF_RETURN_IF_ERROR(ctx->GetAttr("bloom_hashes", &c->bloom_hashes));
  if (c->min_count < 0) return InvalidArgument("min_count must be >= 0, got ", c->min_count);
  if (admission == "none") {
    c->admission = Admission::kNone;
  } else if (admission == "counter") {
    c->admission = Admission::kCounter;
  } else if (admission == "bloom") {
    c->admission = Admission::kBloom;
    if (c->bloom_counters <= 0 || c->bloom_hashes <= 0) {
      return InvalidArgument("bloom admission needs bloom_counters > 0 and bloom_hashes > 0, got ",
                             c->bloom_counters, " and ", c->bloom_hashes);
    }
    if (c->min_count > CountingBloomFilter::kMaxCount) {
      return InvalidArgument("bloom admission counts up to ", CountingBloomFilter::kMaxCount,
                             "; min_count=", c->min_count, " is too large");
    }
    int64_t bytes = 0;
    const bool overflow = __builtin_mul_overflow(c->bloom_counters,
                                                 int64_t{sizeof(uint16_t)}, &bytes);
    TF_RETURN_IF_ERROR(CheckFitsInMemory(
        c->name,
        tensorflow::strings::StrCat("a counting Bloom filter of ", c->bloom_counters,
                                    " counters (2 bytes each)"),
        overflow, bytes));
  } else {
    return InvalidArgument("admission must be none, counter or bloom; got '", admission, "'");
  }
  return Status();
}

TensorShape KeysByDim(const Tensor& keys, int64_t dim) {
  TensorShape shape = keys.shape();
  shape.AddDim(dim);
  return shape;
}

// counts of a training lookup of n keys (what: whose, for errors): empty (1 per
// key) or n numbers >= 0.
Status CheckCounts(const std::string& what, const Tensor& counts, int64_t n) {
  if (counts.NumElements() != 0 && counts.NumElements() != n) {
    return InvalidArgument(what, ": counts must be empty or have one entry per key (", n,
                           "), got shape ", counts.shape().DebugString());
  }
  const auto c = counts.flat<int64_t>();
  for (int64_t i = 0; i < c.size(); ++i) {
    if (c(i) < 0) {
      return InvalidArgument(what, ": counts must be >= 0, got ", c(i), " at position ", i);
    }
  }
  return Status();
}

const int64_t* CountsOrNull(const Tensor& counts) {
  return counts.NumElements() == 0 ? nullptr : counts.flat<int64_t>().data();
}

// Creates a new table on every run and returns a ref-counting handle to it: the
// table lives exactly as long as some tensor holds the handle, and two Python
// objects (or a model and its reloaded SavedModel) never share one by name.
class KvTableOp : public OpKernel {
 public:
  explicit KvTableOp(OpKernelConstruction* ctx) : OpKernel(ctx) {
    OP_REQUIRES_OK(ctx, ctx->GetAttr("key_dtype", &key_dtype_));
    OP_REQUIRES_OK(ctx, ParseConfig(ctx, &config_));
  }

  void Compute(OpKernelContext* ctx) override {
    KvTableBase* table;
    OP_REQUIRES_OK(ctx, CreateKvTable(key_dtype_, config_, &table));
    Tensor* out;
    OP_REQUIRES_OK(ctx, ctx->allocate_output(0, TensorShape({}), &out));
    out->scalar<ResourceHandle>()() =
        ResourceHandle::MakeRefCountingHandle<KvTableBase>(table, ctx->device()->name());
  }

 private:
  DataType key_dtype_;
  TableConfig config_;
};

class KvFindOp : public TableKernel {
 public:
  using TableKernel::TableKernel;
  void ComputeWithTable(OpKernelContext* ctx, KvTableBase* table) override {
    const Tensor& keys = ctx->input(1);
    OP_REQUIRES_OK(ctx, CheckKeys(*table, keys));
    Tensor* values;
    OP_REQUIRES_OK(ctx,
                   ctx->allocate_output(0, KeysByDim(keys, table->config().dim), &values));
    table->Find(ctx, keys, values->flat<float>().data());
  }
};

class KvFindOrInsertOp : public TableKernel {
 public:
  using TableKernel::TableKernel;
  void ComputeWithTable(OpKernelContext* ctx, KvTableBase* table) override {
    const Tensor& keys = ctx->input(1);
    const Tensor& counts = ctx->input(2);
    OP_REQUIRES_OK(ctx, CheckKeys(*table, keys));
    OP_REQUIRES_OK(ctx, CheckCounts(tensorflow::strings::StrCat("table '", table->config().name,
                                                                "'"),
                                    counts, keys.NumElements()));
    const int64_t* c = CountsOrNull(counts);
    int64_t step;
    OP_REQUIRES_OK(ctx, ReadStep(ctx, 3, "global_step", &step));
    Tensor *values, *admitted;
    OP_REQUIRES_OK(ctx,
                   ctx->allocate_output(0, KeysByDim(keys, table->config().dim), &values));
    OP_REQUIRES_OK(ctx, ctx->allocate_output(1, keys.shape(), &admitted));
    OP_REQUIRES_OK(ctx, table->FindOrInsert(ctx, keys, c, step, values->flat<float>().data(),
                                            admitted->flat<bool>().data()));
  }
};

class KvGroupFindOrInsertOp : public OpKernel {
 public:
  explicit KvGroupFindOrInsertOp(OpKernelConstruction* ctx) : OpKernel(ctx) {
    std::vector<std::string> combiners;
    OP_REQUIRES_OK(ctx, ctx->GetAttr("combiners", &combiners));
    OP_REQUIRES_OK(ctx, ctx->GetAttr("max_lengths", &max_lengths_));
    for (const std::string& name : combiners) {
      Pooling mode;
      OP_REQUIRES(ctx, ParsePooling(name, &mode),
                  InvalidArgument("combiners: each must be none, sum, mean, sqrtn or "
                                  "sequence, got '", name, "'"));
      modes_.push_back(mode);
    }
  }

  void Compute(OpKernelContext* ctx) override {
    TableGroup group;
    OP_REQUIRES_OK(ctx, group.Open(ctx, "tables"));
    const int n = group.size();
    OP_REQUIRES(ctx, (modes_.empty() || static_cast<int>(modes_.size()) == n) &&
                         (max_lengths_.empty() || static_cast<int>(max_lengths_.size()) == n),
                InvalidArgument("combiners and max_lengths need ", n, " entries or none, got ",
                                modes_.size(), " and ", max_lengths_.size()));
    tensorflow::OpInputList ids, splits, weights, counts;
    OP_REQUIRES_OK(ctx, ctx->input_list("ids", &ids));
    OP_REQUIRES_OK(ctx, ctx->input_list("row_splits", &splits));
    OP_REQUIRES_OK(ctx, ctx->input_list("weights", &weights));
    OP_REQUIRES_OK(ctx, ctx->input_list("counts", &counts));
    std::vector<PoolingSpec> pooling(n);
    for (int i = 0; i < n; ++i) {
      OP_REQUIRES_OK(ctx, CheckKeys(group[i], ids[i]));
      const std::string what = tensorflow::strings::StrCat("ids[", i, "] (table '",
                                                           group[i].config().name, "')");
      OP_REQUIRES(ctx, ids[i].dims() == 1,
                  InvalidArgument(what, " must be a vector, got shape ",
                                  ids[i].shape().DebugString()));
      OP_REQUIRES_OK(ctx, PoolingSpec::Make(what, modes_.empty() ? Pooling::kNone : modes_[i],
                                            splits[i], weights[i], ids[i].NumElements(),
                                            max_lengths_.empty() ? -1 : max_lengths_[i],
                                            &pooling[i]));
      OP_REQUIRES_OK(ctx, CheckCounts(what, counts[i], ids[i].NumElements()));
    }
    int start, stop;
    OP_REQUIRES_OK(ctx, ctx->op_kernel().InputRange("global_steps", &start, &stop));
    std::vector<int64_t> steps(n);
    for (int i = 0; i < n; ++i) {
      OP_REQUIRES_OK(ctx, ReadStep(ctx, start + i, "global_steps", &steps[i]));
    }
    tensorflow::OpOutputList rows, unique, index;
    OP_REQUIRES_OK(ctx, ctx->output_list("rows", &rows));
    OP_REQUIRES_OK(ctx, ctx->output_list("unique_keys", &unique));
    OP_REQUIRES_OK(ctx, ctx->output_list("index", &index));
    // Each id's row: the output itself, or for a pooled feature a temporary it pools from.
    std::vector<Tensor*> row_out(n), index_out(n);
    std::vector<Tensor> id_rows(n);
    for (int i = 0; i < n; ++i) {
      const int64_t dim = group[i].config().dim;
      if (pooling[i].mode == Pooling::kNone) {
        OP_REQUIRES_OK(ctx, rows.allocate(i, KeysByDim(ids[i], dim), &row_out[i]));
      } else {
        Tensor* pooled;
        OP_REQUIRES_OK(ctx, rows.allocate(i, pooling[i].Shape(dim), &pooled));
        OP_REQUIRES_OK(ctx, ctx->allocate_temp(tensorflow::DT_FLOAT,
                                               KeysByDim(ids[i], dim), &id_rows[i]));
        row_out[i] = &id_rows[i];
      }
      OP_REQUIRES_OK(ctx, index.allocate(i, ids[i].shape(), &index_out[i]));
    }
    tensorflow::mutex allocation;  // outputs are allocated one at a time
    OP_REQUIRES_OK(ctx, group.Run(ctx, [&](int i, const CpuWorkers& workers) {
      TF_RETURN_IF_ERROR(group[i].FindOrInsertUnique(
          workers, ids[i], CountsOrNull(counts[i]), steps[i], row_out[i]->flat<float>().data(),
          index_out[i]->flat<int64_t>().data(), [&](int64_t count, Tensor** out) {
            tensorflow::mutex_lock lock(allocation);
            return unique.allocate(i, TensorShape({count}), out);
          }));
      if (pooling[i].mode != Pooling::kNone) {
        pooling[i].Pool(id_rows[i].flat<float>().data(), group[i].config().dim, 0,
                        pooling[i].examples, rows[i]->flat<float>().data());
      }
      return Status();
    }));
  }

 private:
  std::vector<Pooling> modes_;
  std::vector<int64_t> max_lengths_;
};

// The gradient of the rows of a pooled feature's ids from its pooled output's gradient.
class KvPoolingGradOp : public OpKernel {
 public:
  explicit KvPoolingGradOp(OpKernelConstruction* ctx) : OpKernel(ctx) {
    std::string combiner;
    OP_REQUIRES_OK(ctx, ctx->GetAttr("combiner", &combiner));
    OP_REQUIRES(ctx, ParsePooling(combiner, &mode_) && mode_ != Pooling::kNone,
                InvalidArgument("combiner must be sum, mean, sqrtn or sequence, got '",
                                combiner, "'"));
  }

  void Compute(OpKernelContext* ctx) override {
    const Tensor& grad = ctx->input(0);
    const Tensor& splits = ctx->input(1);
    const int64_t ids = splits.NumElements() > 0 ? splits.flat<int64_t>()(splits.NumElements() - 1)
                                                 : 0;
    const int rank = mode_ == Pooling::kSequence ? 3 : 2;
    OP_REQUIRES(ctx, grad.dims() == rank,
                InvalidArgument("grad must have rank ", rank, ", got shape ",
                                grad.shape().DebugString()));
    const int64_t dim = grad.dim_size(rank - 1);
    PoolingSpec spec;
    OP_REQUIRES_OK(ctx, PoolingSpec::Make("pooling gradient", mode_, splits, ctx->input(2), ids,
                                          rank == 3 ? grad.dim_size(1) : -1, &spec));
    OP_REQUIRES(ctx, grad.shape() == spec.Shape(dim),
                InvalidArgument("grad must have shape ", spec.Shape(dim).DebugString(),
                                ", got ", grad.shape().DebugString()));
    Tensor* out;
    OP_REQUIRES_OK(ctx, ctx->allocate_output(0, TensorShape({ids, dim}), &out));
    const CpuWorkers& workers = Workers(ctx);
    const float* g = grad.flat<float>().data();
    float* o = out->flat<float>().data();
    workers.workers->ParallelFor(
        spec.examples, ids / std::max<int64_t>(spec.examples, 1) * dim * 4 + 1,
        [&](int64_t lo, int64_t hi) { spec.Gradient(g, dim, lo, hi, o); });
  }

 private:
  Pooling mode_;
};

class KvUpdateOp : public TableKernel {
 public:
  using TableKernel::TableKernel;
  void ComputeWithTable(OpKernelContext* ctx, KvTableBase* table) override {
    const Tensor& keys = ctx->input(1);
    const Tensor& values = ctx->input(2);
    const Tensor& slots = ctx->input(3);
    OP_REQUIRES_OK(ctx, CheckKeys(*table, keys));
    const int64_t n = keys.NumElements();
    const int64_t dim = table->config().dim;
    const int64_t num_slots = table->config().num_slots;
    OP_REQUIRES(ctx, values.shape() == KeysByDim(keys, dim),
                InvalidArgument("values must have shape keys.shape + [", dim, "], got ",
                                values.shape().DebugString(), " for keys of shape ",
                                keys.shape().DebugString()));
    const bool with_slots = slots.NumElements() > 0;
    TensorShape slots_shape = keys.shape();
    slots_shape.AddDim(num_slots);
    slots_shape.AddDim(dim);
    OP_REQUIRES(ctx, !with_slots || slots.shape() == slots_shape,
                InvalidArgument("slots must be empty or have shape keys.shape + [", num_slots,
                                ", ", dim, "], got ", slots.shape().DebugString()));
    int64_t step;
    OP_REQUIRES_OK(ctx, ReadStep(ctx, 4, "global_step", &step));
    const float* v = values.flat<float>().data();
    const float* s = slots.flat<float>().data();
    const auto write = [&](int64_t i, const RowView& row) {
      std::memcpy(row.value, v + i * dim, sizeof(float) * dim);
      if (with_slots) {
        std::memcpy(row.slots, s + i * num_slots * dim, sizeof(float) * num_slots * dim);
      }
      return true;
    };
    const int64_t updated = table->ForEachRow(Workers(ctx), keys, step, write);
    Tensor* out;
    OP_REQUIRES_OK(ctx, ctx->allocate_output(0, TensorShape({}), &out));
    out->scalar<int64_t>()() = updated;
  }
};

class KvExportOp : public TableKernel {
 public:
  using TableKernel::TableKernel;
  void ComputeWithTable(OpKernelContext* ctx, KvTableBase* table) override {
    OP_REQUIRES_OK(ctx, CheckKeyOutput(*table, output_type(0)));
    OP_REQUIRES_OK(ctx, table->Export(ctx));
  }
};

class KvImportOp : public TableKernel {
 public:
  using TableKernel::TableKernel;
  void ComputeWithTable(OpKernelContext* ctx, KvTableBase* table) override {
    OP_REQUIRES(ctx, table->key_dtype() == ctx->input(1).dtype(),
                InvalidArgument("cannot import ", DataTypeString(ctx->input(1).dtype()),
                                " keys into a table of ", DataTypeString(table->key_dtype()),
                                " keys"));
    OP_REQUIRES_OK(ctx, table->Import(ctx, 1));
  }
};

class KvRemoveOp : public TableKernel {
 public:
  explicit KvRemoveOp(tensorflow::OpKernelConstruction* ctx) : TableKernel(ctx) {
    OP_REQUIRES_OK(ctx, ctx->GetAttr("log", &log_));
  }
  void ComputeWithTable(OpKernelContext* ctx, KvTableBase* table) override {
    const Tensor& keys = ctx->input(1);
    OP_REQUIRES_OK(ctx, CheckKeys(*table, keys));
    Tensor* out;
    OP_REQUIRES_OK(ctx, ctx->allocate_output(0, TensorShape({}), &out));
    out->scalar<int64_t>()() = table->Remove(ctx, keys, log_);
  }

 private:
  bool log_ = true;
};

class KvEvictOp : public TableKernel {
 public:
  using TableKernel::TableKernel;
  void ComputeWithTable(OpKernelContext* ctx, KvTableBase* table) override {
    int64_t step, max_staleness, min_freq;
    OP_REQUIRES_OK(ctx, ReadStep(ctx, 1, "global_step", &step));
    // -1: no staleness eviction; 0: no frequency eviction
    OP_REQUIRES_OK(ctx, ReadInt64(ctx, 2, "max_staleness", -1, &max_staleness));
    OP_REQUIRES_OK(ctx, ReadInt64(ctx, 3, "min_freq", 0, &min_freq));
    Tensor* out;
    OP_REQUIRES_OK(ctx, ctx->allocate_output(0, TensorShape({}), &out));
    out->scalar<int64_t>()() = table->Evict(ctx, step, max_staleness, min_freq);
  }
};

class KvStatsOp : public TableKernel {
 public:
  using TableKernel::TableKernel;
  void ComputeWithTable(OpKernelContext* ctx, KvTableBase* table) override {
    Tensor* out;
    OP_REQUIRES_OK(ctx, ctx->allocate_output(0, TensorShape({4}), &out));
    auto s = out->flat<int64_t>();
    int64_t admitted, pending, bytes;
    table->Stats(&admitted, &pending, &bytes);
    s(0) = admitted;
    s(1) = pending;
    s(2) = bytes;
    s(3) = table->nonfinite_skipped();
  }
};

class KvSetSlotsOp : public TableKernel {
 public:
  using TableKernel::TableKernel;
  void ComputeWithTable(OpKernelContext* ctx, KvTableBase* table) override {
    const Tensor& init = ctx->input(1);
    OP_REQUIRES(ctx, init.dims() == 1,
                InvalidArgument("slot_init must be a vector, got shape ",
                                init.shape().DebugString()));
    auto v = init.flat<float>();
    OP_REQUIRES_OK(ctx, CheckRowBytes(table->config().name, table->config().dim, v.size()));
    OP_REQUIRES_OK(ctx, table->SetSlots(std::vector<float>(v.data(), v.data() + v.size())));
  }
};

class KvSetCountingOp : public TableKernel {
 public:
  using TableKernel::TableKernel;
  void ComputeWithTable(OpKernelContext* ctx, KvTableBase* table) override {
    const Tensor& on = ctx->input(1);
    OP_REQUIRES(ctx, TensorShapeUtils::IsScalar(on.shape()),
                InvalidArgument("counting must be a scalar, got shape ",
                                on.shape().DebugString()));
    table->SetCounting(on.scalar<bool>()());
  }
};

#define DRL_CPU_KERNEL(NAME, CLASS) \
  REGISTER_KERNEL_BUILDER(Name(NAME).Device(tensorflow::DEVICE_CPU), CLASS)

DRL_CPU_KERNEL("DrlKvTable", KvTableOp);
DRL_CPU_KERNEL("DrlKvFind", KvFindOp);
DRL_CPU_KERNEL("DrlKvFindOrInsert", KvFindOrInsertOp);
DRL_CPU_KERNEL("DrlKvGroupFindOrInsert", KvGroupFindOrInsertOp);
DRL_CPU_KERNEL("DrlKvPoolingGrad", KvPoolingGradOp);
DRL_CPU_KERNEL("DrlKvUpdate", KvUpdateOp);
DRL_CPU_KERNEL("DrlKvExport", KvExportOp);
DRL_CPU_KERNEL("DrlKvImport", KvImportOp);
DRL_CPU_KERNEL("DrlKvRemove", KvRemoveOp);
DRL_CPU_KERNEL("DrlKvEvict", KvEvictOp);
DRL_CPU_KERNEL("DrlKvSetSlots", KvSetSlotsOp);
DRL_CPU_KERNEL("DrlKvStats", KvStatsOp);
DRL_CPU_KERNEL("DrlKvSetCounting", KvSetCountingOp);

}  // namespace

}  // namespace deeprec_lite
