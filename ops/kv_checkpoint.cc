// Streaming checkpoints of KV tables, in TensorFlow's own checkpoint format.
//
// DrlKvSave writes tables into tensor bundles (the files of a V2 checkpoint,
// which MergeV2Checkpoints then merges with the rest of the checkpoint), each
// written by a thread of its own one of the table's internal shards at a time:
// the extra memory of a save is one shard's copy per thread, about 1/32 of the
// table each, whatever its size. Under the table
// object's checkpoint name, a partition `p` of a variable of `P` partitions (0 of
// 1 for a plain one) holds
//   <object>/.KV_TABLE/part-<p>-of-<P>/chunk-<c>/{keys, values, slots, freqs,
//       versions, pending_keys, pending_freqs, pending_versions}
//   <object>/.KV_TABLE/part-<p>-of-<P>/bloom_counts   (written last: the part is whole)
//   <object>/.KV_TABLE/part-<p>-of-<P>/writer-<w>     (a marker per writing thread)
// for each chunk of at most chunk_records admitted and as many pending records of
// each non-empty shard s: chunk c = s * kChunksPerShard + its number in the shard
// (ids zero-padded to 5 digits), so that a restore holds little beside the table. Every tensor has the
// crc32c checksum of the bundle format, verified when it is read.
//
// DrlKvRestore empties a table and fills it from such a checkpoint, one chunk's
// records at a time. Partition `part` of `num_parts` reads its own part when the
// checkpoint has as many, else every part, keeping the keys PartitionOf gives
// it. A damaged, truncated or missing file fails the restore with an error
// naming the file, and leaves the table empty, never partly restored.
//
// DrlKvShardRecords, DrlKvClear, DrlKvInsert, DrlKvBloomCounts and
// DrlKvSetBloomCounts move the same records between a live table and Python one
// shard at a time (deeprec_lite.kv.snapshots, warm start); DrlKvChanges,
// DrlKvChangeState and DrlKvInsert(replace=true) those of deltas
// (deeprec_lite.kv.deltas).
#include <algorithm>
#include <cstdio>
#include <cstring>
#include <map>
#include <memory>
#include <string>
#include <thread>
#include <vector>

#if defined(__linux__)
#include <fcntl.h>
#include <unistd.h>
#endif

#include "kernel_checks.h"
#include "key_hash.h"
#include "kv_table.h"
#include "tensorflow/core/framework/allocator.h"
#include "tensorflow/core/framework/common_shape_fns.h"
#include "tensorflow/core/framework/op.h"
#include "tensorflow/core/framework/op_kernel.h"
#include "tensorflow/core/framework/resource_mgr.h"
#include "tensorflow/core/platform/env.h"
#include "tensorflow/core/protobuf/tensor_bundle.pb.h"
#include "tensorflow/core/util/tensor_bundle/tensor_bundle.h"

