// Op definitions of the fused sparse optimizers on the KV table. Kernels are in
// kv_optimizer_kernels.cc; the Python front end is deeprec_lite/sparse_optimizers.py.
//
// Every op takes the table, keys [*S] and grads [*S, dim], hyperparameters as
// float32 scalar tensors (so schedules work) and global_step (int64 scalar). It
// updates the value and slot rows of each admitted key present in the table,
// stamps version = global_step (>= 0), and returns the number of rows updated.
// Keys that are absent or not admitted are skipped. The ops apply one update per
// occurrence: callers sum the gradients of duplicate keys first (the Python front
// end does), so that each key gets exactly one update per step.
//
// A gradient row holding NaN or Inf never reaches the table. With the attr
// nonfinite_gradients = 'error' (the default) the op fails with InvalidArgument
// naming the table and the number of such rows, and nothing of the batch is
// applied; with 'skip' those rows are left out (their keys' value, slots and
// version do not change), the other rows are applied, and the table counts them
// (DrlKvStats). Either way every row of the batch is checked, whether or not its
// key has a row.
#include "tensorflow/core/framework/common_shape_fns.h"
#include "tensorflow/core/framework/op.h"
#include "tensorflow/core/framework/shape_inference.h"

namespace deeprec_lite {

REGISTER_OP("DrlKvApplySgd")
    .Input("table: resource")
    .Input("keys: Tkey")
    .Input("grads: float")
    .Input("learning_rate: float")
    .Input("global_step: int64")
    .Output("updated: int64")
    .Attr("Tkey: {int64, string}")
    .Attr("nonfinite_gradients: {'error', 'skip'} = 'error'")
    .SetIsStateful()
    .SetShapeFn(tensorflow::shape_inference::ScalarShape)
    .Doc("SGD on a KV table with no slots: w -= lr * g.");

REGISTER_OP("DrlKvApplyAdagrad")
    .Input("table: resource")
    .Input("keys: Tkey")
    .Input("grads: float")
    .Input("learning_rate: float")
    .Input("epsilon: float")
    .Input("global_step: int64")
    .Output("updated: int64")
    .Attr("Tkey: {int64, string}")
    .Attr("nonfinite_gradients: {'error', 'skip'} = 'error'")
    .SetIsStateful()
    .SetShapeFn(tensorflow::shape_inference::ScalarShape)
    .Doc("Adagrad (tf_keras convention) on a table with 1 slot 'accumulator': "
         "acc += g^2; w -= lr * g / sqrt(acc + epsilon).");

REGISTER_OP("DrlKvApplyAdam")
    .Input("table: resource")
    .Input("keys: Tkey")
    .Input("grads: float")
    .Input("learning_rate: float")
    .Input("beta_1: float")
    .Input("beta_2: float")
    .Input("beta_1_power: float")
    .Input("beta_2_power: float")
    .Input("epsilon: float")
    .Input("global_step: int64")
    .Output("updated: int64")
    .Attr("Tkey: {int64, string}")
    .Attr("nonfinite_gradients: {'error', 'skip'} = 'error'")
    .SetIsStateful()
    .SetShapeFn(tensorflow::shape_inference::ScalarShape)
    .Doc("Lazy Adam (tf_keras convention) on a table with 2 slots 'm', 'v': "
         "m += (g - m)(1 - b1); v += (g^2 - v)(1 - b2); "
         "w -= lr sqrt(1 - b2^t) / (1 - b1^t) * m / (sqrt(v) + epsilon), with "
         "beta_1_power = b1^t, beta_2_power = b2^t.");

REGISTER_OP("DrlKvApplyFtrl")
    .Input("table: resource")
    .Input("keys: Tkey")
    .Input("grads: float")
    .Input("learning_rate: float")
    .Input("learning_rate_power: float")
    .Input("l1: float")
    .Input("l2: float")
    .Input("l2_shrinkage: float")
    .Input("beta: float")
    .Input("global_step: int64")
    .Output("updated: int64")
    .Attr("Tkey: {int64, string}")
    .Attr("nonfinite_gradients: {'error', 'skip'} = 'error'")
    .SetIsStateful()
    .SetShapeFn(tensorflow::shape_inference::ScalarShape)
    .Doc("FTRL-proximal (tf_keras convention) on a table with 2 slots 'z' (linear), "
         "'n' (accumulator), per coordinate.");

REGISTER_OP("DrlKvApplyGroupFtrl")
    .Input("table: resource")
    .Input("keys: Tkey")
    .Input("grads: float")
    .Input("alpha: float")
    .Input("beta: float")
    .Input("lambda1: float")
    .Input("lambda2: float")
    .Input("global_step: int64")
    .Output("updated: int64")
    .Attr("Tkey: {int64, string}")
    .Attr("nonfinite_gradients: {'error', 'skip'} = 'error'")
    .SetIsStateful()
    .SetShapeFn(tensorflow::shape_inference::ScalarShape)
    .Doc("Group-lasso FTRL (xDeepInt G-FTRL) on a table with 2 slots 'z', 'n'; the group "
         "is one embedding row, which becomes exactly zero when ||z_row|| <= lambda1 sqrt(dim).");

REGISTER_OP("DrlCheckFiniteGradients")
    .Input("grads: float")
    .Output("checked: float")
    .Attr("table_name: string")
    .SetShapeFn(tensorflow::shape_inference::UnchangedShape)
    .Doc("grads [..., dim] unchanged, or InvalidArgument naming table_name and the number of "
         "rows holding NaN or Inf (the error of the apply ops with nonfinite_gradients = "
         "'error'). A partitioned table checks its whole batch with it before any shard is "
         "updated.");

}  // namespace deeprec_lite
