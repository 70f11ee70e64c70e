// DrlArrowReaderDataset: a tf.data source that reads work items (a file's row or byte
// range) of Parquet or CSV / TSV files with Arrow C++ (arrow_batch_reader.h) and emits
// batches of exactly `batch_size` rows (the last one may be shorter), carrying rows over
// from one item to the next. Each schema column is one tensor, a ragged one two (values,
// row lengths). The iterator saves its position (item, row): a restored iterator goes on
// with the first row not yet delivered.
//
// With skip_bad_files, an item that cannot be read is left (the rows delivered before the
// error are kept) and recorded in a bad-file log that Python reads through the C functions
// at the end (deeprec_lite/data/formats/arrow_dataset.py).
#include <deque>
#include <map>
#include <mutex>
#include <string>
#include <utility>
#include <vector>

#include "arrow_batch_reader.h"
#include "tensorflow/core/framework/common_shape_fns.h"
#include "tensorflow/core/framework/dataset.h"
#include "tensorflow/core/framework/op.h"
#include "tensorflow/core/framework/op_kernel.h"
#include "tensorflow/core/framework/tensor.h"
#include "tensorflow/core/platform/blocking_counter.h"
#include "tensorflow/core/platform/fingerprint.h"

namespace deeprec_lite {
namespace {

using tensorflow::data::DatasetBase;
using tensorflow::DataType;
using tensorflow::DataTypeVector;
using tensorflow::data::IteratorContext;
using tensorflow::PartialTensorShape;
using tensorflow::Tensor;

constexpr char kDatasetType[] = "DrlArrowReader";
constexpr size_t kCopyTasks = 4;  // a batch's columns are copied into tensors by this many

// The skipped files of each bad-file log: (path, reason), in the order they were skipped.
struct BadFileLogs {
  std::mutex mu;
  std::map<int64_t, std::vector<std::pair<std::string, std::string>>> logs;
};

BadFileLogs& Logs() {
  static BadFileLogs* logs = new BadFileLogs;
  return *logs;
}

bool IsRagged(ColumnKind kind) {
  return kind == ColumnKind::kMultiInt || kind == ColumnKind::kMultiString;
}

// The dtype of a column's values tensor: hashed string ids are int64.
DataType ValueType(const ColumnSpec& column) {
  if (column.hash_ids) return tensorflow::DT_INT64;
  switch (column.kind) {
    case ColumnKind::kLabelFloat:
    case ColumnKind::kNumeric:
      return tensorflow::DT_FLOAT;
    case ColumnKind::kIdString:
    case ColumnKind::kMultiString:
      return tensorflow::DT_STRING;
    default:
      return tensorflow::DT_INT64;
  }
}

// `text` with each byte that is not part of valid UTF-8 written as \xNN: messages quote
// file data (cells, names, paths), and Python decodes TensorFlow's messages as strict UTF-8.
std::string EscapeNonUtf8(const std::string& text) {
  std::string out;
  out.reserve(text.size());
  const auto* s = reinterpret_cast<const unsigned char*>(text.data());
  const size_t n = text.size();
  for (size_t i = 0; i < n;) {
    const unsigned char c = s[i];
    size_t len = 0;
    unsigned char lo = 0x80, hi = 0xBF;  // the second byte's range (no overlong forms,
    if (c < 0x80) {                       // surrogates or code points above U+10FFFF)
      len = 1;
    } else if (c >= 0xC2 && c <= 0xDF) {
      len = 2;
    } else if (c >= 0xE0 && c <= 0xEF) {
      len = 3;
      if (c == 0xE0) lo = 0xA0;
      if (c == 0xED) hi = 0x9F;
    } else if (c >= 0xF0 && c <= 0xF4) {
      len = 4;
      if (c == 0xF0) lo = 0x90;
      if (c == 0xF4) hi = 0x8F;
    }
    bool valid = len > 0 && i + len <= n;
    for (size_t k = 1; valid && k < len; ++k) {
      valid = k == 1 ? s[i + k] >= lo && s[i + k] <= hi : s[i + k] >= 0x80 && s[i + k] <= 0xBF;
    }
    if (valid) {
      out.append(text, i, len);
      i += len;
    } else {
      static const char kHex[] = "0123456789abcdef";
      out += {'\\', 'x', kHex[c >> 4], kHex[c & 15]};
      ++i;
    }
  }
  return out;
}

// `file 'PATH', column 'NAME': PROBLEM`, as BadFileError writes it (valid UTF-8).
std::string Describe(const std::string& path, const ReadError& error) {
  std::string out = "file '" + path + "'";
  if (!error.column.empty()) out += ", column '" + error.column + "'";
  return EscapeNonUtf8(out + ": " + error.message);
}

struct Item {
  std::string path;
  int64_t start, stop, rows;  // rows: how many the item must hold (-1: not checked)
};

class Dataset : public DatasetBase {
 public:
  Dataset(tensorflow::OpKernelContext* ctx, std::vector<Item> items,
          std::vector<ColumnSpec> columns, FileFormat format, int64_t batch_size,
          bool drop_remainder, bool skip_bad_files, int64_t bad_file_log,
          std::vector<double> bounds, std::vector<std::pair<std::string, tensorflow::AttrValue>> attrs)
      : DatasetBase(tensorflow::data::DatasetContext(ctx)),
        items_(std::move(items)),
        columns_(std::move(columns)),
        format_(std::move(format)),
        batch_size_(batch_size),
        drop_remainder_(drop_remainder),
        skip_bad_files_(skip_bad_files),
        bad_file_log_(bad_file_log),
        bounds_(std::move(bounds)),
        attrs_(std::move(attrs)) {
    for (const ColumnSpec& column : columns_) {
      dtypes_.push_back(ValueType(column));
      shapes_.push_back(PartialTensorShape({-1}));
      if (IsRagged(column.kind)) {
        dtypes_.push_back(tensorflow::DT_INT64);
        shapes_.push_back(PartialTensorShape({-1}));
      }
    }
  }

