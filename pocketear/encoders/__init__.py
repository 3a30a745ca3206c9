"""Encoders: log-mel → frame features and clip embeddings; importing this registers them all.

The shared contract and read-out are in :mod:`pocketear.encoders.base`; each family's module
cites the paper it follows. Each family lives in its own module and registers its variants with
``@register("encoder", name)``; add the module's import here so ``available("encoder")`` sees it.
"""

from pocketear.encoders import audiontt, conformer, efficientnet, kwt, mobile, spice, supernet
from pocketear.encoders.audiontt import AudioNTT
from pocketear.encoders.base import Encoder
from pocketear.encoders.efficientnet import EfficientNetB0
from pocketear.encoders.mobile import MobileEncoder

__all__ = ["AudioNTT", "EfficientNetB0", "Encoder", "MobileEncoder", "audiontt", "conformer",
           "efficientnet", "kwt", "mobile", "spice", "supernet"]
