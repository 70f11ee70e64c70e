"""The KV tables of a Keras model: every KVVariable its KVEmbedding layers use."""
from deeprec_lite.layers.embeddings.kv_embedding import KVEmbedding


def kv_tables(model):
    """{table name: KVVariable} of every KV table a model uses (shared ones once)."""
    tables = {}
    for layer in model.submodules:
        if isinstance(layer, KVEmbedding) and all(t is not layer.kv for t in tables.values()):
            tables[layer.kv.name] = layer.kv
    return tables
