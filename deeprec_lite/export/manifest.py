"""manifest.json of an export: what was exported, how it was filtered, and the
checksum of every file, so a reader can tell a complete export of ours from
anything else."""
import hashlib
import json
import os
import uuid

FORMAT = "deeprec-lite-embeddings"
FORMAT_VERSION = 1
MANIFEST = "manifest.json"
# Where a serving SavedModel (export_saved_model) keeps its manifest.
SERVING_MANIFEST = os.path.join("assets.extra", "deeprec_lite_export.json")
_CHUNK = 1 << 22


def sha256_of(path):
    """Hex sha256 of a file, read in 4 MiB pieces."""
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for piece in iter(lambda: f.read(_CHUNK), b""):
            digest.update(piece)
    return digest.hexdigest()


def file_entry(root, path, rows=None):
    """{path relative to root, bytes, sha256[, rows]} of a written file."""
    entry = {"path": os.path.relpath(path, root), "bytes": os.path.getsize(path),
             "sha256": sha256_of(path)}
    if rows is not None:
        entry["rows"] = int(rows)
    return entry


def table_summary(snapshot, keys_before, kept, dropped, key_bytes_before, key_bytes_after):
    """Counts and raw sizes of one table (a kv.snapshots.TableSnapshot) before and after
    filtering. Raw bytes count each record's key (8 bytes, or the string's length),
    value (4 * dim), freq and version (8 each)."""
    row = 4 * snapshot.dim + 16
    return {"dim": snapshot.dim, "key_dtype": snapshot.key_dtype, "value_dtype": "float32",
            "step": int(snapshot.step), "keys_before": int(keys_before), "kept": int(kept),
            "dropped": dict(dropped), "bytes_before": int(key_bytes_before + row * keys_before),
            "bytes_after": int(key_bytes_after + row * kept)}


def new_export_id():
    """A random id naming one export (a delta names its base's)."""
    return uuid.uuid4().hex


def new_manifest(source, global_step, min_freq, max_staleness, kind):
    from deeprec_lite import __version__

    return {"format": FORMAT, "format_version": FORMAT_VERSION, "kind": kind,
            "export_id": new_export_id(),
            "created_by": f"deeprec-lite {__version__}", "source": source.description,
            "global_step": int(global_step),
            "filters": {"min_freq": min_freq, "max_staleness": max_staleness},
            "tables": {}}


def write(directory, manifest):
    with open(os.path.join(directory, MANIFEST), "w") as f:
        json.dump(manifest, f, indent=1, sort_keys=True)


def read(directory):
    """The manifest of an export directory (or of a serving SavedModel); ValueError if it
    is missing or foreign."""
    path = os.path.join(os.fspath(directory), MANIFEST)
    if not os.path.isdir(os.fspath(directory)):
        raise ValueError(f"export directory {os.fspath(directory)!r} does not exist")
    if not os.path.isfile(path) and os.path.isfile(os.path.join(directory, SERVING_MANIFEST)):
        path = os.path.join(os.fspath(directory), SERVING_MANIFEST)
    if not os.path.isfile(path):
        raise ValueError(f"{os.fspath(directory)!r} is not a deeprec-lite export: no {MANIFEST}")
    try:
        with open(path, encoding="utf-8") as f:
            manifest = json.load(f)
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as e:
        raise ValueError(f"{path!r} is not a readable manifest ({e}); export again") from None
    if not isinstance(manifest, dict) or manifest.get("format") != FORMAT:
        raise ValueError(f"{os.fspath(directory)!r} is not a deeprec-lite export: {MANIFEST} "
                         f"has format {manifest.get('format') if isinstance(manifest, dict) else None!r}, "
                         f"expected {FORMAT!r}")
    if manifest.get("format_version") != FORMAT_VERSION:
        raise ValueError(f"{os.fspath(directory)!r}: unsupported format_version "
                         f"{manifest.get('format_version')!r} (this reader knows {FORMAT_VERSION})")
    return manifest


def verify_file(directory, entry):
    """Checks that a listed file exists with its size and checksum."""
    path = os.path.join(directory, entry["path"])
    if not os.path.isfile(path):
        raise ValueError(f"export {directory!r} is incomplete: file {entry['path']!r} listed in "
                         f"the manifest is missing")
    if os.path.getsize(path) != entry["bytes"] or sha256_of(path) != entry["sha256"]:
        raise ValueError(f"export {directory!r}: checksum mismatch for {entry['path']!r} (the "
                         "file changed after it was exported)")
    return path
