// DrlKvShardIndex: which shard of a partitioned KV variable owns each key.
//
// The shard is a stable function of the key alone (never of the TensorFlow
// version, the machine or the table's size), so records can be routed again on
// restore into any number of shards. It re-mixes the key's table hash with a salt:
// the table's own hash index uses the low bits of the unsalted hash, so keys of
// one shard still spread over the whole index.
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

constexpr uint64_t kShardSalt = 0x6a09e667f3bcc909ULL;

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
    const unsigned __int128 n = static_cast<uint64_t>(num_shards_);
    for (int64_t i = 0; i < in.size(); ++i) {
      // Multiply-high maps the 64-bit hash onto [0, n) without the bias of a modulo.
      out(i) = static_cast<int32_t>((Mix64(HashKey(in(i)) ^ kShardSalt) * n) >> 64);
    }
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