namespace deeprec_lite {

using tensorflow::BundleReader;
using tensorflow::BundleWriter;
using tensorflow::DataType;
using tensorflow::Env;
using tensorflow::OpKernel;
using tensorflow::OpKernelConstruction;
using tensorflow::OpKernelContext;
using tensorflow::Status;
using tensorflow::Tensor;
using tensorflow::TensorShape;
using tensorflow::tstring;
using tensorflow::errors::DataLoss;
using tensorflow::errors::InvalidArgument;

REGISTER_OP("DrlKvSave")
    .Input("tables: N * resource")
    .Input("prefixes: string")
    .Input("object_names: string")
    .Input("parts: int64")
    .Input("num_parts: int64")
    .Attr("N: int >= 1")
    .Attr("chunk_records: int >= 1 = 1048576")
    .SetIsStateful()
    .SetShapeFn(tensorflow::shape_inference::NoOutputs)
    .Doc("Writes the tables into one tensor bundle per prefix, each by a thread of its own "
         "(writing into the page cache is a memory copy that one core does not saturate), "
         "one internal shard at a time per thread; table i under object_names[i] as part "
         "parts[i] of num_parts[i].");

REGISTER_OP("DrlKvShardRecords")
    .Input("table: resource")
    .Input("shard: int32")
    .Output("keys: key_dtype")
    .Output("values: float")
    .Output("slots: float")
    .Output("freqs: int64")
    .Output("versions: int64")
    .Output("pending_keys: key_dtype")
    .Output("pending_freqs: int64")
    .Output("pending_versions: int64")
    .Attr("key_dtype: {int64, string}")
    .SetIsStateful()
    .SetShapeFn([](tensorflow::shape_inference::InferenceContext* c) {
      auto n = c->UnknownDim();
      auto m = c->UnknownDim();
      c->set_output(0, c->Vector(n));
      c->set_output(1, c->Matrix(n, tensorflow::shape_inference::InferenceContext::kUnknownDim));
      c->set_output(2, c->UnknownShapeOfRank(3));
      c->set_output(3, c->Vector(n));
      c->set_output(4, c->Vector(n));
      for (int i = 5; i < 8; ++i) c->set_output(i, c->Vector(m));
      return Status();
    })
    .Doc("The records of one of the table's 32 internal shards, copied under its lock (the "
         "fields DrlKvSave writes per shard), for readers that go through a live table in "
         "bounded memory.");

REGISTER_OP("DrlKvClear")
    .Input("table: resource")
    .Input("expected_records: int64")
    .SetIsStateful()
    .SetShapeFn(tensorflow::shape_inference::NoOutputs)
    .Doc("Empties the table (records and Bloom filter), sized for about expected_records "
         "records that DrlKvInsert then adds in parts.");

REGISTER_OP("DrlKvInsert")
    .Input("table: resource")
    .Input("keys: key_dtype")
    .Input("values: float")
    .Input("slots: float")
    .Input("freqs: int64")
    .Input("versions: int64")
    .Input("pending_keys: key_dtype")
    .Input("pending_freqs: int64")
    .Input("pending_versions: int64")
    .Attr("key_dtype: {int64, string}")
    .Attr("replace: bool = false")
    .SetIsStateful()
    .SetShapeFn(tensorflow::shape_inference::NoOutputs)
    .Doc("Inserts records (the fields of DrlKvShardRecords) into the table; a key already "
         "there is an error, or with replace its record is replaced (applying a delta).");

REGISTER_OP("DrlKvChanges")
    .Input("table: resource")
    .Input("since: int64")
    .Input("expired_from: int64")
    .Input("expired_before: int64")
    .Output("keys: key_dtype")
    .Output("values: float")
    .Output("slots: float")
    .Output("freqs: int64")
    .Output("versions: int64")
    .Output("pending_keys: key_dtype")
    .Output("pending_freqs: int64")
    .Output("pending_versions: int64")
    .Output("removed_keys: key_dtype")
    .Output("expired_keys: key_dtype")
    .Attr("key_dtype: {int64, string}")
    .Attr("with_slots: bool = true")
    .SetIsStateful()
    .SetShapeFn(tensorflow::shape_inference::UnknownShape)
    .Doc("The records touched at step >= since (the fields of DrlKvShardRecords; slots "
         "empty unless with_slots), the keys removed since then and the admitted keys "
         "untouched since then with a version in [expired_from, expired_before) (see "
         "KvTableBase::Changes).");

REGISTER_OP("DrlKvChangeState")
    .Input("table: resource")
    .Output("timeline: int64")
    .Output("removals_since: int64")
    .Output("clock: int64")
    .SetIsStateful()
    .SetShapeFn(tensorflow::shape_inference::ScalarShape)
    .Doc("The table's timeline id (new when it is created, restored or imported), the "
         "step from which it remembers the keys it removed and the largest step of a "
         "change so far.");

REGISTER_OP("DrlKvBloomCounts")
    .Input("table: resource")
    .Output("counts: int32")
    .SetIsStateful()
    .SetShapeFn([](tensorflow::shape_inference::InferenceContext* c) {
      c->set_output(0, c->Vector(tensorflow::shape_inference::InferenceContext::kUnknownDim));
      return Status();
    })
    .Doc("The counters of the table's counting Bloom filter (empty without one).");

REGISTER_OP("DrlKvSetBloomCounts")
    .Input("table: resource")
    .Input("counts: int32")
    .SetIsStateful()
    .SetShapeFn(tensorflow::shape_inference::NoOutputs)
    .Doc("Sets the counters of the table's counting Bloom filter.");

REGISTER_OP("DrlKvRestore")
    .Input("table: resource")
    .Input("prefix: string")
    .Input("object_name: string")
    .Input("part: int64")
    .Input("num_parts: int64")
    .Output("restored: int64")
    .SetIsStateful()
    .SetShapeFn(tensorflow::shape_inference::ScalarShape)
    .Doc("Replaces the table's records with those DrlKvSave wrote under object_name (the "
         "keys of partition `part` of `num_parts`); returns how many records it restored.");

namespace {

constexpr char kTableDir[] = "/.KV_TABLE/";

// The record fields of a shard, in TableRecords order.
constexpr const char* kFields[] = {"keys",         "values",        "slots",
                                   "freqs",        "versions",      "pending_keys",
                                   "pending_freqs", "pending_versions"};

Tensor* Field(TableRecords* r, int f) {
  Tensor* fields[] = {&r->keys,         &r->values,        &r->slots,
                      &r->freqs,        &r->versions,      &r->pending_keys,
                      &r->pending_freqs, &r->pending_versions};
  return fields[f];
}

std::string PartDir(const std::string& object, int64_t part, int64_t num_parts) {
  char buf[48];
  std::snprintf(buf, sizeof(buf), "part-%05lld-of-%05lld/", static_cast<long long>(part),
                static_cast<long long>(num_parts));
  return object + kTableDir + buf;
}

// A stored chunk holds at most chunk_records (DrlKvSave's attr) admitted and as many
// pending records, unless a shard has more than kChunksPerShard times that.
constexpr int kChunksPerShard = 64;

std::string ChunkDir(int chunk) {
  char buf[16];
  std::snprintf(buf, sizeof(buf), "chunk-%05d/", chunk);
  return buf;
}

// Rows [first, first + count) of t (all of it when it has fewer).
Tensor Rows(const Tensor& t, int64_t first, int64_t count) {
  const int64_t n = t.dim_size(0);
  const int64_t begin = std::min(first, n);
  return t.Slice(begin, std::min(n, begin + count));
}

class KvSaveOp : public OpKernel {
 public:
  explicit KvSaveOp(OpKernelConstruction* ctx) : OpKernel(ctx) {
    OP_REQUIRES_OK(ctx, ctx->GetAttr("chunk_records", &chunk_records_));
  }

