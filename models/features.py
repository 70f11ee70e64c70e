"""Schema -> Keras inputs and KV embeddings, shared by every model of the zoo."""
from deeprec_lite.compat import keras, tf
from deeprec_lite.data.formats.tf_conversion import field_tf_dtype
from deeprec_lite.layers import KVEmbedding, KVEmbeddingGroup


def build_inputs(schema):
    """One keras.Input per feature of the schema: ids (int64 or string; ragged when
    multi-valued) and float32 numeric values, all batch-major."""
    inputs = {}
    for field in schema.categorical:
        dtype = field_tf_dtype(field)
        if field.kind == "single":
            inputs[field.name] = keras.Input((), dtype=dtype, name=field.name)
        else:
            inputs[field.name] = keras.Input((None,), dtype=dtype, name=field.name, ragged=True)
    for field in schema.numeric:
        inputs[field.name] = keras.Input((), dtype=tf.float32, name=field.name)
    return inputs


class FieldEmbeddings:
    """Creates the KV embedding layers of a schema (one table per `field.table`,
    fields naming the same table share it) and applies them, through one
    KVEmbeddingGroup (one lookup op for all fields; `stacked_together` for several
    sets) unless `table.grouped` is False.

    Args:
      schema: a deeprec_lite.data.Schema.
      table: the TableConfig of every field's table (its key dtype comes from the field).
      prefix: layer-name prefix, so a model can hold several sets (e.g. "linear").
      layer_factory: instead of KV tables, `layer_factory(field, table.dim, name)` makes each
        field's embedding layer (benchmarks use it for Keras Embedding baselines).
      fields: optional names of the categorical fields to embed (default: all of them,
        in schema order); `stacked` then returns only those, in schema order.
      optimizer: a sparse optimizer for these tables (None: the KVOptimizer's default).
    """

    def __init__(self, schema, table, prefix="embedding", layer_factory=None, fields=None,
                 optimizer=None):
        self.schema = schema
        self.layers = {}
        tables = {}
        known = [f.name for f in schema.categorical]
        if fields is not None:
            unknown = sorted(set(fields) - set(known))
            if isinstance(fields, str) or unknown or not fields:
                raise ValueError(f"fields must name categorical fields of the schema "
                                 f"({', '.join(known)}); received fields={fields!r}")
        self.fields = [f for f in schema.categorical if fields is None or f.name in fields]
        for field in self.fields:
            if layer_factory is not None:
                self.layers[field.name] = layer_factory(field, table.dim, f"{prefix}_{field.name}")
                continue
            combiner = None if field.kind == "single" else "mean"
            shared = tables.get(field.table)
            layer = KVEmbedding(table.replace(key_dtype=field.key_dtype), combiner=combiner,
                                shared_table=shared.kv if shared else None, optimizer=optimizer,
                                name=f"{prefix}_{field.name}")
            tables.setdefault(field.table, layer)
            self.layers[field.name] = layer
        self.grouped = layer_factory is None and table.grouped

    def stacked(self, inputs):
        """[B, F, table.dim] embeddings of the categorical fields (`fields`), in schema order."""
        return stacked_together([self], inputs)[0]


def stacked_together(sets, inputs):
    """`set.stacked(inputs)` of each FieldEmbeddings set, with one KVEmbeddingGroup for
    all the grouped sets (so a model's tables of several widths are looked up in one op
    per key dtype and device)."""
    pairs = [(s, f) for s in sets if s.grouped for f in s.fields]
    embedded = {}
    if pairs:
        group = KVEmbeddingGroup([s.layers[f.name] for s, f in pairs])
        outputs = group([inputs[f.name] for _, f in pairs])
        embedded = {(id(s), f.name): out for (s, f), out in zip(pairs, outputs)}
    return [tf.stack([embedded[(id(s), f.name)] if s.grouped else s.layers[f.name](inputs[f.name])
                      for f in s.fields], axis=1)
            for s in sets]


def numeric_matrix(schema, inputs):
    """[B, num_numeric] float32 (None when the schema has no numeric field)."""
    if not schema.numeric:
        return None
    return tf.stack([inputs[f.name] for f in schema.numeric], axis=1)
