"""Embedding layers: KV tables for raw ids, hashing embeddings, numeric-feature embeddings."""
from deeprec_lite.layers.embeddings.kv_embedding import KVEmbedding
from deeprec_lite.layers.embeddings.kv_embedding_group import KVEmbeddingGroup
from deeprec_lite.layers.embeddings.dhe import DHEEmbedding
from deeprec_lite.layers.embeddings.double_hashing import DoubleHashingEmbedding
from deeprec_lite.layers.embeddings.autodis import AutoDis

__all__ = ["AutoDis", "DHEEmbedding", "DoubleHashingEmbedding", "KVEmbedding", "KVEmbeddingGroup"]