  void Compute(OpKernelContext* ctx) override {
    const int n = num_inputs() - 4;
    const auto prefixes = ctx->input(n).flat<tstring>();
    const Tensor& names = ctx->input(n + 1);
    const Tensor& parts = ctx->input(n + 2);
    const Tensor& num_parts = ctx->input(n + 3);
    OP_REQUIRES(ctx, names.NumElements() == n && parts.NumElements() == n &&
                         num_parts.NumElements() == n,
                InvalidArgument("object_names, parts and num_parts must have one element per "
                                "table (", n, ")"));
    OP_REQUIRES(ctx, prefixes.size() >= 1,
                InvalidArgument("prefixes must name at least one bundle"));
    std::vector<KvTableBase*> tables(n, nullptr);
    std::vector<std::unique_ptr<tensorflow::core::ScopedUnref>> unrefs;
    std::vector<std::string> dirs(n);
    for (int i = 0; i < n; ++i) {
      OP_REQUIRES_OK(ctx, LookupResource(ctx, tensorflow::HandleFromInput(ctx, i), &tables[i]));
      unrefs.emplace_back(new tensorflow::core::ScopedUnref(tables[i]));
      dirs[i] = PartDir(std::string(names.flat<tstring>()(i)), parts.flat<int64_t>()(i),
                        num_parts.flat<int64_t>()(i));
    }
    // Writer w writes the shards s with s % W == w of every table.
    const int writers = static_cast<int>(prefixes.size());
    std::vector<std::unique_ptr<BundleWriter>> bundles;
    for (int w = 0; w < writers; ++w) {
      bundles.emplace_back(new BundleWriter(Env::Default(), std::string(prefixes(w))));
      OP_REQUIRES_OK(ctx, bundles.back()->status());
    }
    std::vector<Status> status(writers);
    auto write = [&](int w) {
      // A marker first, so that no bundle is empty (MergeV2Checkpoints drops the data
      // file of a bundle without entries but still counts it).
      Tensor marker(tensorflow::DT_INT32, TensorShape({}));
      marker.scalar<int32_t>()() = w;
      char name[32];
      std::snprintf(name, sizeof(name), "writer-%05d", w);
      status[w] = bundles[w]->Add(dirs[0] + name, marker);
      std::vector<int> shards;
      for (int s = w; s < KvTableBase::kNumShards; s += writers) shards.push_back(s);
      for (int i = 0; i < n && status[w].ok(); ++i) {
        status[w] = tables[i]->ForEachShardRecords(
            ctx, shards, [&](int shard, const TableRecords& records) {
              if (records.keys.NumElements() == 0 && records.pending_keys.NumElements() == 0) {
                return Status();
              }
              TableRecords r = records;
              const int64_t most = std::max(r.keys.dim_size(0), r.pending_keys.dim_size(0));
              const int64_t rows = std::max(chunk_records_,
                                            (most + kChunksPerShard - 1) / kChunksPerShard);
              for (int c = 0; c * rows < most; ++c) {
                const std::string dir = dirs[i] + ChunkDir(shard * kChunksPerShard + c);
                for (int f = 0; f < 8; ++f) {
                  TF_RETURN_IF_ERROR(
                      bundles[w]->Add(dir + kFields[f], Rows(*Field(&r, f), c * rows, rows)));
                }
              }
              return Status();
            });
      }
    };
    {
      std::vector<std::thread> threads;
      for (int w = 1; w < writers; ++w) threads.emplace_back(write, w);
      write(0);
      for (auto& t : threads) t.join();
    }
    for (const Status& st : status) OP_REQUIRES_OK(ctx, st);
    // Each part's bloom_counts last: a part whose entry is there is whole.
    for (int i = 0; i < n; ++i) {
      Tensor bloom;
      OP_REQUIRES_OK(ctx, tables[i]->BloomCounts(ctx, &bloom));
      OP_REQUIRES_OK(ctx, bundles[0]->Add(dirs[i] + "bloom_counts", bloom));
    }
    for (auto& b : bundles) OP_REQUIRES_OK(ctx, b->Finish());
  }

