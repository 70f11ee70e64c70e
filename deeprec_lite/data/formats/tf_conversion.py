"""Column batches -> tf.data elements: flat signatures and the ragged/label assembly."""
from __future__ import annotations

from typing import Callable, Dict, Iterator, Mapping, Optional, Tuple

import numpy as np

from deeprec_lite.compat import tf
from deeprec_lite.data.formats.column_batch import ColumnBatch, RaggedColumn
from deeprec_lite.data.formats.schema import CategoricalField, LabelField, NumericField, Schema

VALUES_SUFFIX = "/values"
LENGTHS_SUFFIX = "/row_lengths"


def field_tf_dtype(field) -> tf.DType:
    """The tf dtype of a field's values."""
    if isinstance(field, LabelField):
        return tf.float32 if field.dtype == "float32" else tf.int64
    if isinstance(field, NumericField):
        return tf.float32
    return tf.int64 if field.key_dtype == "int64" else tf.string


ExtraColumns = Mapping[str, Tuple[tf.DType, bool]]


def flat_signature(schema: Schema,
                   extra: Optional[ExtraColumns] = None) -> Dict[str, tf.TensorSpec]:
    """The generator-side signature: every column as a 1-D tensor, ragged ones split in two.

    ``extra`` adds columns outside the schema: name -> (dtype, ragged).
    """
    spec: Dict[str, tf.TensorSpec] = {}
    for field in schema.fields:
        dtype = field_tf_dtype(field)
        if isinstance(field, CategoricalField) and field.is_ragged:
            spec[field.name + VALUES_SUFFIX] = tf.TensorSpec([None], dtype)
            spec[field.name + LENGTHS_SUFFIX] = tf.TensorSpec([None], tf.int64)
        else:
            spec[field.name] = tf.TensorSpec([None], dtype)
    for name, (dtype, ragged) in (extra or {}).items():
        if ragged:
            spec[name + VALUES_SUFFIX] = tf.TensorSpec([None], dtype)
            spec[name + LENGTHS_SUFFIX] = tf.TensorSpec([None], tf.int64)
        else:
            spec[name] = tf.TensorSpec([None], dtype)
    return spec


def flatten_batch(batch: ColumnBatch) -> Dict[str, np.ndarray]:
    """A column batch as the flat dict that ``flat_signature`` describes."""
    flat = {}
    for name, col in batch.items():
        if isinstance(col, RaggedColumn):
            flat[name + VALUES_SUFFIX] = col.values
            flat[name + LENGTHS_SUFFIX] = col.row_lengths
        else:
            flat[name] = col
    return flat


def _ragged(flat, name):
    return tf.RaggedTensor.from_row_lengths(
        flat[name + VALUES_SUFFIX], flat[name + LENGTHS_SUFFIX], validate=False)


def make_assemble_fn(schema: Schema, extra: Optional[ExtraColumns] = None):
    """A tf function: flat dict -> ``(features, label)`` (or ``features`` with no labels).

    Ragged fields become ``tf.RaggedTensor``; one label gives a tensor, several a dict.
    Extra columns (name -> (dtype, ragged)) go into the features dict too.
    """
    label_names = schema.label_names
    extra = dict(extra or {})

    @tf.autograph.experimental.do_not_convert
    def assemble(flat):
        features = {}
        for field in schema.feature_fields:
            if isinstance(field, CategoricalField) and field.is_ragged:
                features[field.name] = _ragged(flat, field.name)
            else:
                features[field.name] = flat[field.name]
        for name, (_, ragged) in extra.items():
            features[name] = _ragged(flat, name) if ragged else flat[name]
        if not label_names:
            return features
        if len(label_names) == 1:
            return features, flat[label_names[0]]
        return features, {name: flat[name] for name in label_names}

    return assemble


def split_into_batches(batch_size: int):
    """A ``flat_map`` function: one element of N rows -> ceil(N / batch_size) batches.

    Works in-graph on every tensor of the element, ragged ones included.
    """
    @tf.autograph.experimental.do_not_convert
    def split(*element):
        structure = element if len(element) > 1 else element[0]
        first = tf.nest.flatten(structure)[0]
        rows = (first.nrows(out_type=tf.int64) if isinstance(first, tf.RaggedTensor)
                else tf.shape(first, out_type=tf.int64)[0])
        count = (rows + batch_size - 1) // batch_size

        def take(i):
            start = i * batch_size
            size = tf.minimum(rows - start, batch_size)
            begin, length = tf.reshape(start, [1]), tf.reshape(size, [1])

            def cut(t):
                if isinstance(t, tf.RaggedTensor):
                    return t[start:start + size]
                return tf.slice(t, begin, length)

            return tf.nest.map_structure(cut, structure)

        return tf.data.Dataset.range(count).map(take)

    return split


def chunk_batches(batch_size: int, target_rows: int = 16384) -> int:
    """How many batches one generated chunk should hold (about ``target_rows`` rows)."""
    return max(1, target_rows // batch_size)


def column_batches_to_dataset(generate: Callable[[int], Iterator[ColumnBatch]], num_shards: int,
                              schema: Schema, *, extra_columns: Optional[ExtraColumns] = None,
                              deterministic: bool = True, batch_size: Optional[int] = None,
                              prefetch: Optional[int] = tf.data.AUTOTUNE) -> tf.data.Dataset:
    """A dataset of assembled elements from ``generate(shard_index)`` for each shard.

    Shards run in parallel (``tf.data`` interleave of Python generators; pyarrow
    and numpy release the GIL while they work). Each generated column batch is
    one element (see :func:`make_assemble_fn` for its structure), or, with
    ``batch_size``, is split in-graph into batches of ``batch_size`` rows (the
    generator should then yield whole numbers of batches but for the last chunk).
    """
    signature = flat_signature(schema, extra_columns)

    def flat_batches(shard_index):
        for batch in generate(int(shard_index)):
            yield flatten_batch(batch)

    if num_shards == 1:
        ds = tf.data.Dataset.from_generator(flat_batches, args=(0,), output_signature=signature)
    else:
        ds = tf.data.Dataset.range(num_shards).interleave(
            lambda i: tf.data.Dataset.from_generator(
                flat_batches, args=(i,), output_signature=signature),
            cycle_length=num_shards, block_length=1, num_parallel_calls=num_shards,
            deterministic=deterministic)
    ds = ds.map(make_assemble_fn(schema, extra_columns))
    if batch_size is not None:
        ds = ds.flat_map(split_into_batches(batch_size))
    if prefetch:
        ds = ds.prefetch(prefetch)
    return ds
