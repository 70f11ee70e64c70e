#include "kv_table.h"

#include <algorithm>
#include <array>
#include <atomic>
#include <cstring>
#include <limits>
#include <new>
#include <random>
#include <type_traits>
#include <utility>

#include "distinct_keys.h"
#include "hash_index.h"
#include "key_hash.h"
#include "parallel_tasks.h"
#include "row_arena.h"
#include "saturating_count.h"
#include "tensorflow/core/framework/allocator.h"
#include "tensorflow/core/framework/device_base.h"
#include "tensorflow/core/platform/mutex.h"
#include "tensorflow/core/util/work_sharder.h"

namespace deeprec_lite {

using tensorflow::DataType;
using tensorflow::errors::InvalidArgument;
using tensorflow::errors::ResourceExhausted;
using tensorflow::mutex;
using tensorflow::mutex_lock;
using tensorflow::OpKernelContext;
using tensorflow::Status;
using tensorflow::Tensor;
using tensorflow::TensorShape;
using tensorflow::tf_shared_lock;
using tensorflow::tstring;

std::string KvTableBase::DebugString() const {
  return "KvTable(dim=" + std::to_string(config_.dim) +
         ", num_slots=" + std::to_string(config_.num_slots) + ")";
}

namespace {

// Record layout, shared by admitted rows and pending records (which end at the
// value): [0, 8) freq | [8, 16) version | [16, 24) touched | [24, 32) key word |
// [32, ...) value, slots. The key word sits next to the value: an inference
// lookup reads one span, at most two cache lines for a dim-16 row. `touched` is
// the step of the record's last change of any kind (see KvTableBase::Changes).
constexpr size_t kFreqOffset = 0;
constexpr size_t kVersionOffset = 8;
constexpr size_t kTouchedOffset = 16;
constexpr size_t kKeyOffset = 24;
constexpr size_t kValueOffset = 32;
constexpr uint32_t kPendingBit = 1u << 31;
// The touched step of restored and imported records: before every step, so that the
// changes since a restore are what changed after it.
constexpr int64_t kUntouched = std::numeric_limits<int64_t>::min();

inline int64_t& Freq(char* rec) { return *reinterpret_cast<int64_t*>(rec + kFreqOffset); }
inline int64_t& Version(char* rec) { return *reinterpret_cast<int64_t*>(rec + kVersionOffset); }
inline int64_t& Touched(char* rec) { return *reinterpret_cast<int64_t*>(rec + kTouchedOffset); }
inline float* Value(char* rec) { return reinterpret_cast<float*>(rec + kValueOffset); }
inline char* KeyWord(char* rec) { return rec + kKeyOffset; }

// OK when every entry of int64 tensor t is >= 0, else the error that names them
// (`whose` `what`: "imported " "versions are global steps") and the first bad one.
constexpr char kFreqsAre[] = "freqs count occurrences";
constexpr char kVersionsAre[] = "versions are global steps";
Status CheckNonNegative(const std::string& whose, const char* what, const Tensor& t) {
  const auto v = t.flat<int64_t>();
  for (int64_t i = 0; i < v.size(); ++i) {
    if (v(i) < 0) return InvalidArgument(whose, what, ", >= 0; got ", v(i), " at position ", i);
  }
  return Status();
}

// How a key is kept in the 8-byte key word of its record.
template <typename K>
struct KeyCodec;

template <>
struct KeyCodec<int64_t> {
  static constexpr DataType kDtype = tensorflow::DT_INT64;
  static int64_t Load(const char* w) {
    int64_t k;
    std::memcpy(&k, w, sizeof(k));
    return k;
  }
  static size_t Store(char* w, int64_t k) {
    std::memcpy(w, &k, sizeof(k));
    return 0;
  }
  static bool Equal(const char* w, int64_t k) { return Load(w) == k; }
  static size_t Release(char*) { return 0; }
  static uint64_t Hash(const char* w) { return HashKey(Load(w)); }
  static void Output(const char* w, int64_t* out) { *out = Load(w); }
};

template <>
struct KeyCodec<tstring> {
  static constexpr DataType kDtype = tensorflow::DT_STRING;
  static std::string* Load(const char* w) {
    std::string* s;
    std::memcpy(&s, w, sizeof(s));
    return s;
  }
  static size_t HeapBytes(const std::string* s) {
    return sizeof(std::string) + (s->capacity() > 15 ? s->capacity() + 1 : 0);
  }
  static size_t Store(char* w, const tstring& k) {
    std::string* s = new std::string(k.data(), k.size());
    std::memcpy(w, &s, sizeof(s));
    return HeapBytes(s);
  }
  static bool Equal(const char* w, const tstring& k) {
    const std::string* s = Load(w);
    return s->size() == k.size() && std::memcmp(s->data(), k.data(), k.size()) == 0;
  }
  static size_t Release(char* w) {
    std::string* s = Load(w);
    const size_t bytes = HeapBytes(s);
    delete s;
    return bytes;
  }
  static uint64_t Hash(const char* w) { return HashKey(*Load(w)); }
  static void Output(const char* w, tstring* out) {
    const std::string* s = Load(w);
    out->assign(s->data(), s->size());
  }
};

// 32 shards, chosen by the top bits of the key hash.
constexpr int kShardBits = 5;
constexpr int kShards = 1 << kShardBits;
static_assert(kShards == KvTableBase::kNumShards, "kv_table.h names the number of shards");

inline int ShardIndex(uint64_t hash) { return static_cast<int>(hash >> (64 - kShardBits)); }

// A key of a batch: its hash and its position in the batch.
struct BatchKey {
  uint64_t hash;
  uint32_t i;
};

// The keys of one batch, hashed and split into parts (tasks for the worker
// threads): part p owns shards [first_shard[p], first_shard[p + 1]), which hold
// about the same number of the batch's keys. The batch is hashed in blocks of
// consecutive keys, block t at [block_begin[t], block_begin[t + 1]); `sorted`
// holds each block's keys in the same range, stably sorted by shard, shard s's
// from offset shard_begin[t][s] to shard_begin[t][s + 1]. shard_keys[s]: the
// batch's keys in shard s.
struct Batch {
  std::unique_ptr<uint64_t[]> hashes;  // in input order
  std::unique_ptr<BatchKey[]> sorted;
  std::vector<int64_t> block_begin;
  std::vector<std::array<uint32_t, kShards + 1>> shard_begin;
  std::vector<int> first_shard;
  std::vector<int64_t> shard_keys;

  // Part p's keys, each shard's in input order, contiguous for the walk.
  std::vector<BatchKey> PartKeys(int64_t p) const {
    const int lo = first_shard[p];
    const int hi = first_shard[p + 1];
    std::vector<BatchKey> out;
    for (size_t t = 0; t < shard_begin.size(); ++t) {
      const BatchKey* block = sorted.get() + block_begin[t];
      out.insert(out.end(), block + shard_begin[t][lo], block + shard_begin[t][hi]);
    }
    return out;
  }
};

// Prefetches every cache line of [begin, end), for writing when kWrite is 1.
// Always inlined: GCC counts a prefetch as no side effect, so a call left out of
// line is taken for a pure function whose result is unused, and deleted.
template <int kWrite>
[[gnu::always_inline]] inline void PrefetchLines(const void* begin, const void* end) {
  const uintptr_t last = (reinterpret_cast<uintptr_t>(end) - 1) & ~uintptr_t{63};
  for (uintptr_t line = reinterpret_cast<uintptr_t>(begin) & ~uintptr_t{63}; line <= last;
       line += 64) {
    __builtin_prefetch(reinterpret_cast<const void*>(line), kWrite);
  }
}

// The default for a walk's ahead(i) (see VisitPart): nothing to prefetch.
struct NothingAhead {
  void operator()(int64_t) const {}
};

template <typename K>
class KvTable : public KvTableBase {
 public:
  // bloom: the counting Bloom filter of Bloom admission (null otherwise).
  KvTable(const TableConfig& config, std::unique_ptr<CountingBloomFilter> bloom)
      : KvTableBase(config),
        row_stride_(RowStride(config.dim, config.num_slots)),
        bloom_(std::move(bloom)) {
    for (int s = 0; s < kShards; ++s) shards_[s].reset(new Shard(row_stride_));
    StartTimeline();
  }

  ~KvTable() override {
    for (auto& s : shards_) ReleaseAllKeys(*s);
  }

  DataType key_dtype() const override { return KeyCodec<K>::kDtype; }