 private:
  int64_t chunk_records_ = 1 << 20;
};

class KvShardRecordsOp : public TableKernel {
 public:
  using TableKernel::TableKernel;
  void ComputeWithTable(OpKernelContext* ctx, KvTableBase* table) override {
    OP_REQUIRES_OK(ctx, CheckKeyOutput(*table, output_type(0)));
    TableRecords records;
    OP_REQUIRES_OK(ctx, table->ShardRecords(ctx, ctx->input(1).scalar<int32_t>()(), &records));
    for (int f = 0; f < 8; ++f) ctx->set_output(f, *Field(&records, f));
  }
};

// A tensor from the CPU allocator (any thread may allocate one, not only the op's).
Status Allocate(DataType dtype, const TensorShape& shape, Tensor* out) {
  *out = Tensor(tensorflow::cpu_allocator(), dtype, shape);
  if (shape.num_elements() > 0 && !out->IsInitialized()) {
    return tensorflow::errors::ResourceExhausted("out of memory for a tensor of shape ",
                                                 shape.DebugString());
  }
  return Status();
}

class KvClearOp : public TableKernel {
 public:
  using TableKernel::TableKernel;
  void ComputeWithTable(OpKernelContext* ctx, KvTableBase* table) override {
    const Tensor& expected = ctx->input(1);
    OP_REQUIRES(ctx, expected.dims() == 0 && expected.scalar<int64_t>()() >= 0,
                InvalidArgument("expected_records must be a non-negative int64 scalar, got ",
                                expected.DebugString()));
    OP_REQUIRES_OK(ctx, table->Clear(expected.scalar<int64_t>()()));
  }
};

class KvInsertOp : public TableKernel {
 public:
  using TableKernel::TableKernel;
  void ComputeWithTable(OpKernelContext* ctx, KvTableBase* table) override {
    TableRecords records;
    for (int f = 0; f < 8; ++f) *Field(&records, f) = ctx->input(1 + f);
    OP_REQUIRES_OK(ctx, table->InsertRecords(ctx, records, replace_));
  }
  explicit KvInsertOp(OpKernelConstruction* ctx) : TableKernel(ctx) {
    OP_REQUIRES_OK(ctx, ctx->GetAttr("replace", &replace_));
  }

