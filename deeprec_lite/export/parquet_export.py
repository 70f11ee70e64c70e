"""export_embeddings: filtered KV tables as Parquet datasets plus a manifest.

Tables are read, filtered and written one chunk (an internal shard, about 1/32 of a
table) at a time, from a live model or from a checkpoint on disk, with a bounded
number of files in flight: an export never holds a second copy of a table."""
import collections
import concurrent.futures
import dataclasses
import os
import re

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from deeprec_lite._checks import check_int, check_positive_int
from deeprec_lite.export import arrow_tables, atomic, deltas, manifest, sources, validation
from deeprec_lite.export.filtering import TableFilter
from deeprec_lite.kv import deltas as kv_deltas

DEFAULT_MAX_FILE_BYTES = 64 << 20


def _write_file(table, path, compression):
    """Writes one Parquet file (module level, so tests can make it fail). `compression`
    applies to key, freq and version; float values are stored uncompressed (random
    mantissas do not compress, compressing them only costs time)."""
    codecs = {name: compression or "none" for name in ("key", "freq", "version")}
    codecs["value.list.element"] = "none"
    pq.write_table(table, path, compression=codecs, use_dictionary=False)


def _directory_names(names):
    """A file-system-safe, unique directory name per table name."""
    out, used = {}, set()
    for name in names:
        base = re.sub(r"[^A-Za-z0-9_.=-]", "_", name).strip(".") or "table"
        candidate, i = base, 1
        while candidate in used:
            candidate, i = f"{base}_{i}", i + 1
        used.add(candidate)
        out[name] = candidate
    return out