  // Read-only, so no grouping by shard: each task takes a contiguous range of
  // the batch, hashes it, holds every shard's lock shared, and walks its keys in
  // input order with a prefetch pipeline (index entry 16 keys ahead, record 8
  // ahead).
  void Find(OpKernelContext* ctx, const Tensor& keys, float* values) override {
    tf_shared_lock table_lock(table_mu_);
    const K* k = keys.flat<K>().data();
    const int64_t dim = config_.dim;
    auto work = [&](int64_t first, int64_t last) {
      std::unique_ptr<uint64_t[]> hashes(new uint64_t[last - first]);
      for (int64_t i = first; i < last; ++i) hashes[i - first] = HashKey(k[i]);
      const uint64_t* h = hashes.get() - first;  // h[i]: the hash of k[i]
      for (auto& s : shards_) s->mu.lock_shared();
      constexpr int64_t kAhead = 16;
      for (int64_t i = first; i < std::min(last, first + kAhead); ++i) {
        ShardOf(h[i]).index.Prefetch(h[i]);
      }
      for (int64_t i = first; i < last; ++i) {
        if (i + kAhead / 2 < last) {
          PrefetchRecord(ShardOf(h[i + kAhead / 2]), h[i + kAhead / 2], kKeyOffset);
        }
        if (i + kAhead < last) ShardOf(h[i + kAhead]).index.Prefetch(h[i + kAhead]);
        const Shard& s = ShardOf(h[i]);
        const int64_t pos = s.index.Find(h[i], SameKey(s, k[i]));
        const float* src = config_.default_value.data();
        if (pos != HashIndex::kNotFound) {
          const uint32_t ref = HashIndex::Ref(s.index.entry(pos));
          if (!(ref & kPendingBit)) src = Value(s.rows.Row(ref));
        }
        std::memcpy(values + i * dim, src, sizeof(float) * dim);
      }
      for (auto& s : shards_) s->mu.unlock_shared();
    };
    const CpuWorkers& workers = Workers(ctx);
    const int64_t n = keys.NumElements();
    const int64_t tasks = NumTasks(workers, n);
    ParallelTasks(workers, tasks, [&](int64_t t) { work(n * t / tasks, n * (t + 1) / tasks); });
  }

  Status FindOrInsert(OpKernelContext* ctx, const Tensor& keys, const int64_t* counts,
                      int64_t step, float* values, bool* admitted) override {
    tf_shared_lock table_lock(table_mu_);
    const K* k = keys.flat<K>().data();
    const int64_t dim = config_.dim;
    // A part visits keys in shard order, so each key's output row lies anywhere
    // in `values`: its lines are prefetched for writing with the key's record.
    const auto prefetch_output = [&](int64_t i) {
      PrefetchLines<1>(values + i * dim, values + (i + 1) * dim);
    };
    std::atomic<bool> out_of_memory{false};
    const int64_t weight = counting() ? 1 : 0;
    SplitAndVisit(
        Workers(ctx), k, keys.NumElements(),
        [&](Shard& s, int, int64_t i, uint64_t h) {
          const int64_t count = weight * (counts ? counts[i] : 1);
          bool failed = false;
          admitted[i] = FindOrInsertCopy(s, h, k[i], count, step, values + i * dim, &failed);
          if (failed) out_of_memory.store(true, std::memory_order_relaxed);
        },
        prefetch_output);
    AdvanceClock(step);
    if (out_of_memory.load()) {
      return OutOfMemoryForRows();
    }
    return Status();
  }

  int64_t ForEachRow(const CpuWorkers& workers, const Tensor& keys, int64_t step,
                     const RowFn& fn) override {
    tf_shared_lock table_lock(table_mu_);
    const int64_t dim = config_.dim;
    const int64_t changed = ForEachFound(workers, keys, [&](Shard& s, int64_t pos, int64_t i) {
      const uint32_t ref = HashIndex::Ref(s.index.entry(pos));
      if (ref & kPendingBit) return false;
      char* rec = s.rows.Row(ref);
      if (!fn(i, RowView{&Freq(rec), &Version(rec), Value(rec), Value(rec) + dim})) return false;
      Version(rec) = step;
      Touched(rec) = step;
      return true;
    });
    AdvanceClock(step);
    return changed;
  }

  Status FindOrInsertUnique(const CpuWorkers& workers, const Tensor& keys, const int64_t* counts,
                            int64_t step, float* rows, int64_t* index,
                            const AllocateKeys& allocate) override {
    tf_shared_lock table_lock(table_mu_);
    const K* k = keys.flat<K>().data();
    Batch b = StartSplit(workers, keys.NumElements());
    std::vector<std::vector<BatchKey>> part_keys;
    std::vector<std::vector<int64_t>> firsts;  // per part: first occurrence of each distinct key
    std::atomic<bool> out_of_memory{false};
    const TaskFn hash = [&](int64_t t) { HashBlock(k, t, &b); };
    const std::function<int64_t()> plan = [&] {
      const int64_t parts = ChooseParts(&b);
      part_keys.resize(parts);
      firsts.resize(parts);
      return parts;
    };
    const TaskFn walk = [&](int64_t p) {
      part_keys[p] = b.PartKeys(p);
      if (!DedupAndInsert(k, counts, b, p, part_keys[p], step, rows, index, &firsts[p])) {
        out_of_memory.store(true, std::memory_order_relaxed);
      }
    };
    ParallelRounds(workers, NumBlocks(b), hash, &plan, &walk);
    AdvanceClock(step);
    if (out_of_memory.load()) {
      return OutOfMemoryForRows();
    }
    std::vector<int64_t> offset(firsts.size() + 1, 0);
    for (size_t p = 0; p < firsts.size(); ++p) offset[p + 1] = offset[p] + firsts[p].size();
    Tensor* unique;
    TF_RETURN_IF_ERROR(allocate(offset.back(), &unique));
    K* out = unique->flat<K>().data();
    ParallelTasks(workers, static_cast<int64_t>(firsts.size()), [&](int64_t p) {
      for (size_t u = 0; u < firsts[p].size(); ++u) out[offset[p] + u] = k[firsts[p][u]];
      for (const BatchKey& a : part_keys[p]) index[a.i] += offset[p];
    });
    return Status();
  }

  Status Export(OpKernelContext* ctx) override {
    mutex_lock table_lock(table_mu_);  // no batch op runs: one snapshot of everything
    std::array<int64_t, kShards + 1> offset{};
    for (int si = 0; si < kShards; ++si) {
      offset[si + 1] = offset[si] + shards_[si]->index.count();
    }
    const int64_t n = offset[kShards];
    const int64_t dim = config_.dim;
    const int64_t num_slots = config_.num_slots;
    Tensor *keys, *values, *freqs, *versions, *slots, *admitted, *bloom;
    Status st = ctx->allocate_output(0, TensorShape({n}), &keys);
    if (st.ok()) st = ctx->allocate_output(1, TensorShape({n, dim}), &values);
    if (st.ok()) st = ctx->allocate_output(2, TensorShape({n}), &freqs);
    if (st.ok()) st = ctx->allocate_output(3, TensorShape({n}), &versions);
    if (st.ok()) st = ctx->allocate_output(4, TensorShape({n, num_slots, dim}), &slots);
    if (st.ok()) st = ctx->allocate_output(5, TensorShape({n}), &admitted);
    if (st.ok()) {
      st = ctx->allocate_output(6, TensorShape({bloom_ ? bloom_->size() : 0}), &bloom);
    }
    if (st.ok()) {
      K* ko = keys->flat<K>().data();
      float* vo = values->flat<float>().data();
      int64_t* fo = freqs->flat<int64_t>().data();
      int64_t* vero = versions->flat<int64_t>().data();
      float* so = slots->flat<float>().data();
      bool* ao = admitted->flat<bool>().data();
      auto fill = [&](int64_t first, int64_t last) {
        for (int64_t si = first; si < last; ++si) {
          Shard& s = *shards_[si];
          int64_t r = offset[si];
          for (size_t pos = 0; pos < s.index.capacity(); ++pos) {
            const uint64_t e = s.index.entry(pos);
            if (e == 0) continue;
            const uint32_t ref = HashIndex::Ref(e);
            char* rec = Record(s, ref);
            KeyCodec<K>::Output(KeyWord(rec), ko + r);
            fo[r] = Freq(rec);
            vero[r] = Version(rec);
            ao[r] = !(ref & kPendingBit);
            if (ao[r]) {
              std::memcpy(vo + r * dim, Value(rec), sizeof(float) * dim);
              std::memcpy(so + r * num_slots * dim, Value(rec) + dim,
                          sizeof(float) * num_slots * dim);
            } else {
              std::fill(vo + r * dim, vo + (r + 1) * dim, 0.0f);
              std::fill(so + r * num_slots * dim, so + (r + 1) * num_slots * dim, 0.0f);
            }
            ++r;
          }
        }
      };
      const CpuWorkers& workers = Workers(ctx);
      tensorflow::Shard(workers.num_threads, workers.workers, kShards,
                        std::max<int64_t>(1, n / kShards) * (50 + 8 * dim), fill);
      auto bo = bloom->flat<int32_t>();
      for (int64_t i = 0; i < bo.size(); ++i) bo(i) = bloom_->Get(i);
    }
    return st;
  }

