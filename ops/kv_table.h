// The KV embedding table: a TensorFlow resource mapping raw int64 or string keys
// to records {value[dim], freq, version, slots[num_slots][dim]}.
//
// Layout: 32 shards chosen by the top bits of the key hash. Each shard has its own
// lock, open-addressing index and row arenas, so one batch is processed by
// several threads in parallel (one shard at a time per thread) and concurrent
// batches only contend on the shards they share. A record is always read and
// written under its shard's lock, so a value and its slots come from one step;
// export and import exclude all batch ops, so an export is one snapshot.
//
// Admission: with a counter filter, keys below min_count live in a small
// "pending" arena (key, freq, version) with no value; with a counting Bloom
// filter they have no record at all. Either way lookups return the default value
// and updates skip them until they are admitted.
#ifndef DEEPREC_LITE_OPS_KV_TABLE_H_
#define DEEPREC_LITE_OPS_KV_TABLE_H_

#include <atomic>
#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "counting_bloom_filter.h"
#include "initializer.h"
#include "tensorflow/core/framework/op_kernel.h"
#include "tensorflow/core/framework/resource_mgr.h"
#include "tensorflow/core/framework/tensor.h"

namespace deeprec_lite {

enum class Admission { kNone, kCounter, kBloom };

struct TableConfig {
  std::string name;                  // names the table in errors
  int64_t dim = 0;
  int64_t num_slots = 0;
  std::vector<float> slot_init;      // one initial value per slot
  Initializer initializer;
  std::vector<float> default_value;  // dim floats, returned for keys without a row
  Admission admission = Admission::kNone;
  int64_t min_count = 0;             // admission threshold (counter or bloom)
  int64_t bloom_counters = 0;
  int bloom_hashes = 0;
};

// The threads a table op may use: the op's intra-op pool, or one thread (an op
// over many tables runs each on its own thread, see table_group.h).
using CpuWorkers = tensorflow::DeviceBase::CpuWorkerThreads;
inline const CpuWorkers& Workers(tensorflow::OpKernelContext* ctx) {
  return *ctx->device()->tensorflow_cpu_worker_threads();
}

// Pointers into one record, valid while its shard's lock is held.
struct RowView {
  int64_t* freq;
  int64_t* version;
  float* value;  // dim floats
  float* slots;  // num_slots * dim floats, slot-major
};

// Records of part of a table, as checkpoints stream them: admitted records
// (keys [n], values [n, dim], slots [n, num_slots, dim], freqs [n], versions [n])
// and pending ones, counted but not admitted (pending_keys, pending_freqs,
// pending_versions [m]).
struct TableRecords {
  tensorflow::Tensor keys, values, slots, freqs, versions;
  tensorflow::Tensor pending_keys, pending_freqs, pending_versions;
};

class KvTableBase : public tensorflow::ResourceBase {
 public:
  explicit KvTableBase(const TableConfig& config) : config_(config) {}

  // dim and key dtype never change; num_slots and slot_init change only in
  // SetSlots, which no other op overlaps.
  const TableConfig& config() const { return config_; }
  virtual tensorflow::DataType key_dtype() const = 0;

  // Inference lookup: values of admitted keys, the default value otherwise.
  // Never inserts and never counts. `values` has keys.NumElements() * dim floats.
  virtual void Find(tensorflow::OpKernelContext* ctx, const tensorflow::Tensor& keys,
                    float* values) = 0;

  // Training lookup: adds counts[i] (1 when counts is null; 0 while counting is
  // off, see SetCounting) to each key's freq, applies admission, creates admitted
  // new keys from the initializer with version = step, and writes values (default
  // for keys not admitted).
  // ResourceExhausted when memory for new rows runs out; the keys that got one
  // are inserted and counted as usual, the others are left as they were.
  virtual tensorflow::Status FindOrInsert(tensorflow::OpKernelContext* ctx,
                                          const tensorflow::Tensor& keys, const int64_t* counts,
                                          int64_t step, float* values, bool* admitted) = 0;

