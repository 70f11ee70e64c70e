// Parquet and CSV / TSV work items read with Arrow C++ and converted column by column.
// Compiled as C++20 (the Arrow headers need it); see arrow_batch_reader.h.
#include "arrow_batch_reader.h"

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <fstream>
#include <utility>

#include <arrow/api.h>
#include <arrow/compute/api.h>
#include <arrow/compute/initialize.h>
#include <arrow/csv/api.h>
#include <arrow/io/api.h>
#include <arrow/util/parallel.h>
#include <arrow/util/value_parsing.h>
#include <parquet/arrow/reader.h>
#include <parquet/arrow/schema.h>
#include <parquet/exception.h>
#include <parquet/file_reader.h>
#include <parquet/metadata.h>

namespace deeprec_lite {
namespace {

using ArrayPtr = std::shared_ptr<arrow::Array>;

// The Arrow data that string views point into, held by the batch.
struct KeepAlive {
  std::vector<ArrayPtr> arrays;
};

bool Fail(ReadError* error, std::string column, std::string message) {
  error->column = std::move(column);
  error->message = std::move(message);
  return false;
}

std::string Number(double value) {
  char text[32];
  std::snprintf(text, sizeof(text), "%g", value);
  return text;
}

// `array` as `type` (dictionaries decoded, integer widths, string kinds, null columns).
bool CastTo(const ArrayPtr& array, const std::shared_ptr<arrow::DataType>& type,
            const std::string& column, ArrayPtr* out, ReadError* error) {
  if (array->type()->Equals(*type)) {
    *out = array;
    return true;
  }
  auto cast = arrow::compute::Cast(*array, type);
  if (!cast.ok()) {
    return Fail(error, column, "cannot convert for schema field: " + cast.status().ToString());
  }
  *out = *std::move(cast);
  return true;
}

bool IsText(const arrow::DataType& type) {
  auto id = type.id();
  if (id == arrow::Type::DICTIONARY) {
    id = static_cast<const arrow::DictionaryType&>(type).value_type()->id();
  }
  return id == arrow::Type::STRING || id == arrow::Type::LARGE_STRING ||
         id == arrow::Type::STRING_VIEW;
}

bool ConvertLabel(const ColumnSpec& spec, const ArrayPtr& raw, int64_t rows,
                  ConvertedColumn* out, ReadError* error) {
  ArrayPtr cast;
  if (!CastTo(raw, arrow::float64(), spec.name, &cast, error)) return false;
  if (cast->null_count() > 0) {
    return Fail(error, spec.name,
                "label has " + std::to_string(cast->null_count()) + " missing value(s)");
  }
  const double* v = static_cast<const arrow::DoubleArray&>(*cast).raw_values();
  int64_t bad = 0, outside = 0;
  double first_bad = 0, first_outside = 0;
  for (int64_t i = 0; i < rows; ++i) {
    if (!std::isfinite(v[i])) {
      if (bad++ == 0) first_bad = v[i];
    } else if (spec.binary && (v[i] < 0 || v[i] > 1)) {
      if (outside++ == 0) first_outside = v[i];
    }
  }
  if (bad) {
    return Fail(error, spec.name, std::to_string(bad) + " label(s) are not finite (first: " +
                                      Number(first_bad) + ")");
  }
  if (outside) {
    return Fail(error, spec.name, std::to_string(outside) +
                                      " label(s) of a binary label are outside [0, 1] (first: " +
                                      Number(first_outside) + ")");
  }
  if (spec.kind == ColumnKind::kLabelInt) {
    out->ints.resize(rows);
    for (int64_t i = 0; i < rows; ++i) out->ints[i] = static_cast<int64_t>(v[i]);
  } else {
    out->floats.resize(rows);
    for (int64_t i = 0; i < rows; ++i) out->floats[i] = static_cast<float>(v[i]);
  }
  return true;
}

// log1p of the integers [0, kLogTableSize): counts (Criteo's numeric features, 96% of them
// below 4096) mostly are, and a table gives the same doubles as std::log1p, which costs
// more than the rest of a numeric column's conversion.
constexpr int64_t kLogTableSize = 4096;

const double* SmallLog1p() {
  static const double* table = [] {
    double* t = new double[kLogTableSize];
    for (int64_t k = 0; k < kLogTableSize; ++k) t[k] = std::log1p(static_cast<double>(k));
    return t;
  }();
  return table;
}

// sign(x) * log1p(|x|), as numpy computes it.
double SignedLog1p(double x, const double* small) {
  const double a = std::fabs(x);
  if (a < kLogTableSize) {
    const int64_t k = static_cast<int64_t>(a);
    if (static_cast<double>(k) == a) return x < 0 ? -small[k] : small[k];
  }
  return (x > 0 ? 1.0 : (x < 0 ? -1.0 : 0.0)) * std::log1p(a);
}

bool ConvertNumeric(const ColumnSpec& spec, const ArrayPtr& raw, int64_t rows,
                    ConvertedColumn* out, ReadError* error) {
  ArrayPtr cast;
  if (!CastTo(raw, arrow::float64(), spec.name, &cast, error)) return false;
  const auto& doubles = static_cast<const arrow::DoubleArray&>(*cast);
  const double* v = doubles.raw_values();
  const bool nulls = doubles.null_count() > 0;
  const float fill = static_cast<float>(spec.fill_value);
  out->floats.resize(rows);
  float* dst = out->floats.data();
  int64_t infinite = 0;
  double first = 0;
  const double* small = SmallLog1p();
  for (int64_t i = 0; i < rows; ++i) {
    double x = v[i];
    if ((nulls && doubles.IsNull(i)) || std::isnan(x)) {
      dst[i] = fill;
      continue;
    }
    if (std::isinf(x)) {
      if (infinite++ == 0) first = x;
      continue;
    }
    if (spec.transform == NumericTransform::kSignedLog) {
      x = SignedLog1p(x, small);
    } else if (spec.transform == NumericTransform::kMinMax) {
      x = (std::min(std::max(x, spec.min), spec.max) - spec.min) / (spec.max - spec.min);
    }
    dst[i] = static_cast<float>(x);
  }
  if (infinite) {
    return Fail(error, spec.name, std::to_string(infinite) + " infinite value(s) (first: " +
                                      Number(first) + ")");
  }
  return true;
}

bool ConvertIntIds(const ColumnSpec& spec, const ArrayPtr& raw, int64_t rows,
                   ConvertedColumn* out, ReadError* error) {
  ArrayPtr cast;
  if (!CastTo(raw, arrow::int64(), spec.name, &cast, error)) return false;
  const auto& ints = static_cast<const arrow::Int64Array&>(*cast);
  out->ints.assign(ints.raw_values(), ints.raw_values() + rows);
  if (ints.null_count() > 0) {
    for (int64_t i = 0; i < rows; ++i) {
      if (ints.IsNull(i)) out->ints[i] = spec.default_int;
    }
  }
  return true;
}

bool ConvertStringIds(const ColumnSpec& spec, const ArrayPtr& raw, int64_t rows,
                      ConvertedColumn* out, KeepAlive* keep, ReadError* error) {
  const std::string_view fallback(spec.default_string);
  if (raw->type_id() == arrow::Type::DICTIONARY) {  // views into the dictionary
    const auto& encoded = static_cast<const arrow::DictionaryArray&>(*raw);
    ArrayPtr words;
    if (!CastTo(encoded.dictionary(), arrow::utf8(), spec.name, &words, error)) return false;
    const auto& strings = static_cast<const arrow::StringArray&>(*words);
    out->strings.resize(rows);
    for (int64_t i = 0; i < rows; ++i) {
      out->strings[i] = encoded.IsNull(i) ? fallback : strings.GetView(encoded.GetValueIndex(i));
    }
    keep->arrays.push_back(std::move(words));
    return true;
  }
  ArrayPtr cast;
  if (!CastTo(raw, arrow::utf8(), spec.name, &cast, error)) return false;
  const auto& strings = static_cast<const arrow::StringArray&>(*cast);
  if (strings.null_count() == 0) {  // the tensor copies straight from Arrow's buffers
    out->text_offsets = strings.raw_value_offsets();
    out->text = reinterpret_cast<const char*>(strings.raw_data());
  } else {
    out->strings.resize(rows);
    for (int64_t i = 0; i < rows; ++i) {
      out->strings[i] = strings.IsNull(i) ? fallback : strings.GetView(i);
    }
  }
  keep->arrays.push_back(std::move(cast));
  return true;
}

// Multi-valued ids: lists (of any integer / string type) or text joined by the separator.
// Null and empty elements are dropped; max_len keeps the first or last ids of a row.
bool ConvertMultiIds(const ColumnSpec& spec, const ArrayPtr& raw, int64_t rows,
                     ConvertedColumn* out, KeepAlive* keep, ReadError* error) {
  const bool want_int = spec.kind == ColumnKind::kMultiInt;
  out->offsets.assign(rows + 1, 0);
  if (raw->type_id() == arrow::Type::NA) return true;
  ArrayPtr lists = raw;
  if (IsText(*raw->type())) {
    ArrayPtr text;
    if (!CastTo(raw, arrow::utf8(), spec.name, &text, error)) return false;
    arrow::compute::SplitPatternOptions options(spec.separator);
    auto split = arrow::compute::CallFunction("split_pattern", {text}, &options);
    if (!split.ok()) {
      return Fail(error, spec.name, "cannot split ids: " + split.status().ToString());
    }
    lists = split->make_array();
  }
  if (lists->type_id() != arrow::Type::LIST) {
    const auto* nested = dynamic_cast<const arrow::BaseListType*>(lists->type().get());
    if (nested == nullptr) {
      return Fail(error, spec.name, "has type " + lists->type()->ToString() +
                                        ", but a multi-valued field needs a list or text");
    }
    if (!CastTo(lists, arrow::list(nested->value_type()), spec.name, &lists, error)) {
      return false;
    }
  }
  const auto& list = static_cast<const arrow::ListArray&>(*lists);
  ArrayPtr values = list.values();
  const bool text_values = IsText(*values->type());
  if (values->type_id() == arrow::Type::NA) return true;
  if (text_values) {
    if (!CastTo(values, arrow::utf8(), spec.name, &values, error)) return false;
  } else if (!want_int) {
    return Fail(error, spec.name, "has integer ids, but the schema field needs strings");
  } else if (!CastTo(values, arrow::int64(), spec.name, &values, error)) {
    return false;
  }
  const auto* strings = text_values ? &static_cast<const arrow::StringArray&>(*values) : nullptr;
  const auto* ints = text_values ? nullptr : &static_cast<const arrow::Int64Array&>(*values);
  std::vector<int64_t> row_ints;
  std::vector<std::string_view> row_strings;
  for (int64_t r = 0; r < rows; ++r) {
    row_ints.clear();
    row_strings.clear();
    if (!list.IsNull(r)) {
      for (int64_t j = list.value_offset(r); j < list.value_offset(r + 1); ++j) {
        if (values->IsNull(j)) continue;
        if (ints != nullptr) {
          row_ints.push_back(ints->Value(j));
          continue;
        }
        std::string_view id = strings->GetView(j);
        if (id.empty()) continue;
        if (!want_int) {
          row_strings.push_back(id);
          continue;
        }
        int64_t parsed;
        if (!arrow::internal::ParseValue<arrow::Int64Type>(id.data(), id.size(), &parsed)) {
          return Fail(error, spec.name,
                      "ids do not parse as int64: invalid value '" + std::string(id) + "'");
        }
        row_ints.push_back(parsed);
      }
    }
    const int64_t n = want_int ? row_ints.size() : row_strings.size();
    const int64_t kept = spec.max_len >= 0 ? std::min(n, spec.max_len) : n;
    const int64_t from = spec.keep_last ? n - kept : 0;
    if (want_int) {
      out->ints.insert(out->ints.end(), row_ints.begin() + from, row_ints.begin() + from + kept);
    } else {
      out->strings.insert(out->strings.end(), row_strings.begin() + from,
                          row_strings.begin() + from + kept);
    }
    out->offsets[r + 1] = out->offsets[r] + kept;
  }
  if (!want_int) keep->arrays.push_back(values);
  return true;
}

bool ConvertColumn(const ColumnSpec& spec, const arrow::RecordBatch& batch,
                   ConvertedColumn* column, KeepAlive* keep, ReadError* error) {
  ArrayPtr raw = batch.GetColumnByName(spec.name);
  if (raw == nullptr) return Fail(error, spec.name, "column is missing");
  const int64_t rows = batch.num_rows();
  switch (spec.kind) {
    case ColumnKind::kLabelFloat:
    case ColumnKind::kLabelInt:
      return ConvertLabel(spec, raw, rows, column, error);
    case ColumnKind::kNumeric:
      return ConvertNumeric(spec, raw, rows, column, error);
    case ColumnKind::kIdInt:
      return ConvertIntIds(spec, raw, rows, column, error);
    case ColumnKind::kIdString:
      return ConvertStringIds(spec, raw, rows, column, keep, error);
    case ColumnKind::kMultiInt:
    case ColumnKind::kMultiString:
      return ConvertMultiIds(spec, raw, rows, column, keep, error);
  }
  return Fail(error, spec.name, "unknown column kind");
}

// Converts the spec columns of a record batch (found by name), columns in parallel on
// Arrow's CPU thread pool; the first failing column (in spec order) is reported.
bool ConvertBatch(const arrow::RecordBatch& batch, const std::vector<ColumnSpec>& specs,
                  ConvertedBatch* out, ReadError* error) {
  const int n = static_cast<int>(specs.size());
  std::vector<KeepAlive> keeps(n);
  std::vector<ReadError> errors(n);
  out->rows = batch.num_rows();
  out->columns.assign(n, ConvertedColumn());
  const arrow::Status status = arrow::internal::ParallelFor(n, [&](int c) {
    ConvertColumn(specs[c], batch, &out->columns[c], &keeps[c], &errors[c]);
    return arrow::Status::OK();
  });
  if (!status.ok()) return Fail(error, "", "cannot convert: " + status.ToString());
  auto keep = std::make_shared<KeepAlive>();
  for (int c = 0; c < n; ++c) {
    if (!errors[c].ok()) {
      *error = errors[c];
      return false;
    }
    keep->arrays.insert(keep->arrays.end(), keeps[c].arrays.begin(), keeps[c].arrays.end());
  }
  out->keep_alive = std::move(keep);
  return true;
}

void InitializeCompute() {
  static const arrow::Status status = arrow::compute::Initialize();
  (void)status;
}

// Leaf column indices of a top-level Parquet field (lists have one leaf, structs several).
void CollectLeaves(const parquet::arrow::SchemaField& field, std::vector<int>* leaves) {
  if (field.is_leaf()) {
    leaves->push_back(field.column_index);
    return;
  }
  for (const auto& child : field.children) CollectLeaves(child, leaves);
}

class ParquetItemReader : public ItemReader {
 public:
  explicit ParquetItemReader(const std::vector<ColumnSpec>* specs) : specs_(specs) {}