  std::unique_ptr<tensorflow::data::IteratorBase> MakeIteratorInternal(
      const std::string& prefix) const override;
  const DataTypeVector& output_dtypes() const override { return dtypes_; }
  const std::vector<PartialTensorShape>& output_shapes() const override { return shapes_; }
  std::string DebugString() const override { return "DrlArrowReaderDatasetOp::Dataset"; }
  absl::Status InputDatasets(std::vector<const DatasetBase*>* inputs) const override {
    inputs->clear();
    return absl::OkStatus();
  }
  absl::Status CheckExternalState() const override { return absl::OkStatus(); }

 protected:
  absl::Status AsGraphDefInternal(tensorflow::data::SerializationContext* ctx,
                                  DatasetGraphDefBuilder* b,
                                  tensorflow::Node** output) const override {
    std::vector<std::string> paths;
    std::vector<int64_t> starts, stops, rows;
    for (const Item& item : items_) {
      paths.push_back(item.path);
      starts.push_back(item.start);
      stops.push_back(item.stop);
      rows.push_back(item.rows);
    }
    tensorflow::Node *paths_node, *starts_node, *stops_node, *rows_node, *bounds_node;
    TF_RETURN_IF_ERROR(b->AddVector(paths, &paths_node));
    TF_RETURN_IF_ERROR(b->AddVector(starts, &starts_node));
    TF_RETURN_IF_ERROR(b->AddVector(stops, &stops_node));
    TF_RETURN_IF_ERROR(b->AddVector(rows, &rows_node));
    TF_RETURN_IF_ERROR(b->AddVector(bounds_, &bounds_node));
    std::vector<std::pair<absl::string_view, tensorflow::AttrValue>> attrs;
    for (const auto& attr : attrs_) attrs.emplace_back(attr.first, attr.second);
    return b->AddDataset(this, {paths_node, starts_node, stops_node, rows_node, bounds_node},
                         attrs, output);
  }

 private:
  friend class Iterator;
  const std::vector<Item> items_;
  const std::vector<ColumnSpec> columns_;
  const FileFormat format_;
  const int64_t batch_size_;
  const bool drop_remainder_, skip_bad_files_;
  const int64_t bad_file_log_;
  const std::vector<double> bounds_;
  const std::vector<std::pair<std::string, tensorflow::AttrValue>> attrs_;
  DataTypeVector dtypes_;
  std::vector<PartialTensorShape> shapes_;
};

class Iterator : public tensorflow::data::DatasetIterator<Dataset> {
 public:
  explicit Iterator(const Params& params) : DatasetIterator<Dataset>(params) {}

