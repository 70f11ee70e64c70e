"""Feature selection and refinement layers: field gates and re-weighting."""
from deeprec_lite.layers.feature_selection.senet import SENET
from deeprec_lite.layers.feature_selection.frnet import FRNet
from deeprec_lite.layers.feature_selection.autofis import AutoFISGate
from deeprec_lite.layers.feature_selection.grda import GRDA, grda_update

__all__ = ["AutoFISGate", "FRNet", "GRDA", "SENET", "grda_update"]
