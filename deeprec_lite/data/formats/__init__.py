"""File formats and the schema: Parquet, CSV / TSV and libsvm readers, schema and its I/O."""