  absl::Status GetNextInternal(IteratorContext* ctx, std::vector<Tensor>* out,
                               bool* end_of_sequence) override {
    std::lock_guard<std::mutex> lock(mu_);
    const Dataset& d = *dataset();
    while (pending_rows_ < d.batch_size_ && next_item_ < static_cast<int64_t>(d.items_.size())) {
      TF_RETURN_IF_ERROR(ReadMore(d));
    }
    const int64_t rows = std::min(pending_rows_, d.batch_size_);
    *end_of_sequence = rows == 0 || (rows < d.batch_size_ && d.drop_remainder_);
    if (*end_of_sequence) return absl::OkStatus();
    Emit(ctx, d, rows, out);
    return absl::OkStatus();
  }

 protected:
  std::shared_ptr<tensorflow::data::model::Node> CreateNode(
      IteratorContext* ctx, tensorflow::data::model::Node::Args args) const override {
    return tensorflow::data::model::MakeSourceNode(std::move(args));
  }

  absl::Status SaveInternal(tensorflow::data::SerializationContext* ctx,
                            tensorflow::data::IteratorStateWriter* writer) override {
    std::lock_guard<std::mutex> lock(mu_);
    int64_t item = next_item_, row = reader_ != nullptr ? reader_rows_ : skip_rows_;
    if (!pending_.empty()) {
      item = pending_.front().item;
      row = pending_.front().first_row + pending_.front().consumed;
    }
    TF_RETURN_IF_ERROR(writer->WriteScalar(prefix(), "item", item));
    return writer->WriteScalar(prefix(), "row", row);
  }

  absl::Status RestoreInternal(IteratorContext* ctx,
                               tensorflow::data::IteratorStateReader* reader) override {
    std::lock_guard<std::mutex> lock(mu_);
    int64_t item, row;
    TF_RETURN_IF_ERROR(reader->ReadScalar(prefix(), "item", &item));
    TF_RETURN_IF_ERROR(reader->ReadScalar(prefix(), "row", &row));
    if (item < 0 || item > static_cast<int64_t>(dataset()->items_.size()) || row < 0) {
      return tensorflow::errors::InvalidArgument("restored reader position (item ", item,
                                                 ", row ", row, ") is not one of this dataset");
    }
    pending_.clear();
    pending_rows_ = 0;
    reader_.reset();
    next_item_ = item;
    skip_rows_ = row;
    return absl::OkStatus();
  }

 private:
  struct Pending {
    ConvertedBatch batch;
    int64_t item, first_row, consumed;
  };

  // Reads the next batch of the current item (opening it first), or ends the item.
  absl::Status ReadMore(const Dataset& d) {
    const Item& item = d.items_[next_item_];
    ReadError error;
    if (reader_ == nullptr) {
      reader_ = ItemReader::Open(item.path, item.start, item.stop, skip_rows_, d.format_,
                                 d.columns_, &error);
      reader_rows_ = skip_rows_;
      skip_rows_ = 0;
      if (reader_ == nullptr) return LeaveItem(d, item, error);
    }
    Pending next{ConvertedBatch(), next_item_, reader_rows_, 0};
    if (reader_->Next(&next.batch, &error)) {
      reader_rows_ += next.batch.rows;
      pending_rows_ += next.batch.rows;
      pending_.push_back(std::move(next));
      return absl::OkStatus();
    }
    if (error.ok() && item.rows >= 0 && reader_rows_ != item.rows) {
      error.message = "rows " + std::to_string(item.start) + ".." + std::to_string(item.stop) +
                      " (bytes) parsed into " + std::to_string(reader_rows_) + " rows instead of " +
                      std::to_string(item.rows) +
                      "; quoted line breaks are not supported when reading by row range";
    }
    return LeaveItem(d, item, error);
  }

  absl::Status LeaveItem(const Dataset& d, const Item& item, const ReadError& error) {
    reader_.reset();
    ++next_item_;
    if (error.ok()) return absl::OkStatus();
    if (!d.skip_bad_files_) return tensorflow::errors::InvalidArgument(Describe(item.path, error));
    BadFileLogs& logs = Logs();
    std::lock_guard<std::mutex> lock(logs.mu);
    logs.logs[d.bad_file_log_].emplace_back(item.path, Describe(item.path, error));
    return absl::OkStatus();
  }