 private:
  bool replace_ = false;
};

class KvChangesOp : public TableKernel {
 public:
  explicit KvChangesOp(OpKernelConstruction* ctx) : TableKernel(ctx) {
    OP_REQUIRES_OK(ctx, ctx->GetAttr("with_slots", &with_slots_));
  }
  void ComputeWithTable(OpKernelContext* ctx, KvTableBase* table) override {
    OP_REQUIRES_OK(ctx, CheckKeyOutput(*table, output_type(0)));
    TableRecords records;
    Tensor removed, expired;
    OP_REQUIRES_OK(ctx, table->Changes(ctx, ctx->input(1).scalar<int64_t>()(),
                                       ctx->input(2).scalar<int64_t>()(),
                                       ctx->input(3).scalar<int64_t>()(), with_slots_, &records,
                                       &removed, &expired));
    for (int f = 0; f < 8; ++f) ctx->set_output(f, *Field(&records, f));
    ctx->set_output(8, removed);
    ctx->set_output(9, expired);
  }

 private:
  bool with_slots_ = true;
};

class KvChangeStateOp : public TableKernel {
 public:
  using TableKernel::TableKernel;
  void ComputeWithTable(OpKernelContext* ctx, KvTableBase* table) override {
    int64_t state[3];
    table->ChangeState(&state[0], &state[1], &state[2]);
    for (int i = 0; i < 3; ++i) {
      Tensor* out;
      OP_REQUIRES_OK(ctx, ctx->allocate_output(i, TensorShape({}), &out));
      out->scalar<int64_t>()() = state[i];
    }
  }
};

class KvBloomCountsOp : public TableKernel {
 public:
  using TableKernel::TableKernel;
  void ComputeWithTable(OpKernelContext* ctx, KvTableBase* table) override {
    Tensor counts;
    OP_REQUIRES_OK(ctx, table->BloomCounts(ctx, &counts));
    ctx->set_output(0, counts);
  }
};

class KvSetBloomCountsOp : public TableKernel {
 public:
  using TableKernel::TableKernel;
  void ComputeWithTable(OpKernelContext* ctx, KvTableBase* table) override {
    OP_REQUIRES_OK(ctx, table->SetBloomCounts(ctx->input(1)));
  }
};

// Where a record part of the checkpoint lies.
struct StoredChunk {
  int64_t part;
  std::string dir;  // .../part-../chunk-../
};

class KvRestoreOp : public TableKernel {
 public:
  using TableKernel::TableKernel;

  void ComputeWithTable(OpKernelContext* ctx, KvTableBase* table) override {
    const std::string prefix(ctx->input(1).scalar<tstring>()());
    const std::string object(ctx->input(2).scalar<tstring>()());
    const int64_t part = ctx->input(3).scalar<int64_t>()();
    const int64_t num_parts = ctx->input(4).scalar<int64_t>()();
    OP_REQUIRES(ctx, num_parts >= 1 && part >= 0 && part < num_parts,
                InvalidArgument("part must be in [0, num_parts), got part=", part,
                                " num_parts=", num_parts));
    int64_t restored = 0;
    const Status st = Restore(ctx, table, prefix, object, part, num_parts, &restored);
    if (!st.ok()) {
      table->Clear(0).IgnoreError();  // never a partly restored table
      ctx->SetStatus(Status(st.code(), "table '" + table->config().name + "' from checkpoint " +
                                           prefix + ": " + std::string(st.message()) +
                                           "; the table is left empty"));
      return;
    }
    Tensor* out = nullptr;
    OP_REQUIRES_OK(ctx, ctx->allocate_output(0, TensorShape({}), &out));
    out->scalar<int64_t>()() = restored;
  }

