"""Argument checks shared by the exporters: thresholds, table names, output paths."""
import os

import pyarrow as pa

from deeprec_lite._checks import check_int


def check_thresholds(min_freq, max_staleness):
    """min_freq: int >= 0; max_staleness: int >= 0 or None (no staleness filter); both at
    most 2**63 - 1."""
    check_int(min_freq, "min_freq", minimum=0)
    check_int(max_staleness, "max_staleness", minimum=0, none_ok=True)


def check_global_step(global_step):
    """The step staleness is measured from (an int, or a scalar tensor or variable), as
    a Python int in [0, 2**63 - 1]."""
    if hasattr(global_step, "numpy"):
        global_step = global_step.numpy()
    return check_int(global_step, "global_step", minimum=0)


def check_compression(compression):
    """A Parquet codec this pyarrow writes ("snappy", "zstd", ...), or None / "none"."""
    if compression is None or compression == "none":
        return compression
    try:
        if isinstance(compression, str) and pa.Codec.is_available(compression):
            return compression
    except ValueError:  # not a codec's name
        pass
    raise ValueError(f"compression must be None, 'none' or a Parquet codec this pyarrow "
                     f"writes (snappy, zstd, lz4, gzip, brotli), got {compression!r}")


def select_tables(available, tables):
    """The names of `tables` (None: all of `available`), checked against `available`."""
    if tables is None:
        return list(available)
    if isinstance(tables, str):
        tables = [tables]
    tables = list(tables)
    for name in tables:
        if name not in available:
            raise ValueError(f"tables: unknown table {name!r}; available: "
                             f"{', '.join(sorted(available)) or '(none)'}")
    if len(set(tables)) != len(tables):
        raise ValueError(f"tables must not repeat a name, got {tables!r}")
    return tables


def check_out_dir(out_dir, checkpoint_dir=None):
    """Absolute path of out_dir; refuses an empty one and one inside the checkpoint."""
    if not isinstance(out_dir, (str, os.PathLike)) or not os.fspath(out_dir):
        raise ValueError(f"out_dir must be a non-empty path, got {out_dir!r}")
    out = os.path.realpath(os.fspath(out_dir))
    if checkpoint_dir is not None:
        ckpt = os.path.realpath(checkpoint_dir)
        if os.path.commonpath([out, ckpt]) == ckpt:
            raise ValueError(f"out_dir {os.fspath(out_dir)!r} is inside the checkpoint directory "
                             f"{checkpoint_dir!r}; export somewhere else")
    if os.path.exists(out) and not os.path.isdir(out):
        raise ValueError(f"out_dir {os.fspath(out_dir)!r} exists and is not a directory")
    return out
