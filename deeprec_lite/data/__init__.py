"""Data input for deeprec-lite: schema, readers, synthetic data, dynamic work sharding (WorkQueue).

Readers give a ``tf.data.Dataset`` of ``(features, label)`` batches: ``features``
maps each feature field to a ``[B]`` tensor (single ids, numeric values) or a
``tf.RaggedTensor`` ``[B, None]`` (multi-valued ids, sequences).
"""
from deeprec_lite.data.auc import bayes_auc, roc_auc
from deeprec_lite.data.formats.csv_reader import CsvFormat, csv_num_rows, read_csv, read_csv_rows, read_tsv
from deeprec_lite.data.formats.errors import BadFileCounter, BadFileError
from deeprec_lite.data.formats.id_hashing import hash_string_ids
from deeprec_lite.data.formats.known_datasets import (CRITEO_COLUMNS, FRAPPE_FIELD_RANGES, criteo_schema,
                                              frappe_schema)
from deeprec_lite.data.workqueue.local_data_service import LocalDataService
from deeprec_lite.data.formats.libsvm_reader import (LibsvmLayout, libsvm_num_rows, read_libsvm,
                                             read_libsvm_rows)
from deeprec_lite.data.formats.parquet_reader import parquet_num_rows, read_parquet, read_parquet_rows
from deeprec_lite.data.formats.row_sources import CsvSource, LibsvmSource, ParquetSource, RowSource
from deeprec_lite.data.formats.schema import CategoricalField, LabelField, NumericField, Schema
from deeprec_lite.data.formats.schema_io import (load_schema, save_schema, schema_from_dict,
                                         schema_from_json, schema_from_yaml, schema_to_dict)
from deeprec_lite.data.synthetic.generator import SyntheticCTR, SyntheticConfig, SyntheticRows
from deeprec_lite.data.synthetic.output import SyntheticFiles, write_csv, write_parquet
from deeprec_lite.data.workqueue.work_items import WorkItem, plan_work_items, work_list_digest
from deeprec_lite.data.workqueue.queue import WorkQueue
from deeprec_lite.data.workqueue.state import WorkQueueState

__all__ = [
    "BadFileCounter", "BadFileError", "CRITEO_COLUMNS", "CategoricalField", "CsvFormat",
    "CsvSource", "FRAPPE_FIELD_RANGES", "LabelField", "LibsvmLayout", "LibsvmSource",
    "LocalDataService", "NumericField", "ParquetSource", "RowSource", "Schema",
    "SyntheticCTR", "SyntheticConfig", "SyntheticFiles", "SyntheticRows", "bayes_auc",
    "criteo_schema", "csv_num_rows", "frappe_schema", "hash_string_ids", "libsvm_num_rows",
    "load_schema",
    "parquet_num_rows", "read_csv", "read_csv_rows", "read_libsvm", "read_libsvm_rows",
    "read_parquet", "read_parquet_rows", "read_tsv", "roc_auc", "save_schema",
    "schema_from_dict", "schema_from_json", "schema_from_yaml", "schema_to_dict",
    "write_csv", "write_parquet",
    "WorkItem", "WorkQueue", "WorkQueueState", "plan_work_items", "work_list_digest",
]