 private:
  static Status Restore(OpKernelContext* ctx, KvTableBase* table, const std::string& prefix,
                        const std::string& object, int64_t part, int64_t num_parts,
                        int64_t* restored) {
    BundleReader reader(Env::Default(), prefix);
    TF_RETURN_IF_ERROR(reader.status());
    std::vector<StoredChunk> chunks;
    std::map<int64_t, std::string> parts;  // part -> its directory, from bloom_counts
    int64_t saved_parts = 0;
    TF_RETURN_IF_ERROR(ListParts(&reader, object, &chunks, &parts, &saved_parts));
    for (int64_t p = 0; p < saved_parts; ++p) {
      if (!parts.count(p)) {
        return DataLoss("part ", p, " of the ", saved_parts, " parts of '", object,
                        "' is missing (its bloom_counts entry, written last, is not there)");
      }
    }
    const bool own_part_only = saved_parts == num_parts;
    std::vector<StoredChunk> wanted;
    int64_t expected = 0;
    for (const StoredChunk& s : chunks) {
      if (own_part_only && s.part != part) continue;
      wanted.push_back(s);
      for (const char* f : {"keys", "pending_keys"}) {
        TensorShape shape;
        TF_RETURN_IF_ERROR(reader.LookupTensorShape(s.dir + f, &shape));
        expected += shape.num_elements();
      }
    }
    TF_RETURN_IF_ERROR(table->Clear(own_part_only ? expected : expected / num_parts));
    // The next stored chunk is read (on a thread of its own) while this one's
    // records are inserted.
    // Two sets of buffers, one being read into while the other's records are inserted,
    // reused from chunk to chunk: fresh memory for every chunk would be page-faulted in
    // again each time.
    TableRecords buffers[2];
    auto read = [&](size_t j, TableRecords* records) {
      return ReadShard(&reader, prefix, wanted[j].dir, own_part_only, part, num_parts,
                       &buffers[j % 2], records);
    };
    TableRecords current;
    Status st = wanted.empty() ? Status() : read(0, &current);
    for (size_t j = 0; j < wanted.size() && st.ok(); ++j) {
      TableRecords next;
      Status next_st;
      std::thread reading;
      if (j + 1 < wanted.size()) reading = std::thread([&] { next_st = read(j + 1, &next); });
      st = table->InsertRecords(ctx, current, /*replace=*/false);
      *restored += current.keys.NumElements() + current.pending_keys.NumElements();
      if (reading.joinable()) reading.join();
      if (st.ok()) st = next_st;
      current = next;
    }
    TF_RETURN_IF_ERROR(st);
    Tensor bloom;
    for (const auto& p : parts) {
      if (own_part_only && p.first != part) continue;
      Tensor counts;
      TF_RETURN_IF_ERROR(ReadTensor(&reader, prefix, p.second + "bloom_counts", &counts));
      if (bloom.NumElements() == 0 || counts.NumElements() != bloom.NumElements()) {
        if (bloom.NumElements() != 0) {
          return DataLoss("the parts of '", object, "' hold Bloom filters of different sizes");
        }
        bloom = counts;
        continue;
      }
      // Another number of partitions: every partition gets the sum of the saved
      // filters, a filter of all keys that never under-counts one.
      auto sum = bloom.flat<int32_t>();
      const auto add = counts.flat<int32_t>();
      for (int64_t i = 0; i < sum.size(); ++i) {
        sum(i) = std::min<int32_t>(sum(i) + add(i), CountingBloomFilter::kMaxCount);
      }
    }
    return table->SetBloomCounts(bloom);
  }

  // Reads the stored chunk at `dir` (the records of partition `part` of
  // `num_parts` unless own_part_only).
  static Status ReadShard(BundleReader* reader, const std::string& prefix, const std::string& dir,
                          bool own_part_only, int64_t part, int64_t num_parts,
                          TableRecords* buffers, TableRecords* records) {
    for (int f = 0; f < 8; ++f) {
      TF_RETURN_IF_ERROR(ReadTensor(reader, prefix, dir + kFields[f], Field(records, f),
                                    Field(buffers, f)));
      DropFromPageCache(reader, prefix, dir + kFields[f]);
    }
    return own_part_only ? Status() : KeepPart(part, num_parts, records);
  }

  // Tells the kernel that the bytes of the entry `key` (just read) are not needed
  // again: a restore fills most of the memory with the table, and the page cache of
  // what it read would otherwise have to be reclaimed under that pressure, slowing
  // every allocation. A best effort: nothing happens where it does not apply.
  static void DropFromPageCache(BundleReader* reader, const std::string& prefix,
                                const std::string& key) {
#if defined(__linux__)
    tensorflow::BundleEntryProto entry;
    const std::string file = DataFileOf(reader, prefix, key, &entry);
    const int fd = file.empty() ? -1 : open(file.c_str(), O_RDONLY);
    if (fd < 0) return;
    posix_fadvise(fd, entry.offset(), entry.size(), POSIX_FADV_DONTNEED);
    close(fd);
#endif
  }

