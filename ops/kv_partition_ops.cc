// DrlKvShardIndex: which shard of a partitioned KV variable owns each key.
//
// The shard is a stable function of the key alone (never of the TensorFlow
// version, the machine or the table's size), so records can be routed again on
// restore into any number of shards (PartitionOf in key_hash.h).
#include <cstdint>

#include "key_hash.h"
#include "tensorflow/core/framework/common_shape_fns.h"
#include "tensorflow/core/framework/op.h"
#include "tensorflow/core/framework/op_kernel.h"

namespace deeprec_lite {

using tensorflow::OpKernel;
using tensorflow::OpKernelConstruction;
using tensorflow::OpKernelContext;
using tensorflow::Tensor;

REGISTER_OP("DrlKvShardIndex")
    .Input("keys: Tkey")
    .Output("shards: int32")
    .Attr("Tkey: {int64, string}")
    .Attr("num_shards: int >= 1")
    .SetShapeFn(tensorflow::shape_inference::UnchangedShape)
    .Doc("The shard in [0, num_shards) of every key: a stable hash of the key.");

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

}  // namespace

}  // namespace deeprec_lite
