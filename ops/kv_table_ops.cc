// Op definitions of the KV table. Kernels are in kv_table_kernels.cc.
#include <string>
#include <vector>

#include "tensorflow/core/framework/common_shape_fns.h"
#include "tensorflow/core/framework/op.h"
#include "tensorflow/core/framework/shape_inference.h"

namespace deeprec_lite {

using tensorflow::Status;
using tensorflow::shape_inference::InferenceContext;
using tensorflow::shape_inference::ShapeHandle;

namespace {

// keys.shape + [dim], with dim unknown here (the Python wrapper sets it).
Status KeysByDim(InferenceContext* c) {
  ShapeHandle out;
  TF_RETURN_IF_ERROR(c->Concatenate(c->input(1), c->Vector(InferenceContext::kUnknownDim), &out));
  c->set_output(0, out);
  return Status();
}

}  // namespace

REGISTER_OP("DrlKvTable")
    .Output("table: resource")
    .Attr("key_dtype: {int64, string}")
    .Attr("table_name: string = ''")
    .Attr("dim: int")
    .Attr("num_slots: int = 0")
    .Attr("slot_init: list(float) = []")
    .Attr("initializer: string = 'truncated_normal'")
    .Attr("init_a: float = 0.0")
    .Attr("init_b: float = 1.0")
    .Attr("seed: int = 0")
    .Attr("default_value: list(float) = []")
    .Attr("admission: string = 'none'")
    .Attr("min_count: int = 0")
    .Attr("bloom_counters: int = 0")
    .Attr("bloom_hashes: int = 0")
    .SetIsStateful()
    .SetShapeFn(tensorflow::shape_inference::ScalarShape)
    .Doc("Creates a new KV embedding table; it lives as long as its ref-counting handle. "
         "table_name names it in errors. ResourceExhausted when a row (4 * dim * (1 + "
         "num_slots) bytes) or the Bloom filter (2 bytes per counter) exceeds the machine's "
         "physical memory, or cannot be allocated.");

REGISTER_OP("DrlKvFind")
    .Input("table: resource")
    .Input("keys: Tkey")
    .Output("values: float")
    .Attr("Tkey: {int64, string}")
    .SetIsStateful()
    .SetShapeFn(KeysByDim)
    .Doc("Inference lookup: never inserts or counts; missing or unadmitted keys get the default.");

REGISTER_OP("DrlKvFindOrInsert")
    .Input("table: resource")
    .Input("keys: Tkey")
    .Input("counts: int64")
    .Input("global_step: int64")
    .Output("values: float")
    .Output("admitted: bool")
    .Attr("Tkey: {int64, string}")
    .SetIsStateful()
    .SetShapeFn([](InferenceContext* c) {
      TF_RETURN_IF_ERROR(KeysByDim(c));
      c->set_output(1, c->input(1));
      return Status();
    })
    .Doc("Training lookup: counts freq (counts, or 1 per key when counts is empty), admits and "
         "creates keys with version = global_step (>= 0).");

REGISTER_OP("DrlKvGroupFindOrInsert")
    .Input("tables: N * resource")
    .Input("ids: N * Tkey")
    .Input("global_steps: N * int64")
    .Input("row_splits: N * int64")
    .Input("weights: N * float")
    .Input("counts: N * int64")
    .Output("rows: N * float")
    .Output("unique_keys: N * Tkey")
    .Output("index: N * int64")
    .Attr("N: int >= 1")
    .Attr("Tkey: {int64, string}")
    .Attr("combiners: list(string) = []")
    .Attr("max_lengths: list(int) = []")
    .SetIsStateful()
    .SetShapeFn([](InferenceContext* c) {
      int n;
      TF_RETURN_IF_ERROR(c->GetAttr("N", &n));
      std::vector<std::string> combiners;
      TF_RETURN_IF_ERROR(c->GetAttr("combiners", &combiners));
      for (int i = 0; i < n; ++i) {
        ShapeHandle ids;
        TF_RETURN_IF_ERROR(c->WithRank(c->input(n + i), 1, &ids));
        const std::string combiner = combiners.empty() ? "none" : combiners[i];
        ShapeHandle rows = ids;
        if (combiner != "none") rows = c->Vector(InferenceContext::kUnknownDim);
        if (combiner == "sequence") {
          TF_RETURN_IF_ERROR(
              c->Concatenate(rows, c->Vector(InferenceContext::kUnknownDim), &rows));
        }
        TF_RETURN_IF_ERROR(c->Concatenate(rows, c->Vector(InferenceContext::kUnknownDim), &rows));
        c->set_output(i, rows);
        c->set_output(n + i, c->Vector(InferenceContext::kUnknownDim));
        c->set_output(2 * n + i, ids);
      }
      return Status();
    })
    .Doc("Training lookup of the ids [n_i] of N features in one op, tables[i] for ids[i]: "
         "each distinct id of a feature is counted once with its number of occurrences "
         "(or with counts[i] [n_i], when not empty, the sum of its ids' counts), "
         "admitted and created (version = global_steps[i]) as by DrlKvFindOrInsert with "
         "counts. rows[i]: each id's value [n_i, dim_i], or with combiners[i] sum / mean / "
         "sqrtn the pooled rows [B_i, dim_i] of the examples that row_splits[i] [B_i + 1] "
         "cuts the ids into (weights[i] [n_i], or empty: 1), or with sequence each "
         "example's first max_lengths[i] rows (-1: the longest example's length) padded "
         "with zeros [B_i, L_i, dim_i]; row_splits[i] and weights[i] are empty for "
         "combiner none (the default). unique_keys[i]: the feature's distinct ids; "
         "index[i] [n_i]: each id's position in unique_keys[i]. Distinct tables run in "
         "parallel; a table named twice is looked up in list order.");

REGISTER_OP("DrlKvPoolingGrad")
    .Input("grad: float")
    .Input("row_splits: int64")
    .Input("weights: float")
    .Output("id_grads: float")
    .Attr("combiner: string")
    .SetShapeFn([](InferenceContext* c) {
      ShapeHandle grad = c->input(0);
      c->set_output(0, c->Matrix(c->UnknownDim(),
                                 c->RankKnown(grad) ? c->Dim(grad, -1) : c->UnknownDim()));
      return Status();
    })
    .Doc("The gradient [n, dim] of the rows of a feature's n ids from the gradient of "
         "their pooled rows (DrlKvGroupFindOrInsert with combiner sum, mean, sqrtn or "
         "sequence, the same row_splits and weights).");

REGISTER_OP("DrlKvUpdate")
    .Input("table: resource")
    .Input("keys: Tkey")
    .Input("values: float")
    .Input("slots: float")
    .Input("global_step: int64")
    .Output("updated: int64")
    .Attr("Tkey: {int64, string}")
    .SetIsStateful()
    .SetShapeFn(tensorflow::shape_inference::ScalarShape)
    .Doc("Assigns values (and slots, unless slots is empty) of admitted keys; stamps version = "
         "global_step (>= 0).");

REGISTER_OP("DrlKvExport")
    .Input("table: resource")
    .Output("keys: key_dtype")
    .Output("values: float")
    .Output("freqs: int64")
    .Output("versions: int64")
    .Output("slots: float")
    .Output("admitted: bool")
    .Output("bloom_counts: int32")
    .Attr("key_dtype: {int64, string}")
    .SetIsStateful()
    .SetShapeFn([](InferenceContext* c) {
      auto n = c->UnknownDim();
      c->set_output(0, c->Vector(n));
      c->set_output(1, c->Matrix(n, InferenceContext::kUnknownDim));
      c->set_output(2, c->Vector(n));
      c->set_output(3, c->Vector(n));
      c->set_output(4, c->UnknownShapeOfRank(3));
      c->set_output(5, c->Vector(n));
      c->set_output(6, c->Vector(InferenceContext::kUnknownDim));
      return Status();
    })
    .Doc("Every record of the table, from one consistent snapshot.");

REGISTER_OP("DrlKvImport")
    .Input("table: resource")
    .Input("keys: key_dtype")
    .Input("values: float")
    .Input("freqs: int64")
    .Input("versions: int64")
    .Input("slots: float")
    .Input("admitted: bool")
    .Input("bloom_counts: int32")
    .Attr("key_dtype: {int64, string}")
    .SetIsStateful()
    .SetShapeFn(tensorflow::shape_inference::NoOutputs)
    .Doc("Replaces the table's contents with the given records (as written by DrlKvExport); "
         "versions must be >= 0.");

REGISTER_OP("DrlKvRemove")
    .Input("table: resource")
    .Input("keys: Tkey")
    .Output("removed: int64")
    .Attr("Tkey: {int64, string}")
    .Attr("log: bool = true")
    .SetIsStateful()
    .SetShapeFn(tensorflow::shape_inference::ScalarShape)
    .Doc("Removes the given keys with all their slots; unless log is false, the table "
         "remembers them as removed (for deltas, DrlKvChanges).");

REGISTER_OP("DrlKvEvict")
    .Input("table: resource")
    .Input("global_step: int64")
    .Input("max_staleness: int64")
    .Input("min_freq: int64")
    .Output("removed: int64")
    .SetIsStateful()
    .SetShapeFn(tensorflow::shape_inference::ScalarShape)
    .Doc("Removes keys with global_step - version > max_staleness (if >= 0; -1: no staleness "
         "eviction) and admitted keys with freq < min_freq (if > 0). global_step >= 0.");

REGISTER_OP("DrlKvSetSlots")
    .Input("table: resource")
    .Input("slot_init: float")
    .SetIsStateful()
    .SetShapeFn(tensorflow::shape_inference::NoOutputs)
    .Doc("Gives every record len(slot_init) optimizer slots (kept ones keep their state); "
         "ResourceExhausted, with the table unchanged, when the new rows do not fit.");

REGISTER_OP("DrlKvSetCounting")
    .Input("table: resource")
    .Input("counting: bool")
    .SetIsStateful()
    .SetShapeFn(tensorflow::shape_inference::NoOutputs)
    .Doc("Turns counting of training lookups on or off: while off, DrlKvFindOrInsert adds "
         "nothing to freq or to admission counts. On when the table is created.");

REGISTER_OP("DrlKvStats")
    .Input("table: resource")
    .Output("stats: int64")
    .SetIsStateful()
    .SetShapeFn([](InferenceContext* c) {
      c->set_output(0, c->Vector(4));
      return Status();
    })
    .Doc("[admitted keys, keys counted but not admitted, bytes of memory held, gradient rows "
         "holding NaN or Inf that sparse optimizers skipped since the table was created].");

}  // namespace deeprec_lite
