"""Keras layers, grouped by kind; every public layer is also importable from here.

- `embeddings`: KVEmbedding (KV tables for raw ids), KVEmbeddingGroup (many of them
  looked up in one op), DHEEmbedding, DoubleHashingEmbedding,
  AutoDis (numeric features).
- `interactions`: FM, InnerProduct, OuterProduct, CrossNet, CrossNetV2, CrossNetMix,
  GatedCrossNet, CIN, PIN, Bilinear, CoActionUnit, DynInt, EulerNet, RFM, DNN.
- `feature_selection`: SENET, FRNet, AutoFISGate with its GRDA optimizer.
"""
from deeprec_lite.layers import embeddings, feature_selection, interactions
from deeprec_lite.layers.embeddings import (AutoDis, DHEEmbedding, DoubleHashingEmbedding,
                                            KVEmbedding, KVEmbeddingGroup)
from deeprec_lite.layers.feature_selection import GRDA, SENET, AutoFISGate, FRNet, grda_update
from deeprec_lite.layers.interactions import (CIN, DNN, FM, PIN, RFM, Bilinear, CoActionUnit,
                                              CrossNet, CrossNetMix, CrossNetV2, DynInt,
                                              EulerNet, GatedCrossNet, InnerProduct,
                                              OuterProduct)

__all__ = ["embeddings", "feature_selection", "interactions",
           *embeddings.__all__, *interactions.__all__, *feature_selection.__all__]