  Status Import(OpKernelContext* ctx, int first) override {
    const Tensor& keys = ctx->input(first);
    const Tensor& values = ctx->input(first + 1);
    const Tensor& freqs = ctx->input(first + 2);
    const Tensor& versions = ctx->input(first + 3);
    const Tensor& slots = ctx->input(first + 4);
    const Tensor& admitted = ctx->input(first + 5);
    const Tensor& bloom = ctx->input(first + 6);
    const int64_t n = keys.NumElements();
    const int64_t dim = config_.dim;
    const int64_t num_slots = config_.num_slots;
    if (keys.dims() != 1) {
      return InvalidArgument("imported keys must be a vector, got shape ",
                             keys.shape().DebugString());
    }
    if (values.dims() != 2 || values.dim_size(1) != dim || values.dim_size(0) != n) {
      return InvalidArgument("cannot import values of shape ", values.shape().DebugString(),
                             " into a table of dim ", dim, " with ", n, " keys");
    }
    if (slots.dims() != 3 || slots.dim_size(0) != n || slots.dim_size(1) != num_slots ||
        slots.dim_size(2) != dim) {
      return InvalidArgument("cannot import slots of shape ", slots.shape().DebugString(),
                             " into a table with ", num_slots, " slots of dim ", dim, " and ", n,
                             " keys");
    }
    if (freqs.NumElements() != n || versions.NumElements() != n || admitted.NumElements() != n) {
      return InvalidArgument("imported freqs, versions and admitted must each have ", n,
                             " elements, got ", freqs.NumElements(), ", ",
                             versions.NumElements(), " and ", admitted.NumElements());
    }
    const int64_t want_bloom = bloom_ ? bloom_->size() : 0;
    if (bloom.NumElements() != want_bloom) {
      return InvalidArgument("imported bloom filter has ", bloom.NumElements(),
                             " counters but this table's has ", want_bloom);
    }
    TF_RETURN_IF_ERROR(CheckNonNegative("imported ", kVersionsAre, versions));
    TF_RETURN_IF_ERROR(CheckNonNegative("imported ", kFreqsAre, freqs));
    const bool* a = admitted.flat<bool>().data();
    if (config_.admission != Admission::kCounter) {
      for (int64_t i = 0; i < n; ++i) {
        if (!a[i]) {
          return InvalidArgument(
              "imported records include keys that are not admitted, which only a table with "
              "counter admission can hold");
        }
      }
    }
    const K* k = keys.flat<K>().data();
    const float* v = values.flat<float>().data();
    const int64_t* f = freqs.flat<int64_t>().data();
    const int64_t* ver = versions.flat<int64_t>().data();
    const float* sl = slots.flat<float>().data();
    const Batch batch = Split(ctx, k, n);

    mutex_lock table_lock(table_mu_);  // no batch op runs while the contents change
    StartTimeline();  // even when the import fails: the table may change (it is emptied)
    // Check for duplicate keys before touching anything.
    Status st;
    {
      std::vector<int64_t> dup(kShards, -1);
      std::vector<HashIndex> seen(kShards);
      try {  // the indexes are sized up front: inserting into them allocates nothing
        for (int si = 0; si < kShards; ++si) seen[si].Reserve(batch.shard_keys[si]);
      } catch (const std::bad_alloc&) {
        return OutOfMemoryForImport(n);
      }
      ForEachKey(ctx, k, batch, [&](Shard&, int si, int64_t i, uint64_t h) {
        if (dup[si] >= 0) return;
        auto same = [&](uint32_t j) { return k[j] == k[i]; };
        size_t ins;
        if (seen[si].Find(h, same, &ins) != HashIndex::kNotFound) {
          dup[si] = i;
        } else {
          seen[si].Insert(ins, h, static_cast<uint32_t>(i));
        }
      });
      for (int64_t d : dup) {
        if (d >= 0) {
          st = InvalidArgument("imported keys contain a duplicate at position ", d);
          break;
        }
      }
    }
    if (st.ok()) {
      std::atomic<bool> out_of_memory{false};
      for (int si = 0; si < kShards && !out_of_memory.load(); ++si) {
        Shard& s = *shards_[si];
        ClearShard(s);
        try {
          s.index.Reserve(batch.shard_keys[si]);
        } catch (const std::bad_alloc&) {
          out_of_memory.store(true);
        }
      }
      if (!out_of_memory.load()) {
        ForEachKey(ctx, k, batch, [&](Shard& s, int, int64_t i, uint64_t h) {
          if (out_of_memory.load(std::memory_order_relaxed)) return;
          size_t ins;
          s.index.Find(h, SameKey(s, k[i]), &ins);
          char* rec;
          try {
            rec = a[i] ? NewRow(s, ins, h, k[i]) : NewPending(s, ins, h, k[i]);
          } catch (const std::bad_alloc&) {
            out_of_memory.store(true, std::memory_order_relaxed);
            return;
          }
          Freq(rec) = f[i];
          Version(rec) = ver[i];
          Touched(rec) = kUntouched;
          if (a[i]) {
            std::memcpy(Value(rec), v + i * dim, sizeof(float) * dim);
            std::memcpy(Value(rec) + dim, sl + i * num_slots * dim,
                        sizeof(float) * num_slots * dim);
          }
        });
      }
      if (out_of_memory.load()) {  // never a partly restored table: an empty one
        for (int si = 0; si < kShards; ++si) ClearShard(*shards_[si]);
        return OutOfMemoryForImport(n);
      }
      auto b = bloom.flat<int32_t>();
      for (int64_t i = 0; i < b.size(); ++i) {
        bloom_->Set(i, static_cast<uint16_t>(std::min<int32_t>(
                           std::max<int32_t>(b(i), 0), CountingBloomFilter::kMaxCount)));
      }
    }
    return st;
  }

  Status ShardRecords(OpKernelContext* ctx, int shard, TableRecords* out) override {
    return ForEachShardRecords(ctx, {shard}, [out](int, const TableRecords& r) {
      *out = r;
      return Status();
    });
  }

  Status ForEachShardRecords(OpKernelContext* ctx, const std::vector<int>& shards,
                             const RecordsFn& fn) override {
    tf_shared_lock table_lock(table_mu_);  // the layout (slots) stays as it is
    // Reused from shard to shard: fresh memory would be page-faulted in each time.
    TableRecords buffers;
    for (int si : shards) {
      if (si < 0 || si >= kShards) {
        return InvalidArgument("shard must be in [0, ", kShards, "), got ", si);
      }
      TableRecords records;
      TF_RETURN_IF_ERROR(CopyShard(ctx, *shards_[si], &buffers, &records));
      TF_RETURN_IF_ERROR(fn(si, records));
    }
    return Status();
  }

  Status BloomCounts(OpKernelContext* ctx, Tensor* counts) override {
    const int64_t size = bloom_ ? bloom_->size() : 0;
    TF_RETURN_IF_ERROR(ctx->allocate_temp(tensorflow::DT_INT32, TensorShape({size}), counts));
    auto b = counts->flat<int32_t>();
    for (int64_t i = 0; i < size; ++i) b(i) = bloom_->Get(i);
    return Status();
  }

  Status Clear(int64_t expected_records) override {
    mutex_lock table_lock(table_mu_);
    for (auto& sp : shards_) ClearShard(*sp);
    StartTimeline();
    if (bloom_) bloom_->Clear();
    // Keys spread evenly over the shards: each index is sized for its share, as the
    // index of a table that grew to this size is (a shard with more keys grows once).
    const int64_t per_shard = expected_records / kShards;
    try {
      for (auto& sp : shards_) sp->index.Reserve(per_shard);
    } catch (const std::bad_alloc&) {
      for (auto& sp : shards_) ClearShard(*sp);
      return ResourceExhausted("table '", config_.name, "': out of memory for the index of ",
                               expected_records, " records");
    }
    return Status();
  }

