"""Filtered export of KV embedding tables.

- `export_embeddings(model_or_checkpoint, out_dir, min_freq=, max_staleness=)`:
  per table a Parquet dataset (key, value, freq, version) and a manifest.json.
- `read_embeddings(dir)`: reads an export back and verifies its manifest.
- `export_embeddings(..., since=earlier_export)`: a delta (changed records and
  tombstones); `read_chain([full, delta, ...])` / `apply_delta` apply deltas.
- `export_saved_model(model, out_dir, min_freq=, max_staleness=)`: a serving
  SavedModel whose embedding tables are stock TensorFlow (no custom op);
  `predict_as_served(model, batch)` what it serves, computed from the live model.

A key is exported when it is admitted, its freq >= min_freq and
global_step - version <= max_staleness. Outputs are written to a temporary
directory beside `out_dir` and renamed into place.
"""
from deeprec_lite.export.deltas import apply_delta, read_chain
from deeprec_lite.export.parquet_export import export_embeddings
from deeprec_lite.export.reader import EmbeddingExport, read_embeddings
from deeprec_lite.export.report import format_report
from deeprec_lite.export.serving import export_saved_model, predict_as_served

__all__ = ["EmbeddingExport", "apply_delta", "export_embeddings", "export_saved_model",
           "format_report", "predict_as_served", "read_chain", "read_embeddings"]