  // Training lookup of a batch in which keys repeat (the ids of one feature):
  // counts each distinct key once with its number of occurrences, or with counts
  // (not null: one per key) the sum of its occurrences' counts (as FindOrInsert
  // with counts), and writes rows [n, dim] (each occurrence's value, the default
  // for keys not admitted) and index [n] (the position of each occurrence's key
  // among the distinct keys). The distinct keys go to the tensor that
  // allocate(count, &tensor) returns, in a deterministic order: by shard, and in
  // order of first occurrence within a shard.
  using AllocateKeys = std::function<tensorflow::Status(int64_t, tensorflow::Tensor**)>;
  virtual tensorflow::Status FindOrInsertUnique(const CpuWorkers& workers,
                                                const tensorflow::Tensor& keys,
                                                const int64_t* counts, int64_t step,
                                                float* rows, int64_t* index,
                                                const AllocateKeys& allocate) = 0;

  // Calls fn(i, row) for each keys[i] that has an admitted record, under its
  // shard's exclusive lock, and stamps version = step when fn returns true (it
  // changed the row). Other keys are skipped. Occurrences of the same key are
  // visited in input order. Returns the number of calls that returned true.
  using RowFn = std::function<bool(int64_t i, const RowView& row)>;
  virtual int64_t ForEachRow(const CpuWorkers& workers, const tensorflow::Tensor& keys,
                             int64_t step, const RowFn& fn) = 0;

  // Writes outputs 0..6 (keys, values, freqs, versions, slots, admitted,
  // bloom_counts) from one consistent snapshot of the whole table.
  virtual tensorflow::Status Export(tensorflow::OpKernelContext* ctx) = 0;

  // Replaces the contents with the records given as inputs first..first+6, in
  // the order Export writes them. Leaves the table unchanged on error.
  virtual tensorflow::Status Import(tensorflow::OpKernelContext* ctx, int first) = 0;

  // The table's internal shards: keys are spread over them by hash.
  static constexpr int kNumShards = 32;

  // Copies the records of internal shard `shard` (in [0, kNumShards)) under its
  // lock (see ForEachShardRecords), for readers that go through a live table
  // shard by shard (export, warm start).
  virtual tensorflow::Status ShardRecords(tensorflow::OpKernelContext* ctx, int shard,
                                          TableRecords* out) = 0;

  // Calls fn(shard, records) for each internal shard of `shards` in turn, with
  // that shard's records copied under its lock: every record is a consistent one
  // (value, slots, freq and version from the same update) while other ops go on.
  // One shard's copy (about 1/32 of the table) exists at a time. SetSlots and
  // Import wait until it returns, so every shard has the same layout; several
  // threads may call it at once (for different shards).
  using RecordsFn = std::function<tensorflow::Status(int shard, const TableRecords& records)>;
  virtual tensorflow::Status ForEachShardRecords(tensorflow::OpKernelContext* ctx,
                                                 const std::vector<int>& shards,
                                                 const RecordsFn& fn) = 0;

  // The Bloom filter's counters (int32; empty without one).
  virtual tensorflow::Status BloomCounts(tensorflow::OpKernelContext* ctx,
                                         tensorflow::Tensor* counts) = 0;

  // Empties the table (records and Bloom filter) and sizes its index for about
  // `expected_records` records, for a restore that inserts them in parts.
  virtual tensorflow::Status Clear(int64_t expected_records) = 0;

  // Inserts records into the table (a restore's part). InvalidArgument for a key
  // already present (unless `replace`: then its record is replaced, admitted or
  // pending), a negative version, pending records in a table without counter
  // admission or tensors of the wrong shape; ResourceExhausted when memory runs
  // out. The table may hold part of the records after an error.
  virtual tensorflow::Status InsertRecords(tensorflow::OpKernelContext* ctx,
                                           const TableRecords& records, bool replace) = 0;