  Status InsertRecords(OpKernelContext* ctx, const TableRecords& r, bool replace) override {
    TF_RETURN_IF_ERROR(CheckRecords(r));
    if (r.pending_keys.NumElements() > 0 && config_.admission != Admission::kCounter) {
      return InvalidArgument("table '", config_.name, "': the records include keys that are not "
                             "admitted, which only a table with counter admission can hold");
    }
    tf_shared_lock table_lock(table_mu_);
    TF_RETURN_IF_ERROR(
        InsertArena(ctx, r.keys, r.freqs, r.versions, &r.values, &r.slots, replace));
    return InsertArena(ctx, r.pending_keys, r.pending_freqs, r.pending_versions, nullptr, nullptr,
                       replace);
  }

  Status SetBloomCounts(const Tensor& counts) override {
    const int64_t want = bloom_ ? bloom_->size() : 0;
    if (counts.dims() != 1 || counts.NumElements() != want) {
      return InvalidArgument("table '", config_.name, "': Bloom filter counters of shape ",
                             counts.shape().DebugString(), " given, but its filter has ", want,
                             " counters");
    }
    mutex_lock table_lock(table_mu_);
    const auto b = counts.flat<int32_t>();
    for (int64_t i = 0; i < want; ++i) {
      bloom_->Set(i, static_cast<uint16_t>(std::min<int32_t>(std::max<int32_t>(b(i), 0),
                                                             CountingBloomFilter::kMaxCount)));
    }
    return Status();
  }

  int64_t Remove(OpKernelContext* ctx, const Tensor& keys, bool log) override {
    tf_shared_lock table_lock(table_mu_);
    const int64_t step = clock_.load(std::memory_order_relaxed);
    return ForEachFound(Workers(ctx), keys, [&](Shard& s, int64_t pos, int64_t) {
      if (log) LogRemoval(s, pos, step);
      EraseAt(s, pos);
      return true;
    });
  }

  int64_t Evict(OpKernelContext* ctx, int64_t step, int64_t max_staleness,
                int64_t min_freq) override {
    tf_shared_lock table_lock(table_mu_);
    AdvanceClock(step);
    // step - version > max_staleness as version < step - max_staleness: with step
    // and max_staleness >= 0 (checked by the op) this cannot overflow, and it is
    // exact for every version.
    const int64_t oldest_kept = max_staleness >= 0 ? step - max_staleness : 0;
    std::array<int64_t, kShards> removed{};
    auto evict = [&](int64_t first, int64_t last) {
      for (int64_t si = first; si < last; ++si) {
        Shard& s = *shards_[si];
        mutex_lock lock(s.mu);
        std::vector<uint32_t> doomed;
        for (size_t pos = 0; pos < s.index.capacity(); ++pos) {
          const uint64_t e = s.index.entry(pos);
          if (e == 0) continue;
          const uint32_t ref = HashIndex::Ref(e);
          char* rec = Record(s, ref);
          const bool stale = max_staleness >= 0 && Version(rec) < oldest_kept;
          const bool rare = min_freq > 0 && !(ref & kPendingBit) && Freq(rec) < min_freq;
          if (stale || rare) doomed.push_back(ref);
        }
        for (uint32_t ref : doomed) {
          const int64_t pos =
              s.index.Find(KeyCodec<K>::Hash(KeyWord(Record(s, ref))),
                           [&](uint32_t r) { return r == ref; });
          LogRemoval(s, pos, step);
          EraseAt(s, pos);
        }
        removed[si] = doomed.size();
      }
    };
    const CpuWorkers& workers = Workers(ctx);
    tensorflow::Shard(workers.num_threads, workers.workers, kShards, 1 << 20, evict);
    int64_t total = 0;
    for (int64_t r : removed) total += r;
    return total;
  }

  Status SetSlots(const std::vector<float>& slot_init) override {
    mutex_lock table_lock(table_mu_);
    const int64_t old_slots = config_.num_slots;
    const int64_t new_slots = slot_init.size();
    if (new_slots != old_slots) {
      const int64_t dim = config_.dim;
      const size_t keep =
          kValueOffset + sizeof(float) * dim * (1 + std::min(old_slots, new_slots));
      const size_t stride = RowStride(dim, new_slots);
      // Every shard's new rows first, so that running out of memory changes nothing.
      std::vector<RowArena> rows;
      try {
        rows.reserve(kShards);
        for (auto& sp : shards_) {
          rows.push_back(sp->rows.Restrided(stride, [&](char* dst, const char* src) {
            std::memcpy(dst, src, keep);
            float* slots = Value(dst) + dim;
            for (int64_t k = old_slots; k < new_slots; ++k) {
              std::fill(slots + k * dim, slots + (k + 1) * dim, slot_init[k]);
            }
          }));
        }
      } catch (const std::bad_alloc&) {
        return ResourceExhausted("table '", config_.name, "': out of memory giving its rows ",
                                 new_slots, " slot(s), ", stride, " bytes per row");
      }
      for (int s = 0; s < kShards; ++s) shards_[s]->rows = std::move(rows[s]);
      row_stride_ = stride;
      config_.num_slots = new_slots;
    }
    config_.slot_init = slot_init;
    return Status();
  }

  void Stats(int64_t* admitted, int64_t* pending, int64_t* bytes) override {
    tf_shared_lock table_lock(table_mu_);
    *admitted = *pending = 0;
    *bytes = sizeof(*this) + (bloom_ ? bloom_->bytes() : 0);
    for (auto& sp : shards_) {
      Shard& s = *sp;
      tf_shared_lock lock(s.mu);
      *admitted += s.rows.live();
      *pending += s.pending.live();
      *bytes += sizeof(Shard) + s.index.bytes() + s.rows.bytes() + s.pending.bytes() +
                s.key_heap_bytes;
    }
  }

 private:
  struct Shard {
    explicit Shard(size_t row_stride) : rows(row_stride), pending(kValueOffset) {}
    mutex mu;
    HashIndex index;
    RowArena rows;     // admitted records
    RowArena pending;  // counter admission: keys not admitted yet (no value)
    size_t key_heap_bytes = 0;
    // Keys removed (Remove, Evict) at removed_steps, oldest first; complete for
    // steps >= removals_since (see LogRemoval).
    std::vector<K> removed_keys;
    std::vector<int64_t> removed_steps;
    int64_t removals_since = 0;
  };
  static constexpr size_t kMinRemovalLog = 1 << 14;

  static size_t RowStride(int64_t dim, int64_t num_slots) {
    return (kValueOffset + sizeof(float) * dim * (1 + num_slots) + 7) & ~size_t{7};
  }

  const Shard& ShardOf(uint64_t hash) const { return *shards_[hash >> (64 - kShardBits)]; }

  static char* Record(const Shard& s, uint32_t ref) {
    return (ref & kPendingBit) ? s.pending.Row(ref & ~kPendingBit) : s.rows.Row(ref);
  }

  static auto SameKey(const Shard& s, const K& key) {
    return [&s, &key](uint32_t ref) {
      return KeyCodec<K>::Equal(KeyWord(Record(s, ref)), key);
    };
  }

  // Prefetches the cache lines of the key's record from byte `from` to the end
  // of its value when its entry sits at its home position (most keys; its index
  // entry was prefetched earlier); a new key prefetches nothing.
  // Always inlined: GCC counts a prefetch as no side effect, so a call left out of
  // line is taken for a pure function whose result is unused, and deleted.
  [[gnu::always_inline]] void PrefetchRecord(const Shard& s, uint64_t hash, size_t from) const {
    const uint64_t e = s.index.entry(s.index.HomeOf(hash));
    if (e == 0 || !HashIndex::SameTag(e, hash)) return;
    const uint32_t ref = HashIndex::Ref(e);
    const char* rec = Record(s, ref);
    const size_t end =
        kValueOffset + ((ref & kPendingBit) ? 0 : sizeof(float) * config_.dim);
    PrefetchLines<0>(rec + from, rec + end);
  }

  static constexpr int64_t kMinKeysPerTask = 2048;

  // Tasks for a batch of n keys on the intra-op threads: up to 16 per thread, of
  // at least kMinKeysPerTask keys, so that the threads finish together (a thread
  // the machine delays leaves its share to the others); one for a small batch.
  static int64_t NumTasks(const tensorflow::DeviceBase::CpuWorkerThreads& workers, int64_t n) {
    return std::max<int64_t>(1, std::min<int64_t>(16 * workers.num_threads, n / kMinKeysPerTask));
  }

  // Hashes the keys and splits them into parts (see Batch).
  Batch Split(OpKernelContext* ctx, const K* keys, int64_t n) const {
    Batch b = StartSplit(Workers(ctx), n);
    ParallelTasks(Workers(ctx), NumBlocks(b),
                  [&](int64_t t) { HashBlock(keys, t, &b); });
    ChooseParts(&b);
    return b;
  }