  bool Open(const std::string& path, int64_t start, int64_t stop, const FileFormat& format,
            ReadError* error) {
    auto file = arrow::io::ReadableFile::Open(path);
    if (!file.ok()) return Fail(error, "", "cannot open: " + file.status().ToString());
    parquet::ArrowReaderProperties properties;
    properties.set_batch_size(format.batch_rows);
    properties.set_use_threads(true);
    properties.set_pre_buffer(true);
    parquet::arrow::FileReaderBuilder builder;
    auto opened = builder.Open(*file);
    if (!opened.ok()) {
      return Fail(error, "", "not a readable Parquet file (truncated or corrupt?): " +
                                 opened.ToString());
    }
    auto metadata = builder.raw_reader()->metadata();
    parquet::arrow::SchemaManifest manifest;
    auto made = parquet::arrow::SchemaManifest::Make(
        metadata->schema(), metadata->key_value_metadata(), properties, &manifest);
    if (!made.ok()) return Fail(error, "", "unreadable Parquet schema: " + made.ToString());
    std::vector<int> leaves;
    for (const ColumnSpec& spec : *specs_) {
      const parquet::arrow::SchemaField* found = nullptr;
      for (const auto& field : manifest.schema_fields) {
        if (field.field->name() == spec.name) found = &field;
      }
      if (found == nullptr) return Fail(error, spec.name, "column is missing");
      CollectLeaves(*found, &leaves);
    }
    auto built = builder.properties(properties)->Build();
    if (!built.ok()) {
      return Fail(error, "", "not a readable Parquet file (truncated or corrupt?): " +
                                 built.status().ToString());
    }
    reader_ = *std::move(built);
    std::sort(leaves.begin(), leaves.end());
    leaves.erase(std::unique(leaves.begin(), leaves.end()), leaves.end());
    const int64_t total = metadata->num_rows();
    stop_ = stop < 0 ? total : std::min(stop, total);
    std::vector<int> groups;
    int64_t group_start = 0;
    for (int g = 0; g < metadata->num_row_groups(); ++g) {
      const int64_t rows = metadata->RowGroup(g)->num_rows();
      if (group_start < stop_ && group_start + rows > start && rows > 0) {
        if (groups.empty()) position_ = group_start;
        groups.push_back(g);
      }
      group_start += rows;
    }
    start_ = start;
    if (groups.empty()) return true;
    auto batches = reader_->GetRecordBatchReader(groups, leaves);
    if (!batches.ok()) return ReadFailure(batches.status(), error);
    batches_ = *std::move(batches);
    return true;
  }

