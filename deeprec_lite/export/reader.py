"""read_embeddings: an export directory back as Arrow tables, verified against its manifest."""
import dataclasses
import os
from typing import Dict

import pyarrow as pa
import pyarrow.parquet as pq

from deeprec_lite.export import arrow_tables, deltas, manifest


@dataclasses.dataclass
class EmbeddingExport:
    """A verified export: `manifest` (dict) and `tables` {name: pyarrow.Table with
    columns key, value, freq, version}; a delta export's tables hold its records and
    `tombstones` {name: pyarrow.Array of the keys to delete} (empty for a full export)."""

    manifest: dict
    tables: dict
    tombstones: Dict[str, pa.Array] = dataclasses.field(default_factory=dict)

    def numpy(self, name):
        """(keys, values [N, dim] float32, freqs, versions) of table `name`."""
        if name not in self.tables:
            raise ValueError(f"name: unknown table {name!r}; available: "
                             f"{', '.join(sorted(self.tables))}")
        return arrow_tables.table_numpy(self.tables[name])


def read_embeddings(directory, tables=None, verify=True):
    """Reads an export of `export_embeddings`.

    Checks that `directory` holds a deeprec-lite manifest, that every listed file
    exists with its size, sha256 and row count, and that the columns match the
    manifest's dim and dtypes; raises ValueError naming the problem otherwise.
    `tables`: names to read (None: all). `verify=False` skips the checksums.
    """
    directory = os.fspath(directory)
    meta = manifest.read(directory)
    try:
        return _read_export(directory, meta, tables, verify)
    except (KeyError, TypeError, AttributeError) as e:  # a field missing or of another type
        raise ValueError(f"export {directory!r}: {manifest.MANIFEST} is malformed ({e!r}); "
                         "export again") from e


def _read_export(directory, meta, tables, verify):
    if meta.get("kind") != "parquet":
        raise ValueError(f"{directory!r} is a deeprec-lite {meta.get('kind')!r} export, not a "
                         "Parquet embedding export")
    names = list(meta["tables"]) if tables is None else list(tables)
    out, tombstones = {}, {}
    for name in names:
        if name not in meta["tables"]:
            raise ValueError(f"tables: unknown table {name!r} in export {directory!r}; "
                             f"available: {', '.join(sorted(meta['tables']))}")
        out[name] = _read_table(directory, name, meta["tables"][name], verify)
        entry = meta["tables"][name].get("tombstones")
        if entry is not None:
            tombstones[name] = deltas.read_tombstones(directory, entry, verify)
            if len(tombstones[name]) != entry["rows"]:
                raise ValueError(f"export {directory!r}: {entry['path']!r} holds "
                                 f"{len(tombstones[name])} keys, the manifest says {entry['rows']}")
    return EmbeddingExport(meta, out, tombstones)


def _read_table(directory, name, summary, verify):
    parts = []
    for entry in summary["files"]:
        if verify:
            path = manifest.verify_file(directory, entry)
        else:
            path = os.path.join(directory, entry["path"])
        part = pq.read_table(path)
        if summary.get("key_arrow_type") == "binary" and pa.types.is_string(
                part.schema.field("key").type):  # see export.filtering.TableFilter
            part = part.cast(arrow_tables.schema(pa.binary(), summary["dim"]))
        if part.num_rows != entry["rows"]:
            raise ValueError(f"export {directory!r}: {entry['path']!r} holds {part.num_rows} rows, "
                             f"the manifest says {entry['rows']}")
        parts.append(part)
    table = pa.concat_tables(parts) if parts else None
    if table is None or table.num_rows != summary["kept"]:
        raise ValueError(f"export {directory!r}: table {name!r} holds "
                         f"{0 if table is None else table.num_rows} rows, the manifest says "
                         f"{summary['kept']}")
    key_type = table.schema.field("key").type
    int_keys = summary["key_dtype"] == "int64"
    if int_keys != pa.types.is_int64(key_type) or not (
            int_keys or pa.types.is_binary(key_type) or pa.types.is_string(key_type)):
        raise ValueError(f"export {directory!r}: table {name!r} has keys {key_type}, the "
                         f"manifest says {summary['key_dtype']}")
    value_type = table.schema.field("value").type
    if value_type.list_size != summary["dim"] or value_type.value_type != pa.float32():
        raise ValueError(f"export {directory!r}: table {name!r} has values {value_type}, the "
                         f"manifest says float32[{summary['dim']}]")
    return table
