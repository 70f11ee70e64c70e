// DrlKvShardIndex: which shard of a partitioned KV variable owns each key.
// DrlKvGroupRoute: the distinct ids of a step's features on partitioned tables (or
// on a parameter server: one shard), routed to their shards in one op, so that each
// distinct id and its row travel once.
//
// The shard is a stable function of the key alone (never of the TensorFlow
// version, the machine or the table's size), so records can be routed again on
// restore into any number of shards (PartitionOf in key_hash.h).
#include <cstdint>
#include <vector>

#include "distinct_keys.h"
#include "key_hash.h"
#include "kv_table.h"
#include "parallel_tasks.h"
#include "tensorflow/core/framework/common_shape_fns.h"
#include "tensorflow/core/framework/op.h"
#include "tensorflow/core/framework/op_kernel.h"

namespace deeprec_lite {

using tensorflow::OpKernel;
using tensorflow::OpKernelConstruction;
using tensorflow::OpKernelContext;
using tensorflow::Tensor;
using tensorflow::TensorShape;
using tensorflow::errors::InvalidArgument;
using tensorflow::shape_inference::InferenceContext;

REGISTER_OP("DrlKvShardIndex")
    .Input("keys: Tkey")
    .Output("shards: int32")
    .Attr("Tkey: {int64, string}")
    .Attr("num_shards: int >= 1")
    .SetShapeFn(tensorflow::shape_inference::UnchangedShape)
    .Doc("The shard in [0, num_shards) of every key: a stable hash of the key.");

REGISTER_OP("DrlKvGroupRoute")
    .Input("ids: N * Tkey")
    .Output("keys: M * Tkey")
    .Output("counts: M * int64")
    .Output("index: N * int64")
    .Attr("N: int >= 1")
    .Attr("M: int >= 1")
    .Attr("Tkey: {int64, string}")
    .Attr("num_shards: list(int)")
    .SetShapeFn([](InferenceContext* c) {
      int n, m;
      TF_RETURN_IF_ERROR(c->GetAttr("N", &n));
      TF_RETURN_IF_ERROR(c->GetAttr("M", &m));
      for (int j = 0; j < 2 * m; ++j) c->set_output(j, c->Vector(InferenceContext::kUnknownDim));
      for (int i = 0; i < n; ++i) {
        tensorflow::shape_inference::ShapeHandle ids;
        TF_RETURN_IF_ERROR(c->WithRank(c->input(i), 1, &ids));
        c->set_output(2 * m + i, ids);
      }
      return tensorflow::Status();
    })
    .Doc("Routes the ids [n_i] of N features to the shards of their partitioned tables "
         "(num_shards[i] shards for feature i; M: their sum). keys[j] and counts[j], for "
         "shard s of feature i at j = num_shards[0] + ... + num_shards[i - 1] + s: the "
         "feature's distinct ids that the shard owns (DrlKvShardIndex), in order of first "
         "occurrence, and how often each occurs. index[i] [n_i]: each id's position among "
         "feature i's distinct ids in shard order (its keys concatenated). Features are "
         "routed in parallel.");

namespace {

template <typename K>
class ShardIndexOp : public OpKernel {
 public:
  explicit ShardIndexOp(OpKernelConstruction* ctx) : OpKernel(ctx) {
    OP_REQUIRES_OK(ctx, ctx->GetAttr("num_shards", &num_shards_));
  }

  void Compute(OpKernelContext* ctx) override {
    const Tensor& keys = ctx->input(0);
    Tensor* shards = nullptr;
    OP_REQUIRES_OK(ctx, ctx->allocate_output(0, keys.shape(), &shards));
    const auto in = keys.flat<K>();
    auto out = shards->flat<int32_t>();
    for (int64_t i = 0; i < in.size(); ++i) out(i) = PartitionOf(HashKey(in(i)), num_shards_);
  }

 private:
  int num_shards_ = 1;
};

REGISTER_KERNEL_BUILDER(Name("DrlKvShardIndex")
                            .Device(tensorflow::DEVICE_CPU)
                            .TypeConstraint<int64_t>("Tkey"),
                        ShardIndexOp<int64_t>);
REGISTER_KERNEL_BUILDER(Name("DrlKvShardIndex")
                            .Device(tensorflow::DEVICE_CPU)
                            .TypeConstraint<tensorflow::tstring>("Tkey"),
                        ShardIndexOp<tensorflow::tstring>);

template <typename K>
class GroupRouteOp : public OpKernel {
 public:
  explicit GroupRouteOp(OpKernelConstruction* ctx) : OpKernel(ctx) {
    int n, m;
    OP_REQUIRES_OK(ctx, ctx->GetAttr("N", &n));
    OP_REQUIRES_OK(ctx, ctx->GetAttr("M", &m));
    OP_REQUIRES_OK(ctx, ctx->GetAttr("num_shards", &num_shards_));
    OP_REQUIRES(ctx, static_cast<int>(num_shards_.size()) == n,
                InvalidArgument("num_shards needs one entry per feature (", n, "), got ",
                                num_shards_.size()));
    first_output_.push_back(0);
    for (int64_t s : num_shards_) {
      OP_REQUIRES(ctx, s >= 1, InvalidArgument("num_shards must be >= 1, got ", s));
      first_output_.push_back(first_output_.back() + s);
    }
    OP_REQUIRES(ctx, first_output_.back() == m,
                InvalidArgument("M must be the sum of num_shards (", first_output_.back(),
                                "), got ", m));
  }

