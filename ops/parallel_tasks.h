// Runs a few coarse tasks on the calling thread and the intra-op pool, each thread
// claiming the next task when it is free. Returns as soon as every task is done:
// a pool thread that starts late (the machine is busy) finds no task left and
// is not waited for, so a delayed thread never stalls the op.
#ifndef DEEPREC_LITE_OPS_PARALLEL_TASKS_H_
#define DEEPREC_LITE_OPS_PARALLEL_TASKS_H_

#include <algorithm>
#include <atomic>
#include <cstdint>
#include <functional>
#include <memory>

#include "tensorflow/core/framework/device_base.h"
#include "tensorflow/core/platform/mutex.h"

namespace deeprec_lite {

// Calls fn(t) once for each t in [0, tasks).
inline void ParallelTasks(const tensorflow::DeviceBase::CpuWorkerThreads& workers,
                          int64_t tasks, const std::function<void(int64_t)>& fn) {
  struct State {
    const std::function<void(int64_t)>* fn;
    int64_t tasks;
    std::atomic<int64_t> next{0};
    int64_t done = 0;
    tensorflow::mutex mu;
    tensorflow::condition_variable all_done;
  };
  auto state = std::make_shared<State>();
  state->fn = &fn;
  state->tasks = tasks;
  // Touches *fn only for a claimed task, which the caller waits for.
  auto drain = [state]() {
    for (int64_t t; (t = state->next.fetch_add(1)) < state->tasks;) {
      (*state->fn)(t);
      tensorflow::mutex_lock lock(state->mu);
      if (++state->done == state->tasks) state->all_done.notify_all();
    }
  };
  const int64_t helpers = std::min<int64_t>(workers.num_threads, tasks) - 1;
  for (int64_t i = 0; i < helpers; ++i) workers.workers->Schedule(drain);
  drain();
  tensorflow::mutex_lock lock(state->mu);
  while (state->done < tasks) state->all_done.wait(lock);
}

}  // namespace deeprec_lite

#endif  // DEEPREC_LITE_OPS_PARALLEL_TASKS_H_