  // Calls visit(shard, shard index, i, hash) for each key of a split batch (see
  // VisitPart).
  template <typename Visit>
  void ForEachKey(OpKernelContext* ctx, const K* keys, const Batch& b, const Visit& visit) {
    ParallelTasks(Workers(ctx), NumParts(b),
                  [&](int64_t p) { VisitPart(keys, b, p, visit); });
  }

  // Split and ForEachKey in one dispatch to the pool. ahead(i) is called for
  // key i shortly before it is visited (see VisitPart).
  template <typename Visit, typename Ahead = NothingAhead>
  void SplitAndVisit(const CpuWorkers& workers, const K* keys, int64_t n, const Visit& visit,
                     const Ahead& ahead = Ahead()) {
    Batch b = StartSplit(workers, n);
    const TaskFn hash = [&](int64_t t) { HashBlock(keys, t, &b); };
    const std::function<int64_t()> plan = [&] { return ChooseParts(&b); };
    const TaskFn walk = [&](int64_t p) { VisitPart(keys, b, p, visit, ahead); };
    ParallelRounds(workers, NumBlocks(b), hash, &plan, &walk);
  }

  // A batch of n keys in NumTasks blocks, not hashed yet.
  static Batch StartSplit(const CpuWorkers& workers, int64_t n) {
    const int64_t blocks = NumTasks(workers, n);
    Batch b;
    b.hashes.reset(new uint64_t[n]);
    b.sorted.reset(new BatchKey[n]);
    b.block_begin.resize(blocks + 1);
    for (int64_t t = 0; t <= blocks; ++t) b.block_begin[t] = n * t / blocks;
    b.shard_begin.resize(blocks);
    return b;
  }

  static int64_t NumBlocks(const Batch& b) { return static_cast<int64_t>(b.shard_begin.size()); }
  static int64_t NumParts(const Batch& b) { return static_cast<int64_t>(b.first_shard.size()) - 1; }

  // Hashes block t's keys and sorts them by shard.
  static void HashBlock(const K* keys, int64_t t, Batch* b) {
    const int64_t first = b->block_begin[t];
    const int64_t last = b->block_begin[t + 1];
    std::array<uint32_t, kShards + 1>& begin = b->shard_begin[t];
    begin.fill(0);
    for (int64_t i = first; i < last; ++i) {
      b->hashes[i] = HashKey(keys[i]);
      ++begin[ShardIndex(b->hashes[i]) + 1];
    }
    for (int s = 0; s < kShards; ++s) begin[s + 1] += begin[s];
    std::array<uint32_t, kShards> cursor;
    std::copy(begin.begin(), begin.end() - 1, cursor.begin());
    BatchKey* block = b->sorted.get() + first;
    for (int64_t i = first; i < last; ++i) {
      const uint64_t h = b->hashes[i];
      block[cursor[ShardIndex(h)]++] = BatchKey{h, static_cast<uint32_t>(i)};
    }
  }

  // Once every block is hashed: counts each shard's keys and groups the shards
  // into parts of about kMinKeysPerTask keys, at most one per shard (small parts
  // keep the threads' shares even at the end of the batch). Returns the number
  // of parts.
  static int64_t ChooseParts(Batch* b) {
    b->shard_keys.assign(kShards, 0);
    for (const auto& begin : b->shard_begin) {
      for (int s = 0; s < kShards; ++s) b->shard_keys[s] += begin[s + 1] - begin[s];
    }
    const int64_t n = b->block_begin.back();
    const int64_t parts = std::max<int64_t>(1, std::min<int64_t>(kShards, n / kMinKeysPerTask));
    b->first_shard.assign(1, 0);
    int64_t cumulative = 0;
    for (int s = 0; s < kShards; ++s) {
      cumulative += b->shard_keys[s];
      const int64_t p = static_cast<int64_t>(b->first_shard.size());
      if (s + 1 == kShards || (p < parts && cumulative * parts >= p * n)) {
        b->first_shard.push_back(s + 1);
      }
    }
    return NumParts(*b);
  }

  // Calls visit(shard, shard index, i, hash) for each key of part p, under its
  // shard's exclusive lock: the part holds the locks of its shards and visits
  // each shard's keys in input order (so occurrences of one key are visited in
  // input order), prefetching index entries and records ahead; ahead(i) is
  // called when key i's record is prefetched.
  template <typename Visit, typename Ahead = NothingAhead>
  void VisitPart(const K* keys, const Batch& b, int64_t p, const Visit& visit,
                 const Ahead& ahead = Ahead()) {
    const int lo = b.first_shard[p];
    const int hi = b.first_shard[p + 1];
    const std::vector<BatchKey> part = b.PartKeys(p);
    const int64_t m = static_cast<int64_t>(part.size());
    for (int s = lo; s < hi; ++s) shards_[s]->mu.lock();
    constexpr int64_t kAhead = 16;
    for (int64_t t = 0; t < m; ++t) {
      if (t + kAhead < m) {
        const BatchKey& a = part[t + kAhead];
        ShardOf(a.hash).index.Prefetch(a.hash);
        __builtin_prefetch(keys + a.i);
      }
      if (t + kAhead / 2 < m) {
        const BatchKey& a = part[t + kAhead / 2];
        PrefetchRecord(ShardOf(a.hash), a.hash, 0);
        ahead(a.i);
      }
      const int si = ShardIndex(part[t].hash);
      visit(*shards_[si], si, part[t].i, part[t].hash);
    }
    for (int s = lo; s < hi; ++s) shards_[s]->mu.unlock();
  }

  // FindOrInsertUnique's walk of part p (keys: its keys, see Batch::PartKeys):
  // finds the distinct keys of the part (their first occurrences go to *first),
  // looks each up once with its count (c: per key, or null: 1 each) under the
  // part's shard locks, writes its value to the row of its first occurrence and
  // copies that to the other occurrences; index[i] is the key's position among the
  // part's distinct keys.
  // False when memory for a new row ran out (that key is left out).
  bool DedupAndInsert(const K* k, const int64_t* c, const Batch& b, int64_t p,
                      const std::vector<BatchKey>& keys, int64_t step, float* rows,
                      int64_t* index, std::vector<int64_t>* first) {
    const int64_t m = static_cast<int64_t>(keys.size());
    const int64_t dim = config_.dim;
    const int64_t weight = counting() ? 1 : 0;
    // DistinctKeys probes the low bits of the key hash (the shards take the top bits).
    DistinctKeys<K> distinct(k, m);
    for (const BatchKey& a : keys) {
      index[a.i] = distinct.Add(a.i, a.hash, c == nullptr ? 1 : c[a.i]);
    }
    const std::vector<uint64_t>& hashes = distinct.hashes;
    const int lo = b.first_shard[p];
    const int hi = b.first_shard[p + 1];
    for (int s = lo; s < hi; ++s) shards_[s]->mu.lock();
    bool complete = true;
    constexpr int64_t kAhead = 16;
    const int64_t n = distinct.size();
    for (int64_t u = 0; u < n; ++u) {
      if (u + kAhead < n) ShardOf(hashes[u + kAhead]).index.Prefetch(hashes[u + kAhead]);
      if (u + kAhead / 2 < n) PrefetchRecord(ShardOf(hashes[u + kAhead / 2]),
                                             hashes[u + kAhead / 2], 0);
      Shard& s = *shards_[ShardIndex(hashes[u])];
      const int64_t i = distinct.first[u];
      bool failed = false;
      FindOrInsertCopy(s, hashes[u], k[i], weight * distinct.counts[u], step, rows + i * dim,
                       &failed);
      if (failed) complete = false;
    }
    for (int s = lo; s < hi; ++s) shards_[s]->mu.unlock();
    for (const BatchKey& a : keys) {
      const int64_t i0 = distinct.first[index[a.i]];
      if (i0 != a.i) std::memcpy(rows + a.i * dim, rows + i0 * dim, sizeof(float) * dim);
    }
    *first = std::move(distinct.first);
    return complete;
  }

  // Calls fn(shard, index position, i) for each keys[i] present in the table, under
  // its shard's exclusive lock; returns how many calls returned true.
  template <typename Fn>
  int64_t ForEachFound(const CpuWorkers& workers, const Tensor& keys, const Fn& fn) {
    const K* k = keys.flat<K>().data();
    std::array<int64_t, kShards> counted{};
    SplitAndVisit(workers, k, keys.NumElements(), [&](Shard& s, int si, int64_t i, uint64_t h) {
      const int64_t pos = s.index.Find(h, SameKey(s, k[i]));
      if (pos != HashIndex::kNotFound && fn(s, pos, i)) ++counted[si];
    });
    int64_t total = 0;
    for (int64_t c : counted) total += c;
    return total;
  }