  // Moves the first `rows` pending rows into one tensor per column (two for ragged ones),
  // columns copied in parallel on the iterator's thread pool.
  void Emit(IteratorContext* ctx, const Dataset& d, int64_t rows, std::vector<Tensor>* out) {
    auto* allocator = ctx->allocator({});
    const size_t n = d.columns_.size();
    std::vector<Tensor> values(n), lengths(n);
    auto copy_column = [&](size_t c) {
      const ColumnSpec& spec = d.columns_[c];
      const DataType dtype = ValueType(spec);
      if (!IsRagged(spec.kind)) {
        values[c] = Tensor(allocator, dtype, tensorflow::TensorShape({rows}));
        int64_t at = 0;
        ForEachPiece(c, rows, [&](const ConvertedColumn& col, int64_t lo, int64_t count) {
          CopyValues(spec, col, lo, count, &values[c], at);
          at += count;
        });
        return;
      }
      int64_t total = 0;
      ForEachPiece(c, rows, [&](const ConvertedColumn& col, int64_t lo, int64_t count) {
        total += col.offsets[lo + count] - col.offsets[lo];
      });
      values[c] = Tensor(allocator, dtype, tensorflow::TensorShape({total}));
      lengths[c] = Tensor(allocator, tensorflow::DT_INT64, tensorflow::TensorShape({rows}));
      auto length = lengths[c].flat<int64_t>();
      int64_t at = 0, row = 0;
      ForEachPiece(c, rows, [&](const ConvertedColumn& col, int64_t lo, int64_t count) {
        const int64_t first = col.offsets[lo], size = col.offsets[lo + count] - first;
        CopyValues(spec, col, first, size, &values[c], at);
        at += size;
        for (int64_t r = lo; r < lo + count; ++r) {
          length(row++) = col.offsets[r + 1] - col.offsets[r];
        }
      });
    };
    const size_t tasks = std::min<size_t>(n, kCopyTasks);
    tensorflow::BlockingCounter done(static_cast<int>(tasks) - 1);
    for (size_t t = 1; t < tasks; ++t) {
      (*ctx->runner())([&, t] {
        for (size_t c = t; c < n; c += tasks) copy_column(c);
        done.DecrementCount();
      });
    }
    for (size_t c = 0; c < n; c += tasks) copy_column(c);
    done.Wait();
    for (size_t c = 0; c < n; ++c) {
      out->push_back(std::move(values[c]));
      if (IsRagged(d.columns_[c].kind)) out->push_back(std::move(lengths[c]));
    }
    // Drop what was delivered.
    int64_t left = rows;
    while (left > 0) {
      Pending& front = pending_.front();
      const int64_t take = std::min(left, front.batch.rows - front.consumed);
      front.consumed += take;
      left -= take;
      if (front.consumed == front.batch.rows) pending_.pop_front();
    }
    pending_rows_ -= rows;
  }

  // Calls f(column c of a piece, its first row, rows) for the pending pieces that cover the
  // next `rows` rows, in order.
  template <typename F>
  void ForEachPiece(size_t c, int64_t rows, F&& f) {
    int64_t left = rows;
    for (const Pending& piece : pending_) {
      if (left == 0) break;
      const int64_t take = std::min(left, piece.batch.rows - piece.consumed);
      f(piece.batch.columns[c], piece.consumed, take);
      left -= take;
    }
  }

  // Fingerprint64(id) % (2^63 - 1), as tf.strings.to_hash_bucket_fast(ids, 2**63 - 1).
  static int64_t HashId(const char* data, size_t size) {
    constexpr uint64_t kBuckets = 9223372036854775807ULL;
    return static_cast<int64_t>(tsl::Fingerprint64(absl::string_view(data, size)) % kBuckets);
  }

  // Calls f(i, data, size) for the ids lo .. lo + n - 1 of a string column.
  template <typename F>
  static void ForEachString(const ConvertedColumn& col, int64_t lo, int64_t n, F&& f) {
    if (col.text != nullptr) {
      const int32_t* offsets = col.text_offsets + lo;
      for (int64_t i = 0; i < n; ++i) f(i, col.text + offsets[i], offsets[i + 1] - offsets[i]);
      return;
    }
    for (int64_t i = 0; i < n; ++i) f(i, col.strings[lo + i].data(), col.strings[lo + i].size());
  }

