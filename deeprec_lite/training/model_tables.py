"""The KV tables of a Keras model: every KVVariable its KVEmbedding layers use."""
from deeprec_lite.layers.embeddings.kv_embedding import KVEmbedding


def kv_tables(model):
    """{table name: KVVariable} of every KV table a model uses (shared ones once).
    ValueError when two tables share a name: exports, checkpoints' readers and warm
    start tell a model's tables apart by name."""
    tables, layer_of = {}, {}
    for layer in model.submodules:
        if not isinstance(layer, KVEmbedding):
            continue
        name = layer.kv.name
        if name not in tables:
            tables[name], layer_of[name] = layer.kv, layer.name
        elif tables[name] is not layer.kv:
            raise ValueError(f"model {getattr(model, 'name', model)!r}: layers "
                             f"{layer_of[name]!r} and {layer.name!r} have two KV tables named "
                             f"{name!r}; give the layers (or their tables) distinct names")
    return tables
