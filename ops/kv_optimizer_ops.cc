// Op definitions of the fused sparse optimizers on the KV table. Kernels are in
// kv_optimizer_kernels.cc; the Python front end is deeprec_lite/sparse_optimizers.py.
//
// Every op updates N tables (a table group) with one set of hyperparameters. It
// takes the tables, for each its keys and gradients, hyperparameters as float32
// scalar tensors (so schedules work) and global_step (int64 scalar). Without
// index (M = 0), keys[i] is [*S] and grads[i] [*S, dim]: one update per
// occurrence, so callers give each key once. With index (M = N), keys[i] are the
// distinct keys [u] of a feature, grads[i] [n, dim] the gradients of its n ids
// and index[i] [n] each id's position in keys[i]: the op sums the gradients of
// each key (float32, in id order) and updates it once. It updates the value and
// slot rows of each admitted key present in its table, stamps version =
// global_step (>= 0), and returns per table the number of rows updated. Keys
// that are absent or not admitted are skipped. Distinct tables are updated in
// parallel; a table named twice is updated in list order.
//
// A gradient row (summed, with index) holding NaN or Inf never reaches a table.
// With the attr nonfinite_gradients = 'error' (the default) the op fails with
// InvalidArgument naming the first such table and its number of such rows, and
// nothing of the batch is applied to any table; with 'skip' those rows are left
// out (their keys' value, slots and version do not change), the other rows are
// applied, and each table counts its own (DrlKvStats). Either way every row of
// the batch is checked, whether or not its key has a row.
#include "tensorflow/core/framework/common_shape_fns.h"
#include "tensorflow/core/framework/op.h"
#include "tensorflow/core/framework/shape_inference.h"

namespace deeprec_lite {

namespace {

tensorflow::Status ScalarPerTable(tensorflow::shape_inference::InferenceContext* c) {
  for (int i = 0; i < c->num_outputs(); ++i) c->set_output(i, c->Scalar());
  return tensorflow::Status();
}

}  // namespace

REGISTER_OP("DrlKvApplySgd")
    .Input("tables: N * resource")
    .Input("keys: N * Tkey")
    .Input("index: M * int64")
    .Input("grads: N * float")
    .Input("learning_rate: float")
    .Input("global_step: int64")
    .Output("updated: N * int64")
    .Attr("N: int >= 1")
    .Attr("M: int >= 0")
    .Attr("Tkey: {int64, string}")
    .Attr("nonfinite_gradients: {'error', 'skip'} = 'error'")
    .SetIsStateful()
    .SetShapeFn(ScalarPerTable)
    .Doc("SGD on a KV table with no slots: w -= lr * g.");

REGISTER_OP("DrlKvApplyAdagrad")
    .Input("tables: N * resource")
    .Input("keys: N * Tkey")
    .Input("index: M * int64")
    .Input("grads: N * float")
    .Input("learning_rate: float")
    .Input("epsilon: float")
    .Input("global_step: int64")
    .Output("updated: N * int64")
    .Attr("N: int >= 1")
    .Attr("M: int >= 0")
    .Attr("Tkey: {int64, string}")
    .Attr("nonfinite_gradients: {'error', 'skip'} = 'error'")
    .SetIsStateful()
    .SetShapeFn(ScalarPerTable)
    .Doc("Adagrad (tf_keras convention) on a table with 1 slot 'accumulator': "
         "acc += g^2; w -= lr * g / sqrt(acc + epsilon).");

REGISTER_OP("DrlKvApplyAdam")
    .Input("tables: N * resource")
    .Input("keys: N * Tkey")
    .Input("index: M * int64")
    .Input("grads: N * float")
    .Input("learning_rate: float")
    .Input("beta_1: float")
    .Input("beta_2: float")
    .Input("beta_1_power: float")
    .Input("beta_2_power: float")
    .Input("epsilon: float")
    .Input("global_step: int64")
    .Output("updated: N * int64")
    .Attr("N: int >= 1")
    .Attr("M: int >= 0")
    .Attr("Tkey: {int64, string}")
    .Attr("nonfinite_gradients: {'error', 'skip'} = 'error'")
    .SetIsStateful()
    .SetShapeFn(ScalarPerTable)
    .Doc("Lazy Adam (tf_keras convention) on a table with 2 slots 'm', 'v': "
         "m += (g - m)(1 - b1); v += (g^2 - v)(1 - b2); "
         "w -= lr sqrt(1 - b2^t) / (1 - b1^t) * m / (sqrt(v) + epsilon), with "
         "beta_1_power = b1^t, beta_2_power = b2^t.");

REGISTER_OP("DrlKvApplyFtrl")
    .Input("tables: N * resource")
    .Input("keys: N * Tkey")
    .Input("index: M * int64")
    .Input("grads: N * float")
    .Input("learning_rate: float")
    .Input("learning_rate_power: float")
    .Input("l1: float")
    .Input("l2: float")
    .Input("l2_shrinkage: float")
    .Input("beta: float")
    .Input("global_step: int64")
    .Output("updated: N * int64")
    .Attr("N: int >= 1")
    .Attr("M: int >= 0")
    .Attr("Tkey: {int64, string}")
    .Attr("nonfinite_gradients: {'error', 'skip'} = 'error'")
    .SetIsStateful()
    .SetShapeFn(ScalarPerTable)
    .Doc("FTRL-proximal (tf_keras convention) on a table with 2 slots 'z' (linear), "
         "'n' (accumulator), per coordinate.");

REGISTER_OP("DrlKvApplyGroupFtrl")
    .Input("tables: N * resource")
    .Input("keys: N * Tkey")
    .Input("index: M * int64")
    .Input("grads: N * float")
    .Input("alpha: float")
    .Input("beta: float")
    .Input("lambda1: float")
    .Input("lambda2: float")
    .Input("global_step: int64")
    .Output("updated: N * int64")
    .Attr("N: int >= 1")
    .Attr("M: int >= 0")
    .Attr("Tkey: {int64, string}")
    .Attr("nonfinite_gradients: {'error', 'skip'} = 'error'")
    .SetIsStateful()
    .SetShapeFn(ScalarPerTable)
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