  static void CopyValues(const ColumnSpec& spec, const ConvertedColumn& col, int64_t lo,
                         int64_t n, Tensor* dst, int64_t at) {
    if (spec.hash_ids) {
      int64_t* out = dst->flat<int64_t>().data() + at;
      ForEachString(col, lo, n,
                    [&](int64_t i, const char* data, size_t size) { out[i] = HashId(data, size); });
    } else if (dst->dtype() == tensorflow::DT_STRING) {
      auto flat = dst->flat<tensorflow::tstring>();
      ForEachString(col, lo, n, [&](int64_t i, const char* data, size_t size) {
        flat(at + i).assign(data, size);
      });
    } else if (dst->dtype() == tensorflow::DT_FLOAT) {
      std::copy_n(col.floats.data() + lo, n, dst->flat<float>().data() + at);
    } else {
      std::copy_n(col.ints.data() + lo, n, dst->flat<int64_t>().data() + at);
    }
  }

  std::mutex mu_;
  std::deque<Pending> pending_;
  int64_t pending_rows_ = 0;
  int64_t next_item_ = 0;    // the item being read, or the next one to open
  int64_t reader_rows_ = 0;  // rows of that item read so far (skipped ones included)
  int64_t skip_rows_ = 0;    // rows to skip when the item opens (a restored position)
  std::unique_ptr<ItemReader> reader_;
};

std::unique_ptr<tensorflow::data::IteratorBase> Dataset::MakeIteratorInternal(
    const std::string& prefix) const {
  return std::make_unique<Iterator>(
      Iterator::Params{this, prefix + "::" + kDatasetType});
}

}  // namespace
}  // namespace deeprec_lite

