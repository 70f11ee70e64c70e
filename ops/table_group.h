// The tables of an op over a list of tables (a table group): one lookup and one
// update per step for all of a model's tables that share an optimizer and a key
// dtype. Each distinct table runs on its own thread of the intra-op pool, in
// parallel with the others; a table that appears at several positions of the
// list (features sharing a table) is visited at each of them in list order, so
// the result is the same as the ops of each position run one after the other.
#ifndef DEEPREC_LITE_OPS_TABLE_GROUP_H_
#define DEEPREC_LITE_OPS_TABLE_GROUP_H_

#include <cstdint>
#include <functional>
#include <map>
#include <vector>

#include "kv_table.h"
#include "parallel_tasks.h"
#include "tensorflow/core/framework/op_kernel.h"
#include "tensorflow/core/framework/resource_mgr.h"

namespace deeprec_lite {

class TableGroup {
 public:
  // Looks up the tables of the op's list input `name`.
  tensorflow::Status Open(tensorflow::OpKernelContext* ctx, const char* name) {
    int start, stop;
    TF_RETURN_IF_ERROR(ctx->op_kernel().InputRange(name, &start, &stop));
    std::map<const KvTableBase*, size_t> distinct;
    for (int i = start; i < stop; ++i) {
      tensorflow::core::RefCountPtr<KvTableBase> table;
      TF_RETURN_IF_ERROR(LookupResource(ctx, tensorflow::HandleFromInput(ctx, i), &table));
      auto it = distinct.emplace(table.get(), members_.size()).first;
      if (it->second == members_.size()) members_.emplace_back();
      members_[it->second].push_back(i - start);
      tables_.push_back(std::move(table));
    }
    return tensorflow::Status();
  }

  int size() const { return static_cast<int>(tables_.size()); }
  KvTableBase& operator[](int i) const { return *tables_[i]; }

  // Calls fn(i, workers) for every position i: distinct tables in parallel, each
  // table's positions in list order. workers: the threads fn may use (the pool
  // when there are fewer tables than threads, else fn's own thread only).
  // Returns the first error of fn in list order.
  tensorflow::Status Run(tensorflow::OpKernelContext* ctx,
                         const std::function<tensorflow::Status(int, const CpuWorkers&)>& fn) {
    const CpuWorkers& pool = Workers(ctx);
    const int64_t distinct = static_cast<int64_t>(members_.size());
    CpuWorkers one_thread = pool;
    one_thread.num_threads = 1;
    const CpuWorkers& inner = distinct < pool.num_threads ? pool : one_thread;
    std::vector<tensorflow::Status> status(tables_.size());
    ParallelTasks(pool, distinct, [&](int64_t t) {
      for (int i : members_[t]) status[i] = fn(i, inner);
    });
    for (const auto& s : status) TF_RETURN_IF_ERROR(s);
    return tensorflow::Status();
  }

 private:
  std::vector<tensorflow::core::RefCountPtr<KvTableBase>> tables_;  // by position
  std::vector<std::vector<int>> members_;  // per distinct table: its positions
};

}  // namespace deeprec_lite

#endif  // DEEPREC_LITE_OPS_TABLE_GROUP_H_