  // Changes since step `since`, for deltas (incremental checkpoints, delta
  // exports). Every record carries `touched`, the step of its last change of any
  // kind (inserted, counted, updated; restored and imported records count as
  // untouched, older than any step: they are what was restored), and the
  // table logs the keys it removes (Remove, at the largest step it has seen;
  // Evict, at its step). Writes to `out` the records touched at step >= since
  // (admitted ones with values, and slots when with_slots, else none), to
  // removed_keys the keys removed at step >= since that are not in the table now
  // (each once; a key removed and added again is a record), and to expired_keys the
  // admitted keys untouched since then whose version lies in
  // [expired_from, expired_before) (the keys a staleness filter drops between two
  // steps). Records are copied under their shard's lock. Steps are assumed to
  // only grow. FailedPrecondition when the log no longer reaches back to `since`.
  virtual tensorflow::Status Changes(tensorflow::OpKernelContext* ctx, int64_t since,
                                     int64_t expired_from, int64_t expired_before,
                                     bool with_slots, TableRecords* out,
                                     tensorflow::Tensor* removed_keys,
                                     tensorflow::Tensor* expired_keys) = 0;

  // timeline: a random id, new when the table is created, cleared (a restore)
  // or imported: deltas are only meaningful between states of one timeline.
  // removals_since: the step from which the removal log is complete. clock: the
  // largest step of a change so far in this timeline (a delta since then holds
  // every later change).
  virtual void ChangeState(int64_t* timeline, int64_t* removals_since, int64_t* clock) = 0;

  // Sets the Bloom filter's counters (int32, clamped to its counter range);
  // InvalidArgument unless there are as many as the filter has (0 without one).
  virtual tensorflow::Status SetBloomCounts(const tensorflow::Tensor& counts) = 0;

  // Removes the keys present; logs them as removed (see Changes) when `log`.
  virtual int64_t Remove(tensorflow::OpKernelContext* ctx, const tensorflow::Tensor& keys,
                         bool log) = 0;

  // Removes records with step - version > max_staleness (when max_staleness >= 0)
  // and admitted records with freq < min_freq (when min_freq > 0). step >= 0.
  virtual int64_t Evict(tensorflow::OpKernelContext* ctx, int64_t step, int64_t max_staleness,
                        int64_t min_freq) = 0;

  virtual void Stats(int64_t* admitted, int64_t* pending, int64_t* bytes) = 0;

  // Gives every record slot_init.size() slots. With the same number of slots
  // only the initial values (for new keys) change; otherwise every row is
  // re-laid out: value, freq and version are kept, the common slots are kept
  // and new slots start at their initial value. Excludes all other ops.
  // ResourceExhausted, leaving the table unchanged, when the new rows do not fit.
  virtual tensorflow::Status SetSlots(const std::vector<float>& slot_init) = 0;

  // Gradient rows holding NaN or Inf that sparse optimizers skipped (their
  // nonfinite_gradients='skip'), since the table was created. A monitoring
  // count: not exported, so not checkpointed, and left as it is by Import.
  int64_t nonfinite_skipped() const { return nonfinite_skipped_.load(std::memory_order_relaxed); }
  void CountNonfiniteSkipped(int64_t rows) {
    nonfinite_skipped_.fetch_add(rows, std::memory_order_relaxed);
  }

  // Whether training lookups count: while off, FindOrInsert adds 0 to freq (and
  // to the admission counts) but inserts and stamps versions as usual. On when the
  // table is created; not checkpointed (a training loop sets it, e.g. off after
  // the first epoch so that freq counts occurrences in the data).
  bool counting() const { return counting_.load(std::memory_order_relaxed); }
  void SetCounting(bool on) { counting_.store(on, std::memory_order_relaxed); }

  std::string DebugString() const override;

 protected:
  TableConfig config_;

 private:
  std::atomic<int64_t> nonfinite_skipped_{0};
  std::atomic<bool> counting_{true};
};

// Creates the table for keys of `key_dtype` (DT_INT64 or DT_STRING);
// ResourceExhausted, naming the table, when its Bloom filter cannot be allocated.
tensorflow::Status CreateKvTable(tensorflow::DataType key_dtype, const TableConfig& config,
                                 KvTableBase** table);

}  // namespace deeprec_lite

#endif  // DEEPREC_LITE_OPS_KV_TABLE_H_