namespace deeprec_lite {
namespace {

using tensorflow::OpKernelConstruction;
using tensorflow::OpKernelContext;

class ArrowReaderDatasetOp : public tensorflow::data::DatasetOpKernel {
 public:
  explicit ArrowReaderDatasetOp(OpKernelConstruction* ctx) : DatasetOpKernel(ctx) {
    std::vector<std::string> names, defaults, separators;
    std::vector<int64_t> kinds, transforms, default_ints, max_lens;
    std::vector<bool> binary, keep_last, hash_ids;
    OP_REQUIRES_OK(ctx, ctx->GetAttr("column_names", &names));
    OP_REQUIRES_OK(ctx, ctx->GetAttr("column_kinds", &kinds));
    OP_REQUIRES_OK(ctx, ctx->GetAttr("transforms", &transforms));
    OP_REQUIRES_OK(ctx, ctx->GetAttr("binary", &binary));
    OP_REQUIRES_OK(ctx, ctx->GetAttr("default_ints", &default_ints));
    OP_REQUIRES_OK(ctx, ctx->GetAttr("default_strings", &defaults));
    OP_REQUIRES_OK(ctx, ctx->GetAttr("separators", &separators));
    OP_REQUIRES_OK(ctx, ctx->GetAttr("max_lens", &max_lens));
    OP_REQUIRES_OK(ctx, ctx->GetAttr("keep_last", &keep_last));
    OP_REQUIRES_OK(ctx, ctx->GetAttr("hash_ids", &hash_ids));
    const size_t n = names.size();
    for (const size_t size : {kinds.size(), transforms.size(), binary.size(),
                              default_ints.size(), defaults.size(), separators.size(),
                              max_lens.size(), keep_last.size(), hash_ids.size()}) {
      OP_REQUIRES(ctx, size == n, tensorflow::errors::InvalidArgument(
                                      "every column attribute needs ", n, " entries, got ", size));
    }
    for (size_t c = 0; c < n; ++c) {
      OP_REQUIRES(ctx, kinds[c] >= 0 && kinds[c] <= static_cast<int>(ColumnKind::kMultiString),
                  tensorflow::errors::InvalidArgument("column_kinds: unknown kind ", kinds[c]));
      ColumnSpec spec;
      spec.name = names[c];
      spec.kind = static_cast<ColumnKind>(kinds[c]);
      spec.transform = static_cast<NumericTransform>(transforms[c]);
      spec.binary = binary[c];
      spec.default_int = default_ints[c];
      spec.default_string = defaults[c];
      spec.separator = separators[c];
      spec.max_len = max_lens[c];
      spec.keep_last = keep_last[c];
      spec.hash_ids = hash_ids[c];
      OP_REQUIRES(ctx, !spec.hash_ids || spec.kind == ColumnKind::kIdString ||
                           spec.kind == ColumnKind::kMultiString,
                  tensorflow::errors::InvalidArgument("hash_ids: column '", spec.name,
                                                      "' does not hold string ids"));
      columns_.push_back(std::move(spec));
    }
    std::string file_format, delimiter, quote_char;
    OP_REQUIRES_OK(ctx, ctx->GetAttr("file_format", &file_format));
    OP_REQUIRES(ctx, file_format == "parquet" || file_format == "csv",
                tensorflow::errors::InvalidArgument("file_format must be 'parquet' or 'csv', got '",
                                                    file_format, "'"));
    format_.csv = file_format == "csv";
    OP_REQUIRES_OK(ctx, ctx->GetAttr("delimiter", &delimiter));
    OP_REQUIRES_OK(ctx, ctx->GetAttr("quote_char", &quote_char));
    OP_REQUIRES(ctx, delimiter.size() == 1 && quote_char.size() <= 1,
                tensorflow::errors::InvalidArgument("delimiter must be one character and "
                                                    "quote_char at most one"));
    format_.delimiter = delimiter[0];
    format_.quoting = !quote_char.empty();
    if (format_.quoting) format_.quote_char = quote_char[0];
    OP_REQUIRES_OK(ctx, ctx->GetAttr("header", &format_.header));
    OP_REQUIRES_OK(ctx, ctx->GetAttr("file_columns", &format_.column_names));
    OP_REQUIRES_OK(ctx, ctx->GetAttr("null_values", &format_.null_values));
    OP_REQUIRES_OK(ctx, ctx->GetAttr("block_size", &format_.block_size));
    OP_REQUIRES_OK(ctx, ctx->GetAttr("batch_rows", &format_.batch_rows));
    OP_REQUIRES_OK(ctx, ctx->GetAttr("batch_size", &batch_size_));
    OP_REQUIRES_OK(ctx, ctx->GetAttr("drop_remainder", &drop_remainder_));
    OP_REQUIRES_OK(ctx, ctx->GetAttr("skip_bad_files", &skip_bad_files_));
    OP_REQUIRES_OK(ctx, ctx->GetAttr("bad_file_log", &bad_file_log_));
    OP_REQUIRES(ctx, batch_size_ >= 1 && format_.batch_rows >= 1 && format_.block_size >= 1,
                tensorflow::errors::InvalidArgument("batch_size, batch_rows and block_size must "
                                                    "be >= 1"));
    OP_REQUIRES(ctx, format_.block_size <= INT32_MAX,  // Arrow's CSV block size is an int32
                tensorflow::errors::InvalidArgument("block_size must be < 2**31, got ",
                                                    format_.block_size));
    for (const auto& attr : def().attr()) {
      if (attr.first != "output_types" && attr.first != "output_shapes") {
        attrs_.emplace_back(attr.first, attr.second);
      }
    }
  }

