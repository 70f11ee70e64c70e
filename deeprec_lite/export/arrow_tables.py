"""numpy records <-> Arrow tables of the export schema:
key (int64 | string | binary), value fixed_size_list<float32>[dim], freq int64, version int64."""
import numpy as np
import pyarrow as pa
import pyarrow.compute as pc


def key_array(keys):
    """Arrow array of keys: int64, or string when every key is UTF-8 (else binary)."""
    if keys.dtype == np.int64:
        return pa.array(keys, pa.int64())
    binary = pa.array(keys, pa.binary())
    try:
        return binary.cast(pa.string())
    except pa.ArrowInvalid:
        return binary


def key_bytes(key_arr):
    """Raw bytes of the keys: 8 per int64 key, the length of each string key."""
    if pa.types.is_integer(key_arr.type):
        return 8 * len(key_arr)
    return int(pc.sum(pc.binary_length(key_arr)).as_py() or 0)


def schema(key_type, dim):
    return pa.schema([pa.field("key", key_type, nullable=False),
                      pa.field("value", pa.list_(pa.field("item", pa.float32()), dim),
                               nullable=False),
                      pa.field("freq", pa.int64(), nullable=False),
                      pa.field("version", pa.int64(), nullable=False)])


def records_table(key_arr, values, freqs, versions):
    """An Arrow table of the export schema (values [N, dim] float32, zero copy)."""
    dim = values.shape[1]
    flat = pa.array(np.ascontiguousarray(values, np.float32).reshape(-1), pa.float32())
    value_arr = pa.FixedSizeListArray.from_arrays(flat, dim)
    return pa.Table.from_arrays(
        [key_arr, value_arr, pa.array(freqs, pa.int64()), pa.array(versions, pa.int64())],
        schema=schema(key_arr.type, dim))


def value_matrix(table):
    """The values [N, dim] float32 of an export table, as one numpy array."""
    dim = table.schema.field("value").type.list_size
    values = table.column("value").combine_chunks()
    flat = values.flatten().to_numpy(zero_copy_only=False) if len(values) else np.zeros(0, np.float32)
    return flat.reshape(-1, dim)


def table_numpy(table):
    """(keys, values [N, dim], freqs, versions) numpy arrays of an export table; string
    keys come back as an object array of str (binary ones as bytes)."""
    keys = table.column("key").to_numpy(zero_copy_only=False)
    return (keys, value_matrix(table), table.column("freq").to_numpy(),
            table.column("version").to_numpy())