  // The data file that holds entry `key` (its BundleEntryProto, in *entry, names it by
  // its shard id): its path, the file name pattern when no single file matches, or ""
  // when the index has no such entry.
  static std::string DataFileOf(BundleReader* reader, const std::string& prefix,
                                const std::string& key, tensorflow::BundleEntryProto* entry) {
    reader->Seek(key);
    if (!reader->Valid() || reader->key() != key ||
        !entry->ParseFromArray(reader->value().data(), reader->value().size())) {
      return "";
    }
    char shard[16];
    std::snprintf(shard, sizeof(shard), "%05d", entry->shard_id());
    const std::string pattern = prefix + ".data-" + shard + "-of-?????";
    std::vector<std::string> files;
    if (Env::Default()->GetMatchingPaths(pattern, &files).ok() && files.size() == 1) {
      return files[0];
    }
    return pattern;
  }

  // Lists the stored chunks and parts of `object` from the bundle's index.
  static Status ListParts(BundleReader* reader, const std::string& object,
                          std::vector<StoredChunk>* chunks,
                          std::map<int64_t, std::string>* parts, int64_t* saved_parts) {
    const std::string root = object + kTableDir + "part-";
    for (reader->Seek(root); reader->Valid(); reader->Next()) {
      const std::string key(reader->key());
      if (key.compare(0, root.size(), root) != 0) break;
      long long p = 0, num = 0, chunk = 0;
      int used = 0;
      if (std::sscanf(key.c_str() + root.size(), "%5lld-of-%5lld/%n", &p, &num, &used) < 2 ||
          used == 0 || num < 1 || p < 0 || p >= num) {
        return DataLoss("unexpected entry '", key, "' in the checkpoint index");
      }
      if (*saved_parts != 0 && *saved_parts != num) {
        return DataLoss("the parts of '", object, "' disagree on their number (", *saved_parts,
                        " and ", num, ")");
      }
      *saved_parts = num;
      const std::string dir = key.substr(0, root.size() + used);
      const std::string rest = key.substr(dir.size());
      if (rest == "bloom_counts") {
        (*parts)[p] = dir;
      } else if (std::sscanf(rest.c_str(), "chunk-%5lld/", &chunk) == 1 &&
                 rest == ChunkDir(static_cast<int>(chunk)) + "keys") {
        chunks->push_back(StoredChunk{p, dir + ChunkDir(static_cast<int>(chunk))});
      }
    }
    if (*saved_parts == 0) {
      return tensorflow::errors::NotFound("it holds no records of '", object, "' (no entries under '",
                                          root, "')");
    }
    return Status();
  }

  // Reads one tensor, naming the data file it lies in when that fails.
  // With `buffer` (a tensor kept between calls), *out is a slice of it, which grows
  // (by an eighth more than asked) when it is too small.
  static Status ReadTensor(BundleReader* reader, const std::string& prefix,
                           const std::string& key, Tensor* out, Tensor* buffer = nullptr) {
    DataType dtype;
    TensorShape shape;
    TF_RETURN_IF_ERROR(reader->LookupDtypeAndShape(key, &dtype, &shape));
    // (Strings are read into fresh tensors: the reader checks each string's size
    // against what the tensor it fills already holds.)
    if (buffer == nullptr || shape.dims() == 0 || dtype == tensorflow::DT_STRING) {
      TF_RETURN_IF_ERROR(Allocate(dtype, shape, out));
    } else {
      TensorShape rest = shape;
      rest.RemoveDim(0);
      TensorShape have = buffer->shape();
      if (have.dims() > 0) have.RemoveDim(0);
      if (!buffer->IsInitialized() || buffer->dtype() != dtype || have != rest ||
          buffer->dims() == 0 || buffer->dim_size(0) < shape.dim_size(0)) {
        TensorShape grown = shape;
        grown.set_dim(0, shape.dim_size(0) + shape.dim_size(0) / 8);
        TF_RETURN_IF_ERROR(Allocate(dtype, grown, buffer));
      }
      *out = buffer->Slice(0, shape.dim_size(0));
    }
    const Status st = reader->Lookup(key, out);
    if (st.ok()) return st;
    tensorflow::BundleEntryProto entry;
    std::string file = DataFileOf(reader, prefix, key, &entry);
    if (file.empty()) file = prefix + ".data-?????-of-?????";
    return Status(st.code(), "reading '" + key + "' from " + file + ": " +
                                 std::string(st.message()));
  }