  void Compute(OpKernelContext* ctx) override {
    tensorflow::OpInputList ids;
    OP_REQUIRES_OK(ctx, ctx->input_list("ids", &ids));
    for (int i = 0; i < ids.size(); ++i) {
      OP_REQUIRES(ctx, ids[i].dims() == 1,
                  InvalidArgument("ids[", i, "] must be a vector, got shape ",
                                  ids[i].shape().DebugString()));
    }
    tensorflow::OpOutputList keys, counts, index;
    OP_REQUIRES_OK(ctx, ctx->output_list("keys", &keys));
    OP_REQUIRES_OK(ctx, ctx->output_list("counts", &counts));
    OP_REQUIRES_OK(ctx, ctx->output_list("index", &index));
    std::vector<tensorflow::Status> status(ids.size());
    tensorflow::mutex allocation;  // outputs are allocated one at a time
    ParallelTasks(Workers(ctx), ids.size(), [&](int64_t i) {
      status[i] = Route(ids[i], num_shards_[i], [&](int64_t s, int64_t size, K** k, int64_t** c) {
        tensorflow::mutex_lock lock(allocation);
        const int j = first_output_[i] + s;
        Tensor *kt, *ct;
        TF_RETURN_IF_ERROR(keys.allocate(j, TensorShape({size}), &kt));
        TF_RETURN_IF_ERROR(counts.allocate(j, TensorShape({size}), &ct));
        *k = kt->flat<K>().data();
        *c = ct->flat<int64_t>().data();
        return tensorflow::Status();
      }, [&](Tensor** out) {
        tensorflow::mutex_lock lock(allocation);
        return index.allocate(i, ids[i].shape(), out);
      });
    });
    for (const auto& st : status) OP_REQUIRES_OK(ctx, st);
  }

 private:
  // Routes one feature's ids: allocate_shard(s, size, &keys, &counts) gives the
  // outputs of shard s, allocate_index the index output.
  template <typename AllocateShard, typename AllocateIndex>
  static tensorflow::Status Route(const Tensor& ids, int64_t num_shards,
                                  const AllocateShard& allocate_shard,
                                  const AllocateIndex& allocate_index) {
    const K* k = ids.flat<K>().data();
    const int64_t n = ids.NumElements();
    DistinctKeys<K> distinct(k, n);
    std::vector<int32_t> distinct_of(n);
    for (int64_t i = 0; i < n; ++i) distinct_of[i] = distinct.Add(i, HashKey(k[i]), 1);
    std::vector<int32_t> shard(distinct.size());
    std::vector<int64_t> size(num_shards, 0), position(distinct.size());
    for (int64_t u = 0; u < distinct.size(); ++u) {
      shard[u] = PartitionOf(distinct.hashes[u], num_shards);
      position[u] = size[shard[u]]++;
    }
    std::vector<K*> shard_keys(num_shards);
    std::vector<int64_t*> shard_counts(num_shards);
    std::vector<int64_t> offset(num_shards, 0);
    for (int64_t s = 0; s < num_shards; ++s) {
      TF_RETURN_IF_ERROR(allocate_shard(s, size[s], &shard_keys[s], &shard_counts[s]));
      if (s > 0) offset[s] = offset[s - 1] + size[s - 1];
    }
    for (int64_t u = 0; u < distinct.size(); ++u) {
      shard_keys[shard[u]][position[u]] = k[distinct.first[u]];
      shard_counts[shard[u]][position[u]] = distinct.counts[u];
      position[u] += offset[shard[u]];
    }
    Tensor* index;
    TF_RETURN_IF_ERROR(allocate_index(&index));
    int64_t* out = index->flat<int64_t>().data();
    for (int64_t i = 0; i < n; ++i) out[i] = position[distinct_of[i]];
    return tensorflow::Status();
  }

  std::vector<int64_t> num_shards_;
  std::vector<int> first_output_;  // per feature: its first keys / counts output
};

REGISTER_KERNEL_BUILDER(Name("DrlKvGroupRoute")
                            .Device(tensorflow::DEVICE_CPU)
                            .TypeConstraint<int64_t>("Tkey"),
                        GroupRouteOp<int64_t>);
REGISTER_KERNEL_BUILDER(Name("DrlKvGroupRoute")
                            .Device(tensorflow::DEVICE_CPU)
                            .TypeConstraint<tensorflow::tstring>("Tkey"),
                        GroupRouteOp<tensorflow::tstring>);

}  // namespace

}  // namespace deeprec_lite