  void InitRow(char* rec, uint64_t hash) const {
    float* value = Value(rec);
    config_.initializer.Fill(hash, value, config_.dim);
    for (int64_t s = 0; s < config_.num_slots; ++s) {
      std::fill(value + (s + 1) * config_.dim, value + (s + 2) * config_.dim,
                config_.slot_init[s]);
    }
  }

  // Stores the key in the key word of row r of `arena`; when that fails (a string
  // key's allocation), frees the row again and rethrows.
  static void StoreKey(Shard& s, RowArena& arena, uint32_t r, const K& key) {
    try {
      s.key_heap_bytes += KeyCodec<K>::Store(KeyWord(arena.Row(r)), key);
    } catch (const std::bad_alloc&) {
      arena.Free(r);
      throw;
    }
  }

  char* NewRow(Shard& s, size_t pos, uint64_t hash, const K& key) {
    const uint32_t r = s.rows.Allocate();
    // A part visits each shard's keys in long runs, so new rows come in sequence.
    s.rows.PrefetchNewRow(4);
    StoreKey(s, s.rows, r, key);
    s.index.Insert(pos, hash, r);
    return s.rows.Row(r);
  }

  char* NewPending(Shard& s, size_t pos, uint64_t hash, const K& key) {
    const uint32_t r = s.pending.Allocate();
    StoreKey(s, s.pending, r, key);
    s.index.Insert(pos, hash, r | kPendingBit);
    return s.pending.Row(r);
  }

  // Moves a pending record to a new admitted row (the key word moves with it).
  char* Promote(Shard& s, size_t pos, uint64_t hash, uint32_t ref) {
    char* old = s.pending.Row(ref & ~kPendingBit);
    const uint32_t r = s.rows.Allocate();
    char* rec = s.rows.Row(r);
    std::memcpy(rec, old, kValueOffset);  // freq, version, touched, key word
    InitRow(rec, hash);
    s.pending.Free(ref & ~kPendingBit);
    s.index.Set(pos, hash, r);
    return rec;
  }

  // FindOrInsertLocked, then copies the key's value to `out`, or the default value while
  // the key is not admitted or when its row could not be allocated (*failed is set then;
  // the shard is left as it was). Returns whether the key has a row.
  bool FindOrInsertCopy(Shard& s, uint64_t h, const K& key, int64_t count, int64_t step,
                        float* out, bool* failed) {
    char* rec = nullptr;
    try {
      rec = FindOrInsertLocked(s, h, key, count, step);
    } catch (const std::bad_alloc&) {
      *failed = true;
    }
    std::memcpy(out, rec ? Value(rec) : config_.default_value.data(),
                sizeof(float) * config_.dim);
    return rec != nullptr;
  }

  // Returns the admitted record, or nullptr while the key is not admitted.
  char* FindOrInsertLocked(Shard& s, uint64_t h, const K& key, int64_t count, int64_t step) {
    if (s.index.Full()) s.index.Grow();
    size_t ins;
    const int64_t pos = s.index.Find(h, SameKey(s, key), &ins);
    if (pos != HashIndex::kNotFound) {
      const uint32_t ref = HashIndex::Ref(s.index.entry(pos));
      char* rec = Record(s, ref);
      Freq(rec) = AddCount(Freq(rec), count);
      if (!(ref & kPendingBit)) {
        if (count != 0) Touched(rec) = step;
        return rec;
      }
      Version(rec) = step;
      Touched(rec) = step;
      return Freq(rec) >= config_.min_count ? Promote(s, pos, h, ref) : nullptr;
    }
    int64_t freq = count;
    switch (config_.admission) {
      case Admission::kNone:
        break;
      case Admission::kCounter:
        if (count < config_.min_count) {
          char* rec = NewPending(s, ins, h, key);
          Freq(rec) = count;
          Version(rec) = step;
          Touched(rec) = step;
          return nullptr;
        }
        break;
      case Admission::kBloom:
        freq = bloom_->Add(h, count);
        if (freq < config_.min_count) return nullptr;
        break;
    }
    char* rec = NewRow(s, ins, h, key);
    Freq(rec) = freq;
    Version(rec) = step;
    Touched(rec) = step;
    InitRow(rec, h);
    return rec;
  }

  void EraseAt(Shard& s, int64_t pos) {
    const uint32_t ref = HashIndex::Ref(s.index.entry(pos));
    s.index.Erase(pos);
    s.key_heap_bytes -= KeyCodec<K>::Release(KeyWord(Record(s, ref)));
    if (ref & kPendingBit) {
      s.pending.Free(ref & ~kPendingBit);
    } else {
      s.rows.Free(ref);
    }
  }

  // Empties a shard (its keys, index, rows and pending records); allocates nothing.
  void ClearShard(Shard& s) {
    ReleaseAllKeys(s);
    s.index.Clear();
    s.rows.Clear();
    s.pending.Clear();
    s.removed_keys.clear();
    s.removed_steps.clear();
    s.removals_since = 0;
  }

  Status OutOfMemoryForRows() const {
    return ResourceExhausted("table '", config_.name, "': out of memory for new rows of ",
                             row_stride_, " bytes each");
  }

  Status OutOfMemoryForImport(int64_t n) const {
    return ResourceExhausted("table '", config_.name, "': out of memory importing ", n,
                             " records of ", row_stride_, " bytes each; the table is left empty");
  }

  // Copies shard s's records (see ForEachShardRecords) under its lock, reading
  // its arenas in row order.
  Status CopyShard(OpKernelContext* ctx, Shard& s, TableRecords* buffers, TableRecords* out) {
    tf_shared_lock lock(s.mu);
    const int64_t dim = config_.dim;
    const int64_t num_slots = config_.num_slots;
    const int64_t n = s.rows.live();
    const int64_t m = s.pending.live();
    const DataType key_dtype = KeyCodec<K>::kDtype;
    const DataType i64 = tensorflow::DT_INT64;
    const DataType f32 = tensorflow::DT_FLOAT;
    TF_RETURN_IF_ERROR(AllocateRecords(key_dtype, TensorShape({n}), &buffers->keys, &out->keys));
    TF_RETURN_IF_ERROR(AllocateRecords(f32, TensorShape({n, dim}), &buffers->values, &out->values));
    TF_RETURN_IF_ERROR(AllocateRecords(f32, TensorShape({n, num_slots, dim}), &buffers->slots, &out->slots));
    TF_RETURN_IF_ERROR(AllocateRecords(i64, TensorShape({n}), &buffers->freqs, &out->freqs));
    TF_RETURN_IF_ERROR(AllocateRecords(i64, TensorShape({n}), &buffers->versions, &out->versions));
    TF_RETURN_IF_ERROR(AllocateRecords(key_dtype, TensorShape({m}), &buffers->pending_keys, &out->pending_keys));
    TF_RETURN_IF_ERROR(AllocateRecords(i64, TensorShape({m}), &buffers->pending_freqs, &out->pending_freqs));
    TF_RETURN_IF_ERROR(AllocateRecords(i64, TensorShape({m}), &buffers->pending_versions, &out->pending_versions));
    CopyArena(ctx, s.rows, out->keys.flat<K>().data(), out->freqs.flat<int64_t>().data(),
              out->versions.flat<int64_t>().data(), out->values.flat<float>().data(),
              out->slots.flat<float>().data());
    CopyArena(ctx, s.pending, out->pending_keys.flat<K>().data(),
              out->pending_freqs.flat<int64_t>().data(),
              out->pending_versions.flat<int64_t>().data(), nullptr, nullptr);
    return Status();
  }

  // A tensor for copied records: a slice of `buffer`, from the CPU allocator (so that
  // any thread may allocate it, not only the op's), grown by an eighth more than asked
  // when it is too small.
  Status AllocateRecords(DataType dtype, const TensorShape& shape, Tensor* buffer,
                         Tensor* out) const {
    if (!buffer->IsInitialized() || buffer->dtype() != dtype || buffer->dims() != shape.dims() ||
        buffer->dim_size(0) < shape.dim_size(0)) {
      TensorShape grown = shape;
      grown.set_dim(0, shape.dim_size(0) + shape.dim_size(0) / 8);
      *buffer = Tensor(tensorflow::cpu_allocator(), dtype, grown);
      if (grown.num_elements() > 0 && !buffer->IsInitialized()) {
        return ResourceExhausted("table '", config_.name, "': out of memory copying records (",
                                 grown.DebugString(), " ", tensorflow::DataTypeString(dtype),
                                 ")");
      }
    }
    *out = buffer->Slice(0, shape.dim_size(0));
    return Status();
  }