  void MakeDataset(OpKernelContext* ctx, DatasetBase** output) override {
    const Tensor &paths = ctx->input(0), &starts = ctx->input(1), &stops = ctx->input(2),
                 &rows = ctx->input(3), &bounds = ctx->input(4);
    const int64_t n = paths.NumElements();
    OP_REQUIRES(ctx, starts.NumElements() == n && stops.NumElements() == n &&
                         rows.NumElements() == n,
                tensorflow::errors::InvalidArgument("paths, starts, stops and row_counts need "
                                                    "one entry per item, got ", n, ", ",
                                                    starts.NumElements(), ", ",
                                                    stops.NumElements(), ", ", rows.NumElements()));
    OP_REQUIRES(ctx, bounds.NumElements() == 3 * static_cast<int64_t>(columns_.size()),
                tensorflow::errors::InvalidArgument("numeric_bounds needs 3 values per column"));
    std::vector<Item> items;
    for (int64_t i = 0; i < n; ++i) {
      items.push_back({std::string(paths.flat<tensorflow::tstring>()(i)),
                       starts.flat<int64_t>()(i), stops.flat<int64_t>()(i),
                       rows.flat<int64_t>()(i)});
      OP_REQUIRES(ctx, items.back().start >= 0,
                  tensorflow::errors::InvalidArgument("starts must be >= 0, got ",
                                                      items.back().start));
    }
    std::vector<ColumnSpec> columns = columns_;
    std::vector<double> bound_values(bounds.flat<double>().data(),
                                     bounds.flat<double>().data() + bounds.NumElements());
    for (size_t c = 0; c < columns.size(); ++c) {
      columns[c].min = bound_values[3 * c];
      columns[c].max = bound_values[3 * c + 1];
      columns[c].fill_value = bound_values[3 * c + 2];
    }
    *output = new Dataset(ctx, std::move(items), std::move(columns), format_, batch_size_,
                          drop_remainder_, skip_bad_files_, bad_file_log_,
                          std::move(bound_values), attrs_);
  }

 private:
  std::vector<ColumnSpec> columns_;
  FileFormat format_;
  int64_t batch_size_, bad_file_log_;
  bool drop_remainder_, skip_bad_files_;
  std::vector<std::pair<std::string, tensorflow::AttrValue>> attrs_;
};

REGISTER_OP("DrlArrowReaderDataset")
    .Input("paths: string")
    .Input("starts: int64")
    .Input("stops: int64")
    .Input("row_counts: int64")
    .Input("numeric_bounds: float64")
    .Output("handle: variant")
    .Attr("file_format: string")
    .Attr("column_names: list(string)")
    .Attr("column_kinds: list(int)")
    .Attr("transforms: list(int)")
    .Attr("binary: list(bool)")
    .Attr("default_ints: list(int)")
    .Attr("default_strings: list(string)")
    .Attr("separators: list(string)")
    .Attr("max_lens: list(int)")
    .Attr("keep_last: list(bool)")
    .Attr("hash_ids: list(bool)")
    .Attr("delimiter: string = ','")
    .Attr("header: bool = true")
    .Attr("file_columns: list(string) = []")
    .Attr("null_values: list(string) = ['']")
    .Attr("quote_char: string = '\"'")
    .Attr("block_size: int = 4194304")
    .Attr("batch_rows: int = 65536")
    .Attr("batch_size: int")
    .Attr("drop_remainder: bool = false")
    .Attr("skip_bad_files: bool = false")
    .Attr("bad_file_log: int = 0")
    .Attr("output_types: list(type) >= 1")
    .Attr("output_shapes: list(shape) >= 1")
    .SetIsStateful()  // a source dataset: keeps constant folding away
    .SetShapeFn(tensorflow::shape_inference::ScalarShape)
    .Doc("Batches of schema columns read from Parquet or CSV work items with Arrow C++.");

REGISTER_KERNEL_BUILDER(Name("DrlArrowReaderDataset").Device(tensorflow::DEVICE_CPU),
                        ArrowReaderDatasetOp);

}  // namespace
}  // namespace deeprec_lite

// The bad-file logs, read from Python with ctypes: how many files a log holds, and the path
// (part 0) or reason (part 1) of entry `index` (valid until the log is dropped).
extern "C" {
__attribute__((visibility("default"))) int64_t DrlBadFileCount(int64_t log) {
  auto& logs = deeprec_lite::Logs();
  std::lock_guard<std::mutex> lock(logs.mu);
  auto it = logs.logs.find(log);
  return it == logs.logs.end() ? 0 : static_cast<int64_t>(it->second.size());
}

__attribute__((visibility("default"))) const char* DrlBadFileEntry(int64_t log, int64_t index,
                                                                   int part) {
  auto& logs = deeprec_lite::Logs();
  std::lock_guard<std::mutex> lock(logs.mu);
  const auto& entry = logs.logs.at(log).at(index);
  return (part == 0 ? entry.first : entry.second).c_str();
}

__attribute__((visibility("default"))) void DrlBadFileDrop(int64_t log) {
  auto& logs = deeprec_lite::Logs();
  std::lock_guard<std::mutex> lock(logs.mu);
  logs.logs.erase(log);
}
}