  // Keeps the records of partition `part` of `num_parts`.
  static Status KeepPart(int64_t part, int64_t num_parts, TableRecords* r) {
    for (int first : {0, 5}) {  // admitted fields 0..4, pending fields 5..7
      const int last = first == 0 ? 5 : 8;
      Tensor* keys = Field(r, first);
      std::vector<int64_t> keep;
      if (keys->dtype() == tensorflow::DT_STRING) {
        const auto k = keys->flat<tstring>();
        for (int64_t i = 0; i < k.size(); ++i) {
          if (PartitionOf(HashKey(k(i)), num_parts) == part) keep.push_back(i);
        }
      } else if (keys->dtype() == tensorflow::DT_INT64) {
        const auto k = keys->flat<int64_t>();
        for (int64_t i = 0; i < k.size(); ++i) {
          if (PartitionOf(HashKey(k(i)), num_parts) == part) keep.push_back(i);
        }
      } else {
        return DataLoss("keys of type ", tensorflow::DataTypeString(keys->dtype()));
      }
      for (int f = first; f < last; ++f) {
        TF_RETURN_IF_ERROR(Gather(keep, Field(r, f)));
      }
    }
    return Status();
  }

  // Replaces *t with its rows `rows` (along the first dimension).
  static Status Gather(const std::vector<int64_t>& rows, Tensor* t) {
    if (t->dims() == 0) return DataLoss("a record field is a scalar");
    TensorShape shape = t->shape();
    const int64_t n = shape.dim_size(0);
    const int64_t row = n == 0 ? 0 : t->NumElements() / n;
    shape.set_dim(0, static_cast<int64_t>(rows.size()));
    Tensor out;
    TF_RETURN_IF_ERROR(Allocate(t->dtype(), shape, &out));
    if (t->dtype() == tensorflow::DT_STRING) {
      const auto in = t->flat<tstring>();
      auto o = out.flat<tstring>();
      for (size_t i = 0; i < rows.size(); ++i) o(i) = in(rows[i]);
    } else {
      const size_t bytes = row * tensorflow::DataTypeSize(t->dtype());
      const char* in = t->tensor_data().data();
      char* o = const_cast<char*>(out.tensor_data().data());
      for (size_t i = 0; i < rows.size(); ++i) std::memcpy(o + i * bytes, in + rows[i] * bytes, bytes);
    }
    *t = out;
    return Status();
  }
};

REGISTER_KERNEL_BUILDER(Name("DrlKvSave").Device(tensorflow::DEVICE_CPU), KvSaveOp);
REGISTER_KERNEL_BUILDER(Name("DrlKvShardRecords").Device(tensorflow::DEVICE_CPU),
                        KvShardRecordsOp);
REGISTER_KERNEL_BUILDER(Name("DrlKvClear").Device(tensorflow::DEVICE_CPU), KvClearOp);
REGISTER_KERNEL_BUILDER(Name("DrlKvInsert").Device(tensorflow::DEVICE_CPU), KvInsertOp);
REGISTER_KERNEL_BUILDER(Name("DrlKvChanges").Device(tensorflow::DEVICE_CPU), KvChangesOp);
REGISTER_KERNEL_BUILDER(Name("DrlKvChangeState").Device(tensorflow::DEVICE_CPU),
                        KvChangeStateOp);
REGISTER_KERNEL_BUILDER(Name("DrlKvBloomCounts").Device(tensorflow::DEVICE_CPU),
                        KvBloomCountsOp);
REGISTER_KERNEL_BUILDER(Name("DrlKvSetBloomCounts").Device(tensorflow::DEVICE_CPU),
                        KvSetBloomCountsOp);
REGISTER_KERNEL_BUILDER(Name("DrlKvRestore").Device(tensorflow::DEVICE_CPU), KvRestoreOp);

}  // namespace

}  // namespace deeprec_lite
