// Reads schema columns of Parquet and CSV / TSV files with Arrow C++ and converts them to
// flat typed columns (what the readers' tf.data op copies into tensors).
//
// This header uses the standard library only: arrow_batch_reader.cc is compiled as C++20
// against the Arrow headers of the installed pyarrow wheel, arrow_dataset_op.cc as C++17
// against TensorFlow's headers, and neither sees the other's headers.
#ifndef DEEPREC_LITE_OPS_ARROW_BATCH_READER_H_
#define DEEPREC_LITE_OPS_ARROW_BATCH_READER_H_

#include <cstdint>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

namespace deeprec_lite {

// What a schema field becomes (see deeprec_lite/data/formats/schema.py).
enum class ColumnKind : int {
  kLabelFloat = 0,   // float32; nulls and non-finite values are errors
  kLabelInt = 1,     // int64 (cast from the float value)
  kNumeric = 2,      // float32 after the transform; null / NaN -> fill_value; inf is an error
  kIdInt = 3,        // int64; null -> default_int
  kIdString = 4,     // string; null -> default_string
  kMultiInt = 5,     // ragged int64: lists, or text joined by `separator`
  kMultiString = 6,  // ragged string
};

enum class NumericTransform : int { kNone = 0, kSignedLog = 1, kMinMax = 2 };

struct ColumnSpec {
  std::string name;
  ColumnKind kind = ColumnKind::kIdInt;
  bool binary = false;  // labels: outside [0, 1] is an error
  NumericTransform transform = NumericTransform::kNone;
  double min = 0, max = 1, fill_value = 0;
  int64_t default_int = -1;
  std::string default_string;
  std::string separator = "|";
  int64_t max_len = -1;  // multi: at most this many ids per row (-1: all)
  bool keep_last = false;
  // String ids: converted as strings here; the tf.data op hashes them into int64 tensors.
  bool hash_ids = false;
};

struct FileFormat {
  bool csv = false;  // else Parquet
  // CSV only.
  char delimiter = ',';
  bool header = true;
  std::vector<std::string> column_names;  // every column of the file, in order (no header)
  std::vector<std::string> null_values{""};
  char quote_char = '"';
  bool quoting = true;
  int64_t block_size = 4 << 20;
  // Parquet only: rows per record batch read.
  int64_t batch_rows = 65536;
};

// One converted column of `rows` rows. Exactly one of the value vectors is used: ints,
// floats or strings (or, for single string ids without nulls, Arrow's own layout: id i is
// text[text_offsets[i], text_offsets[i + 1])); ragged columns also fill `offsets` (rows + 1
// entries into the values). Strings point into `keep_alive`'s buffers.
struct ConvertedColumn {
  std::vector<int64_t> ints;
  std::vector<float> floats;
  std::vector<std::string_view> strings;
  const int32_t* text_offsets = nullptr;
  const char* text = nullptr;
  std::vector<int64_t> offsets;
};

struct ConvertedBatch {
  int64_t rows = 0;
  std::vector<ConvertedColumn> columns;  // in the order of the specs
  std::shared_ptr<void> keep_alive;      // the Arrow data behind `strings`
};

// Problems carry the column they concern (empty: the whole file) and a message.
struct ReadError {
  std::string column;
  std::string message;
  bool ok() const { return message.empty(); }
};

// Reads one work item: rows [start, stop) of a Parquet file (stop < 0: to the end), or the
// bytes [start, stop) of a CSV file (stop < 0: to the end; the header line is skipped when
// start is 0), after skipping `skip_rows` of its rows (a restored iterator's position).
class ItemReader {
 public:
  static std::unique_ptr<ItemReader> Open(const std::string& path, int64_t start, int64_t stop,
                                          int64_t skip_rows, const FileFormat& format,
                                          const std::vector<ColumnSpec>& columns,
                                          ReadError* error);
  virtual ~ItemReader() = default;
  // Fills `batch` with the next rows; false at the end of the item or on an error (then
  // `error` is set).
  virtual bool Next(ConvertedBatch* batch, ReadError* error) = 0;
};

}  // namespace deeprec_lite

#endif  // DEEPREC_LITE_OPS_ARROW_BATCH_READER_H_