  // Copies the live rows of `arena` in row order, in parallel over row ranges:
  // keys, freqs and versions, and values and slots unless `values` is null.
  void CopyArena(OpKernelContext* ctx, const RowArena& arena, K* keys, int64_t* freqs,
                 int64_t* versions, float* values, float* slots) const {
    const int64_t high = arena.high();
    std::vector<uint8_t> freed(high, 0);
    for (uint32_t r : arena.free_rows()) freed[r] = 1;
    const CpuWorkers& workers = Workers(ctx);
    const int64_t tasks = NumTasks(workers, high);
    std::vector<int64_t> first_out(tasks + 1, 0);  // task t writes from first_out[t]
    ParallelTasks(workers, tasks, [&](int64_t t) {
      int64_t live = 0;
      for (int64_t r = high * t / tasks; r < high * (t + 1) / tasks; ++r) live += !freed[r];
      first_out[t + 1] = live;
    });
    for (int64_t t = 0; t < tasks; ++t) first_out[t + 1] += first_out[t];
    const int64_t dim = config_.dim;
    const int64_t slot_floats = config_.num_slots * dim;
    ParallelTasks(workers, tasks, [&](int64_t t) {
      int64_t o = first_out[t];
      for (int64_t r = high * t / tasks; r < high * (t + 1) / tasks; ++r) {
        if (freed[r]) continue;
        char* rec = arena.Row(static_cast<uint32_t>(r));
        KeyCodec<K>::Output(KeyWord(rec), keys + o);
        freqs[o] = Freq(rec);
        versions[o] = Version(rec);
        if (values != nullptr) {
          std::memcpy(values + o * dim, Value(rec), sizeof(float) * dim);
          std::memcpy(slots + o * slot_floats, Value(rec) + dim, sizeof(float) * slot_floats);
        }
        ++o;
      }
    });
  }

  Status CheckRecords(const TableRecords& r) const {
    const int64_t n = r.keys.NumElements();
    const int64_t m = r.pending_keys.NumElements();
    const int64_t dim = config_.dim;
    const int64_t num_slots = config_.num_slots;
    if (r.keys.dtype() != KeyCodec<K>::kDtype || r.pending_keys.dtype() != KeyCodec<K>::kDtype) {
      return InvalidArgument("table '", config_.name, "' has ",
                             tensorflow::DataTypeString(KeyCodec<K>::kDtype), " keys, got ",
                             tensorflow::DataTypeString(r.keys.dtype()), " keys");
    }
    if (r.values.shape() != TensorShape({n, dim})) {
      return InvalidArgument("table '", config_.name, "' has dim ", dim, ", got values of shape ",
                             r.values.shape().DebugString(), " for ", n, " keys");
    }
    if (r.slots.shape() != TensorShape({n, num_slots, dim})) {
      return InvalidArgument("table '", config_.name, "' has ", num_slots, " slot(s) of dim ",
                             dim, ", got slots of shape ", r.slots.shape().DebugString(),
                             " for ", n, " keys");
    }
    for (const Tensor* t : {&r.freqs, &r.versions, &r.pending_freqs, &r.pending_versions}) {
      const int64_t want = (t == &r.freqs || t == &r.versions) ? n : m;
      if (t->dtype() != tensorflow::DT_INT64 || t->dims() != 1 || t->NumElements() != want) {
        return InvalidArgument("table '", config_.name, "': freqs and versions must be int64 "
                               "vectors of one element per key (", want, "), got ",
                               tensorflow::DataTypeString(t->dtype()), " of shape ",
                               t->shape().DebugString());
      }
    }
    const std::string whose = tensorflow::strings::StrCat("table '", config_.name, "': ");
    for (const Tensor* t : {&r.freqs, &r.pending_freqs}) {
      TF_RETURN_IF_ERROR(CheckNonNegative(whose, kFreqsAre, *t));
    }
    for (const Tensor* t : {&r.versions, &r.pending_versions}) {
      TF_RETURN_IF_ERROR(CheckNonNegative(whose, kVersionsAre, *t));
    }
    return Status();
  }

  // Inserts the records of keys (admitted with values and slots unless `values`
  // is null, else pending); see InsertRecords.
  // With `replace`, a key already there (admitted or pending) is replaced.
  Status InsertArena(OpKernelContext* ctx, const Tensor& keys, const Tensor& freqs,
                     const Tensor& versions, const Tensor* values, const Tensor* slots,
                     bool replace) {
    const K* k = keys.flat<K>().data();
    const int64_t* f = freqs.flat<int64_t>().data();
    const int64_t* ver = versions.flat<int64_t>().data();
    const float* v = values ? values->flat<float>().data() : nullptr;
    const float* sl = slots ? slots->flat<float>().data() : nullptr;
    const int64_t dim = config_.dim;
    const int64_t slot_floats = config_.num_slots * dim;
    std::atomic<int64_t> duplicate{-1};
    std::atomic<bool> out_of_memory{false};
    SplitAndVisit(Workers(ctx), k, keys.NumElements(), [&](Shard& s, int, int64_t i, uint64_t h) {
      if (out_of_memory.load(std::memory_order_relaxed)) return;
      try {
        if (s.index.Full()) s.index.Grow();
        size_t ins;
        const int64_t pos = s.index.Find(h, SameKey(s, k[i]), &ins);
        if (pos != HashIndex::kNotFound) {
          if (!replace) {
            duplicate.store(i, std::memory_order_relaxed);
            return;
          }
          EraseAt(s, pos);
          s.index.Find(h, SameKey(s, k[i]), &ins);
        }
        char* rec = v ? NewRow(s, ins, h, k[i]) : NewPending(s, ins, h, k[i]);
        Freq(rec) = f[i];
        Version(rec) = ver[i];
        Touched(rec) = kUntouched;
        if (v) {
          std::memcpy(Value(rec), v + i * dim, sizeof(float) * dim);
          std::memcpy(Value(rec) + dim, sl + i * slot_floats, sizeof(float) * slot_floats);
        }
      } catch (const std::bad_alloc&) {
        out_of_memory.store(true, std::memory_order_relaxed);
      }
    });
    if (out_of_memory.load()) {
      return ResourceExhausted("table '", config_.name, "': out of memory restoring records of ",
                               row_stride_, " bytes each");
    }
    if (duplicate.load() >= 0) {
      return InvalidArgument("table '", config_.name, "': the records hold a key twice (at ",
                             "position ", duplicate.load(), " of a part of ", keys.NumElements(),
                             ")");
    }
    return Status();
  }

  Status Changes(OpKernelContext* ctx, int64_t since, int64_t expired_from,
                 int64_t expired_before, bool with_slots, TableRecords* out,
                 Tensor* removed_keys, Tensor* expired_keys) override {
    tf_shared_lock table_lock(table_mu_);
    std::array<ShardChanges, kShards> parts;
    std::atomic<int> too_old{-1};
    const int64_t slot_floats = with_slots ? config_.num_slots * config_.dim : 0;
    auto select = [&](int64_t first, int64_t last) {
      for (int64_t si = first; si < last; ++si) {
        Shard& s = *shards_[si];
        tf_shared_lock lock(s.mu);
        if (since < s.removals_since) {
          too_old.store(static_cast<int>(si));
          continue;
        }
        SelectChanges(s, since, expired_from, expired_before, slot_floats, &parts[si]);
      }
    };
    const CpuWorkers& workers = Workers(ctx);
    tensorflow::Shard(workers.num_threads, workers.workers, kShards, 1 << 20, select);
    if (too_old.load() >= 0) {
      return tensorflow::errors::FailedPrecondition(
          "table '", config_.name, "' remembers the keys it removed since step ",
          shards_[too_old.load()]->removals_since, " only, not since step ", since,
          ": a delta since then cannot be computed; write a full one");
    }
    return GatherChanges(parts, slot_floats, out, removed_keys, expired_keys);
  }

  void ChangeState(int64_t* timeline, int64_t* removals_since, int64_t* clock) override {
    tf_shared_lock table_lock(table_mu_);
    *timeline = timeline_;
    *clock = clock_.load();
    *removals_since = 0;
    for (auto& sp : shards_) {
      tf_shared_lock lock(sp->mu);
      *removals_since = std::max(*removals_since, sp->removals_since);
    }
  }

  // What Changes selects from one shard.
  struct ShardChanges {
    std::vector<K> keys, pending_keys, removed, expired;
    std::vector<float> values, slots;
    std::vector<int64_t> freqs, versions, pending_freqs, pending_versions;
  };

