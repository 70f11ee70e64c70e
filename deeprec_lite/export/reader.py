"""read_embeddings: an export directory back as Arrow tables, verified against its manifest."""
import dataclasses
import os

import pyarrow as pa
import pyarrow.parquet as pq

from deeprec_lite.export import arrow_tables, manifest


@dataclasses.dataclass
class EmbeddingExport:
    """A verified export: `manifest` (dict) and `tables` {name: pyarrow.Table with
    columns key, value, freq, version}."""

    manifest: dict
    tables: dict

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
    if meta.get("kind") != "parquet":
        raise ValueError(f"{directory!r} is a deeprec-lite {meta.get('kind')!r} export, not a "
                         "Parquet embedding export")
    names = list(meta["tables"]) if tables is None else list(tables)
    out = {}
    for name in names:
        if name not in meta["tables"]:
            raise ValueError(f"tables: unknown table {name!r} in export {directory!r}; "
                             f"available: {', '.join(sorted(meta['tables']))}")
        out[name] = _read_table(directory, name, meta["tables"][name], verify)
    return EmbeddingExport(meta, out)


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
    value_type = table.schema.field("value").type
    if value_type.list_size != summary["dim"] or value_type.value_type != pa.float32():
        raise ValueError(f"export {directory!r}: table {name!r} has values {value_type}, the "
                         f"manifest says float32[{summary['dim']}]")
    return table
