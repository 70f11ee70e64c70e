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
#include <thread>

#include "tensorflow/core/framework/device_base.h"
#include "tensorflow/core/platform/mutex.h"

namespace deeprec_lite {

using TaskFn = std::function<void(int64_t)>;

// Calls first(t) once for each t in [0, first_tasks). With a second round
// (first_tasks >= 1): once all of those are done, plan() runs once and returns
// how many second-round tasks there are, and second(t) runs once for each; a
// thread that runs out of first-round tasks waits (yielding) for those still
// running. Both rounds use the threads of one dispatch to the pool: waking a
// pool thread can take longer than a round on a busy machine.
inline void ParallelRounds(const tensorflow::DeviceBase::CpuWorkerThreads& workers,
                           int64_t first_tasks, const TaskFn& first,
                           const std::function<int64_t()>* plan = nullptr,
                           const TaskFn* second = nullptr) {
  struct State {
    const TaskFn* first;
    const std::function<int64_t()>* plan;
    const TaskFn* second;
    int64_t first_tasks;
    std::atomic<int64_t> next_first{0};
    std::atomic<int64_t> first_done{0};
    int64_t second_tasks = 0;  // set by plan() before `planned`
    std::atomic<bool> planned{false};
    std::atomic<int64_t> next_second{0};
    std::atomic<int64_t> second_done{0};
    bool finished = false;
    tensorflow::mutex mu;
    tensorflow::condition_variable all_done;

    void Finish() {
      tensorflow::mutex_lock lock(mu);
      finished = true;
      all_done.notify_all();
    }
  };
  auto state = std::make_shared<State>();
  state->first = &first;
  state->plan = plan;
  state->second = second;
  state->first_tasks = first_tasks;
  if (first_tasks == 0) state->Finish();
  // Touches the functions only for a claimed task, which the caller waits for.
  auto drain = [state]() {
    State& s = *state;
    for (int64_t t; (t = s.next_first.fetch_add(1)) < s.first_tasks;) {
      (*s.first)(t);
      if (s.first_done.fetch_add(1) + 1 < s.first_tasks) continue;
      if (s.plan != nullptr) s.second_tasks = (*s.plan)();
      s.planned.store(true, std::memory_order_release);
      if (s.second_tasks == 0) s.Finish();
    }
    if (s.plan == nullptr) return;
    while (!s.planned.load(std::memory_order_acquire)) std::this_thread::yield();
    for (int64_t t; (t = s.next_second.fetch_add(1)) < s.second_tasks;) {
      (*s.second)(t);
      if (s.second_done.fetch_add(1) + 1 == s.second_tasks) s.Finish();
    }
  };
  const int64_t helpers = std::min<int64_t>(workers.num_threads, first_tasks) - 1;
  for (int64_t i = 0; i < helpers; ++i) workers.workers->Schedule(drain);
  drain();
  tensorflow::mutex_lock lock(state->mu);
  while (!state->finished) state->all_done.wait(lock);
}

// Calls fn(t) once for each t in [0, tasks).
inline void ParallelTasks(const tensorflow::DeviceBase::CpuWorkerThreads& workers,
                          int64_t tasks, const TaskFn& fn) {
  ParallelRounds(workers, tasks, fn);
}

}  // namespace deeprec_lite

#endif  // DEEPREC_LITE_OPS_PARALLEL_TASKS_H_