  bool Next(ConvertedBatch* batch, ReadError* error) override {
    while (batches_ != nullptr && position_ < stop_) {
      std::shared_ptr<arrow::RecordBatch> next;
      arrow::Status status;
      try {
        status = batches_->ReadNext(&next);
      } catch (const parquet::ParquetException& e) {
        status = arrow::Status::IOError(e.what());
      }
      if (!status.ok()) return ReadFailure(status, error);
      if (next == nullptr) break;
      const int64_t lo = std::max<int64_t>(start_ - position_, 0);
      const int64_t hi = std::min<int64_t>(stop_ - position_, next->num_rows());
      position_ += next->num_rows();
      if (hi <= lo) continue;
      if (lo > 0 || hi < next->num_rows()) next = next->Slice(lo, hi - lo);
      return ConvertBatch(*next, *specs_, batch, error);
    }
    return false;
  }

 private:
  static bool ReadFailure(const arrow::Status& status, ReadError* error) {
    return Fail(error, "", "error while reading (truncated or corrupt?): " + status.ToString());
  }

  const std::vector<ColumnSpec>* specs_;
  std::unique_ptr<parquet::arrow::FileReader> reader_;
  std::unique_ptr<arrow::RecordBatchReader> batches_;
  int64_t start_ = 0, stop_ = 0, position_ = 0;
};

class CsvItemReader : public ItemReader {
 public:
  explicit CsvItemReader(const std::vector<ColumnSpec>* specs) : specs_(specs) {}

