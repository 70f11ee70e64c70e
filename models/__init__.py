"""The model zoo, installed as deeprec_lite.models. Every model is built from a
feature schema with KV embeddings and trains with model.fit.

Each builder is ``Name(schema, table=16, ..., name=..., layer_factory=None,
optimizer=None)`` (``table``: a TableConfig, or the int dim of a default one) and
returns a functional tf_keras model whose inputs come from
`features.build_inputs(schema)` and whose output is the click probability [B, 1].
`fdo` proposes per-field embedding dims from a trained model (GDCN's FDO).
"""
from deeprec_lite.models.autodis import AutoDisDNN
from deeprec_lite.models.autofis import AutoFIS
from deeprec_lite.models.can import CAN
from deeprec_lite.models.dcn import DCN
from deeprec_lite.models.dcnmix import DCNMix
from deeprec_lite.models.dcnv2 import DCNv2
from deeprec_lite.models.deepfm import DeepFM
from deeprec_lite.models.dynint import DynInt
from deeprec_lite.models.eulernet import EulerNet
from deeprec_lite.models.fibinet import FiBiNET
from deeprec_lite.models.frnet import FRNet
from deeprec_lite.models.gdcn import GDCN
from deeprec_lite.models.pnn import IPNN, OPNN, PNN
from deeprec_lite.models.rfm import RFM
from deeprec_lite.models.widedeep import WideDeep
from deeprec_lite.models.xdeepfm import xDeepFM
from deeprec_lite.models.xdeepint import xDeepInt

MODELS = {
    "widedeep": WideDeep, "deepfm": DeepFM, "dcn": DCN, "dcnv2": DCNv2, "dcnmix": DCNMix,
    "xdeepfm": xDeepFM, "ipnn": IPNN, "opnn": OPNN, "fibinet": FiBiNET, "xdeepint": xDeepInt,
    "can": CAN, "frnet": FRNet, "gdcn": GDCN, "dynint": DynInt, "eulernet": EulerNet,
    "rfm": RFM, "autodisdnn": AutoDisDNN, "autofis": AutoFIS,
}


def get(name):
    """The model builder called `name` (see `MODELS`)."""
    try:
        return MODELS[name.lower()]
    except (KeyError, AttributeError):  # AttributeError: not a string
        raise ValueError(f"unknown model {name!r}; available: {', '.join(sorted(MODELS))}") from None