def _row_bytes(table):
    return max(1, table.nbytes // max(1, table.num_rows))


def export_embeddings(model_or_checkpoint, out_dir, min_freq=0, max_staleness=None, tables=None,
                      overwrite=False, global_step=None, max_file_bytes=DEFAULT_MAX_FILE_BYTES,
                      threads=None, compression="snappy", since=None):
    """Writes the kept records of KV tables as Parquet datasets with a manifest.

    Args:
      model_or_checkpoint: a Keras model (its KV tables, shared ones once), a
        KVVariable, a {name: KVVariable} mapping, or a tf.train.Checkpoint
        directory / prefix (read without building a model).
      out_dir: the export directory: `manifest.json` and
        `tables/<table>/part-NNNNN.parquet` (columns key, value, freq, version).
      min_freq: keep keys with freq >= min_freq (what freq counts:
        deeprec_lite.kv.policies.FREQ_COUNTING).
      max_staleness: keep keys with global_step - version <= max_staleness (None:
        no staleness filter). Keys not admitted are never exported.
      tables: names of the tables to export (None: all).
      overwrite: replace an existing export (atomically); otherwise refuse.
      global_step: the step staleness is measured from (default: the latest step
        clock of the source's tables), in [0, 2**63 - 1] like max_staleness;
        staleness is exact over that range (no int64 wraparound).
      max_file_bytes: upper bound (in Arrow memory) of the rows of one file.
      threads: file-writing threads (default: min(8, CPUs)).
      compression: Parquet codec of the key, freq and version columns (values are
        stored uncompressed).
      since: an earlier export directory (full or delta) with the same filters and
        tables: write a delta against it (export.deltas): per table only the kept
        records that changed since that export, and `tombstones.parquet` with the keys
        that left. Live tables (a model or KV variables) on the timeline the base
        recorded know what they touched since (their change stamps); for the others (a
        checkpoint source, or tables restored, imported or created anew since) the
        delta compares their kept records with the base's, which `since` must then give
        as a list: the base's full export, then its deltas in order (that reads the
        base's records and holds them beside one table's kept records).

    Returns the manifest (a dict; also written to out_dir/manifest.json).
    """
    validation.check_thresholds(min_freq, max_staleness)
    check_positive_int(max_file_bytes, "max_file_bytes")
    check_int(threads, "threads", minimum=1, none_ok=True)
    validation.check_compression(compression)
    source = sources.load_source(model_or_checkpoint)
    names = validation.select_tables(source.tables, tables)
    target = validation.check_out_dir(out_dir, source.checkpoint_dir)
    atomic.check_target(target, overwrite)
    step = validation.check_global_step(source.global_step if global_step is None
                                        else global_step)
    out = manifest.new_manifest(source, step, min_freq, max_staleness, kind="parquet")
    live = {} if source.checkpoint_dir else sources.kv_variables(model_or_checkpoint)
    if live:  # where a delta of these tables can start (kv.deltas.change_point)
        out["change_points"] = {}
    if since is not None:
        chain = deltas.chain_of(since, "since")
        base = manifest.read(chain[-1])
        base_step, stamped = deltas.check_base(chain[-1], base, names, step, min_freq,
                                               max_staleness, live)
        out["delta"] = {"base_export_id": base["export_id"], "base_step": base_step}
    directories = _directory_names(names)
    threads = threads or min(8, os.cpu_count() or 1)
    with atomic.atomic_directory(target, overwrite) as tmp, \
            concurrent.futures.ThreadPoolExecutor(threads) as pool:
        pending = collections.deque()  # (file list, future), in submission order

        def collect(limit):
            while len(pending) > limit:
                files, future = pending.popleft()
                files.append(future.result())

        try:
            for name in names:
                folder = os.path.join(tmp, "tables", directories[name])
                os.makedirs(folder)
                snapshot = source.tables[name]
                if name in live:
                    out["change_points"][name] = kv_deltas.change_point(live[name])
                file_bytes = max_file_bytes
                if since is not None:
                    if name in stamped:
                        records, tombstones = deltas.table_delta(
                            live[name], base["change_points"][name]["change_step"], base_step,
                            step, min_freq, max_staleness)
                    else:
                        records, tombstones = deltas.compared_delta(
                            snapshot, deltas.base_records(chain, name), step,
                            min_freq, max_staleness)
                    snapshot = dataclasses.replace(
                        snapshot, chunks=lambda with_slots=True, r=records: iter([r]))
                    # one chunk: in as many files as there are threads to write them
                    file_bytes = min(max_file_bytes, max(1 << 20, (
                        records.values.nbytes + 24 * len(records.keys)) // threads + 1))
                table_filter = TableFilter(snapshot, step, min_freq, max_staleness)
                files = []
                for piece in _pieces(snapshot, table_filter, file_bytes):
                    path = os.path.join(folder, f"part-{len(files) + len(pending):05d}.parquet")
                    # the deque keeps each table's files in order; at most one per thread
                    # waits to be written
                    pending.append((files, pool.submit(_write_and_describe, tmp, piece, path,
                                                       compression)))
                    collect(threads)
                collect(0)
                summary = table_filter.summary()
                summary["key_arrow_type"] = str(table_filter.key_type)
                summary["files"] = files
                summary["directory"] = os.path.join("tables", directories[name])
                if since is not None:
                    path = deltas.write_tombstones(folder, tombstones, table_filter.key_type
                                                   or _empty_key_type(snapshot))
                    summary["tombstones"] = manifest.file_entry(tmp, path, rows=len(tombstones))
                out["tables"][name] = summary
        except BaseException:
            pool.shutdown(wait=True, cancel_futures=True)  # no more writes into tmp
            raise
        manifest.write(tmp, out)
    return out


def _pieces(snapshot, table_filter, max_file_bytes):
    """The Arrow tables of the files of one table: its kept records, chunk after chunk,
    gathered into pieces of at most max_file_bytes (one empty piece for a table that
    keeps nothing). At most one file's worth waits here beside the chunk being read."""
    held, held_rows, rows_per_file, written = [], 0, None, False
    for chunk in snapshot.chunks(with_slots=False):
        kept = table_filter.apply(chunk)
        del chunk  # before the next one is read
        table = arrow_tables.records_table(kept.key_array, kept.values, kept.freqs,
                                           kept.versions)
        del kept
        if table.num_rows == 0:
            continue
        if rows_per_file is None:
            rows_per_file = max(1, max_file_bytes // _row_bytes(table))
        held.append(table)
        held_rows += table.num_rows
        if held_rows >= rows_per_file:
            joined = _concat(held)
            full = held_rows - held_rows % rows_per_file
            for start in range(0, full, rows_per_file):
                written = True
                yield joined.slice(start, rows_per_file)
            held, held_rows = [joined.slice(full)] if full < held_rows else [], held_rows - full
    if held_rows:
        yield _concat(held)
    elif not written:
        key_type = table_filter.key_type or _empty_key_type(snapshot)
        yield arrow_tables.schema(key_type, snapshot.dim).empty_table()


def _empty_key_type(snapshot):
    """The Arrow key type of a table that exports no key."""
    return arrow_tables.key_array(np.zeros(0, np.int64) if snapshot.key_dtype == "int64"
                                  else np.zeros(0, object)).type


def _concat(tables):
    """One Arrow table of export pieces; string keys become binary when one piece's are
    (see filtering.TableFilter)."""
    if len({t.schema for t in tables}) > 1:
        schema = arrow_tables.schema(pa.binary(), tables[0].schema.field("value").type.list_size)
        tables = [t.cast(schema) for t in tables]
    return pa.concat_tables(tables)


def _write_and_describe(root, table, path, compression):
    _write_file(table, path, compression)
    return manifest.file_entry(root, path, rows=table.num_rows)