  bool Open(const std::string& path, int64_t start, int64_t stop, int64_t skip_rows,
            const FileFormat& format, ReadError* error) {
    names_ = format.header ? HeaderNames(path, format) : format.column_names;
    auto file = arrow::io::ReadableFile::Open(path);
    if (!file.ok()) return Fail(error, "", "cannot open: " + file.status().ToString());
    auto size = (*file)->GetSize();
    if (!size.ok()) return Fail(error, "", "cannot read: " + size.status().ToString());
    const int64_t end = stop < 0 ? *size : std::min(stop, *size);
    if (end <= start) return true;
    std::shared_ptr<arrow::io::InputStream> input;
    auto stream = arrow::io::RandomAccessFile::GetStream(*file, start, end - start);
    if (!stream.ok()) return Fail(error, "", "cannot read: " + stream.status().ToString());
    input = *std::move(stream);
    auto read = arrow::csv::ReadOptions::Defaults();
    read.use_threads = true;
    read.block_size = static_cast<int32_t>(format.block_size);
    read.column_names = names_;
    read.skip_rows = format.header && start == 0 ? 1 : 0;
    // Records, not lines (Arrow's skip_rows counts lines: blank ones, quoted line breaks).
    skip_records_ = skip_rows;
    auto parse = arrow::csv::ParseOptions::Defaults();
    parse.delimiter = format.delimiter;
    parse.quoting = format.quoting;
    parse.quote_char = format.quote_char;
    auto convert = arrow::csv::ConvertOptions::Defaults();
    convert.null_values = format.null_values;
    convert.strings_can_be_null = true;
    convert.quoted_strings_can_be_null = true;
    for (const ColumnSpec& spec : *specs_) {
      convert.include_columns.push_back(spec.name);
      std::shared_ptr<arrow::DataType> type = arrow::utf8();
      if (spec.kind == ColumnKind::kLabelFloat || spec.kind == ColumnKind::kLabelInt ||
          spec.kind == ColumnKind::kNumeric) {
        type = arrow::float64();
      } else if (spec.kind == ColumnKind::kIdInt) {
        type = arrow::int64();
      }
      convert.column_types[spec.name] = type;
    }
    auto reader = arrow::csv::StreamingReader::Make(arrow::io::default_io_context(), input,
                                                    read, parse, convert);
    if (!reader.ok()) {
      // An empty input (or one with only skipped rows) has no rows to read.
      if (reader.status().message().find("Empty CSV file") != std::string::npos) return true;
      return ParseFailure(reader.status(), error);
    }
    reader_ = *std::move(reader);
    return true;
  }

