"""Feature-interaction layers: explicit crosses, products and the DNN tower."""
from deeprec_lite.layers.interactions.fm import FM
from deeprec_lite.layers.interactions.inner_product import InnerProduct
from deeprec_lite.layers.interactions.outer_product import OuterProduct
from deeprec_lite.layers.interactions.cross_net import CrossNet
from deeprec_lite.layers.interactions.cross_net_v2 import CrossNetV2
from deeprec_lite.layers.interactions.cross_net_mix import CrossNetMix
from deeprec_lite.layers.interactions.gated_cross_net import GatedCrossNet
from deeprec_lite.layers.interactions.cin import CIN
from deeprec_lite.layers.interactions.pin import PIN
from deeprec_lite.layers.interactions.bilinear import Bilinear
from deeprec_lite.layers.interactions.coaction import CoActionUnit
from deeprec_lite.layers.interactions.dynint import DynInt
from deeprec_lite.layers.interactions.eulernet import EulerNet
from deeprec_lite.layers.interactions.rfm import RFM
from deeprec_lite.layers.interactions.dnn import DNN

__all__ = ["Bilinear", "CIN", "CoActionUnit", "CrossNet", "CrossNetMix", "CrossNetV2", "DNN", "DynInt", "EulerNet", "FM", "GatedCrossNet", "InnerProduct", "OuterProduct", "PIN", "RFM"]