  // Under shard s's lock: its records touched at or after `since` (admitted ones with
  // values and slot_floats floats of slots), its admitted keys untouched since then
  // with a version in [expired_from, expired_before), and its keys removed since then
  // that are not back.
  void SelectChanges(Shard& s, int64_t since, int64_t expired_from, int64_t expired_before,
                     int64_t slot_floats, ShardChanges* c) const {
    const int64_t dim = config_.dim;
    for (int arena = 0; arena < 2; ++arena) {
      const RowArena& rows = arena == 0 ? s.rows : s.pending;
      std::vector<uint8_t> freed(rows.high(), 0);
      for (uint32_t r : rows.free_rows()) freed[r] = 1;
      for (uint32_t r = 0; r < rows.high(); ++r) {
        if (freed[r]) continue;
        char* rec = rows.Row(r);
        K key;
        if (Touched(rec) < since) {
          if (arena == 0 && Version(rec) >= expired_from && Version(rec) < expired_before) {
            KeyCodec<K>::Output(KeyWord(rec), &key);
            c->expired.push_back(std::move(key));
          }
          continue;
        }
        KeyCodec<K>::Output(KeyWord(rec), &key);
        if (arena == 0) {
          c->keys.push_back(std::move(key));
          c->freqs.push_back(Freq(rec));
          c->versions.push_back(Version(rec));
          c->values.insert(c->values.end(), Value(rec), Value(rec) + dim);
          c->slots.insert(c->slots.end(), Value(rec) + dim, Value(rec) + dim + slot_floats);
        } else {
          c->pending_keys.push_back(std::move(key));
          c->pending_freqs.push_back(Freq(rec));
          c->pending_versions.push_back(Version(rec));
        }
      }
    }
    for (size_t i = 0; i < s.removed_keys.size(); ++i) {
      const K& key = s.removed_keys[i];
      if (s.removed_steps[i] >= since &&
          s.index.Find(HashKey(key), SameKey(s, key)) == HashIndex::kNotFound) {
        c->removed.push_back(key);  // gone, not back again
      }
    }
    std::sort(c->removed.begin(), c->removed.end());  // each once
    c->removed.erase(std::unique(c->removed.begin(), c->removed.end()), c->removed.end());
  }

  // The shards' selections, one after another, as the outputs of Changes.
  Status GatherChanges(const std::array<ShardChanges, kShards>& parts, int64_t slot_floats,
                       TableRecords* out, Tensor* removed_keys, Tensor* expired_keys) const {
    const DataType key_dtype = KeyCodec<K>::kDtype;
    const DataType i64 = tensorflow::DT_INT64;
    const DataType f32 = tensorflow::DT_FLOAT;
    int64_t n = 0, m = 0, removed = 0, expired = 0;
    for (const auto& c : parts) {
      n += c.keys.size();
      m += c.pending_keys.size();
      removed += c.removed.size();
      expired += c.expired.size();
    }
    const int64_t dim = config_.dim;
    const int64_t slots_per_key = slot_floats / dim;
    struct Field {
      Tensor* tensor;
      DataType dtype;
      TensorShape shape;
    };
    const Field fields[] = {
        {&out->keys, key_dtype, TensorShape({n})},
        {&out->values, f32, TensorShape({n, dim})},
        {&out->slots, f32, TensorShape({n, slots_per_key, dim})},
        {&out->freqs, i64, TensorShape({n})},
        {&out->versions, i64, TensorShape({n})},
        {&out->pending_keys, key_dtype, TensorShape({m})},
        {&out->pending_freqs, i64, TensorShape({m})},
        {&out->pending_versions, i64, TensorShape({m})},
        {removed_keys, key_dtype, TensorShape({removed})},
        {expired_keys, key_dtype, TensorShape({expired})}};
    for (const Field& f : fields) {
      *f.tensor = Tensor(tensorflow::cpu_allocator(), f.dtype, f.shape);
      if (f.shape.num_elements() > 0 && !f.tensor->IsInitialized()) {
        return ResourceExhausted("table '", config_.name, "': out of memory for its changes (",
                                 f.shape.DebugString(), ")");
      }
    }
    auto append = [](const auto& from, Tensor* to, int64_t* at) {
      using T = typename std::decay_t<decltype(from)>::value_type;
      std::copy(from.begin(), from.end(), to->flat<T>().data() + *at);
      *at += from.size();
    };
    int64_t at[10] = {};
    for (const auto& c : parts) {
      append(c.keys, &out->keys, &at[0]);
      append(c.values, &out->values, &at[1]);
      append(c.slots, &out->slots, &at[2]);
      append(c.freqs, &out->freqs, &at[3]);
      append(c.versions, &out->versions, &at[4]);
      append(c.pending_keys, &out->pending_keys, &at[5]);
      append(c.pending_freqs, &out->pending_freqs, &at[6]);
      append(c.pending_versions, &out->pending_versions, &at[7]);
      append(c.removed, removed_keys, &at[8]);
      append(c.expired, expired_keys, &at[9]);
    }
    return Status();
  }

  // Remembers the key at index position pos as removed at `step` (see Changes). A
  // shard's log keeps at most max(kMinRemovalLog, half its records) keys: past that
  // the oldest half is forgotten, and deltas since their steps become impossible.
  void LogRemoval(Shard& s, int64_t pos, int64_t step) {
    K key;
    KeyCodec<K>::Output(KeyWord(Record(s, HashIndex::Ref(s.index.entry(pos)))), &key);
    s.removed_keys.push_back(std::move(key));
    s.removed_steps.push_back(step);
    const size_t limit = std::max<size_t>(kMinRemovalLog, (s.rows.live() + s.pending.live()) / 2);
    if (s.removed_keys.size() <= limit) return;
    const size_t drop = s.removed_keys.size() - limit / 2;
    const int64_t newest_dropped =
        *std::max_element(s.removed_steps.begin(), s.removed_steps.begin() + drop);
    s.removals_since = std::max(s.removals_since, newest_dropped + 1);
    s.removed_keys.erase(s.removed_keys.begin(), s.removed_keys.begin() + drop);
    s.removed_steps.erase(s.removed_steps.begin(), s.removed_steps.begin() + drop);
  }

  void AdvanceClock(int64_t step) {
    int64_t seen = clock_.load(std::memory_order_relaxed);
    while (step > seen && !clock_.compare_exchange_weak(seen, step)) {
    }
  }

  // A restore or import replaces the records: changes are counted from scratch.
  void StartTimeline() {
    std::random_device device;
    timeline_ = (static_cast<int64_t>(device()) << 31) ^ device();
    clock_.store(0);
  }

  void ReleaseAllKeys(Shard& s) {
    for (size_t pos = 0; pos < s.index.capacity(); ++pos) {
      const uint64_t e = s.index.entry(pos);
      if (e != 0) KeyCodec<K>::Release(KeyWord(Record(s, HashIndex::Ref(e))));
    }
    s.key_heap_bytes = 0;
  }

  size_t row_stride_;
  // Batch ops hold it shared (and lock their shards); Export and Import hold it
  // exclusively, so they see or replace the whole table at one point in time.
  mutex table_mu_;
  std::array<std::unique_ptr<Shard>, kShards> shards_;
  std::unique_ptr<CountingBloomFilter> bloom_;
  std::atomic<int64_t> clock_{0};  // the largest step of a change so far
  int64_t timeline_ = 0;           // set by StartTimeline
};

}  // namespace

Status CreateKvTable(DataType key_dtype, const TableConfig& config, KvTableBase** table) {
  if (key_dtype != tensorflow::DT_INT64 && key_dtype != tensorflow::DT_STRING) {
    return InvalidArgument("key_dtype must be int64 or string, got ",
                           tensorflow::DataTypeString(key_dtype));
  }
  // Allocated before the table: a table (a ref-counted resource) must never be
  // destroyed by an exception from its constructor.
  std::unique_ptr<CountingBloomFilter> bloom;
  if (config.admission == Admission::kBloom) {
    try {
      bloom.reset(new CountingBloomFilter(config.bloom_counters, config.bloom_hashes));
    } catch (const std::bad_alloc&) {
      return ResourceExhausted("table '", config.name, "': out of memory for its counting Bloom "
                               "filter of ", config.bloom_counters, " counters (",
                               config.bloom_counters * sizeof(uint16_t), " bytes)");
    }
  }
  if (key_dtype == tensorflow::DT_INT64) {
    *table = new KvTable<int64_t>(config, std::move(bloom));
  } else {
    *table = new KvTable<tstring>(config, std::move(bloom));
  }
  return Status();
}

}  // namespace deeprec_lite