  bool Next(ConvertedBatch* batch, ReadError* error) override {
    while (reader_ != nullptr) {
      std::shared_ptr<arrow::RecordBatch> next;
      auto status = reader_->ReadNext(&next);
      if (!status.ok()) return ParseFailure(status, error);
      if (next == nullptr) return false;
      if (next->num_rows() <= skip_records_) {
        skip_records_ -= next->num_rows();
        continue;
      }
      if (skip_records_ > 0) next = next->Slice(std::exchange(skip_records_, 0));
      return ConvertBatch(*next, *specs_, batch, error);
    }
    return false;
  }

 private:
  // The names on the first line, split at the delimiter, quote characters stripped.
  static std::vector<std::string> HeaderNames(const std::string& path, const FileFormat& format) {
    std::ifstream file(path, std::ios::binary);
    std::string line;
    std::getline(file, line);
    if (!line.empty() && line.back() == '\r') line.pop_back();
    std::vector<std::string> names;
    size_t from = 0;
    while (true) {
      const size_t to = line.find(format.delimiter, from);
      std::string name = line.substr(from, to == std::string::npos ? to : to - from);
      if (format.quoting) {
        const size_t lo = name.find_first_not_of(format.quote_char);
        const size_t hi = name.find_last_not_of(format.quote_char);
        name = lo == std::string::npos ? "" : name.substr(lo, hi - lo + 1);
      }
      names.push_back(std::move(name));
      if (to == std::string::npos) break;
      from = to + 1;
    }
    return names;
  }

  // Arrow names the column by its index ("column #3"): name it as the file does.
  bool ParseFailure(const arrow::Status& status, ReadError* error) const {
    const std::string message = status.ToString();
    std::string column;
    const size_t at = message.find("column #");
    if (at != std::string::npos) {
      const size_t index = std::strtoul(message.c_str() + at + 8, nullptr, 10);
      if (index < names_.size()) column = names_[index];
    }
    return Fail(error, column, "cannot parse: " + message);
  }

  const std::vector<ColumnSpec>* specs_;
  std::vector<std::string> names_;
  std::shared_ptr<arrow::csv::StreamingReader> reader_;
  int64_t skip_records_ = 0;  // parsed records still to drop (a restored position)
};

}  // namespace

std::unique_ptr<ItemReader> ItemReader::Open(const std::string& path, int64_t start,
                                             int64_t stop, int64_t skip_rows,
                                             const FileFormat& format,
                                             const std::vector<ColumnSpec>& columns,
                                             ReadError* error) {
  InitializeCompute();
  *error = ReadError();
  if (format.csv) {
    auto reader = std::make_unique<CsvItemReader>(&columns);
    if (!reader->Open(path, start, stop, skip_rows, format, error)) return nullptr;
    return reader;
  }
  auto reader = std::make_unique<ParquetItemReader>(&columns);
  if (!reader->Open(path, start + skip_rows, stop, format, error)) return nullptr;
  return reader;
}

}  // namespace deeprec_lite
