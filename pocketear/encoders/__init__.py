"""Encoders (DESIGN §5). Importing this package registers every encoder family.

Each family lives in its own module and registers its variants with
``@register("encoder", name)``; add the module's import here so ``available("encoder")`` sees it.
"""

from pocketear.encoders import audiontt, conformer, efficientnet, kwt, mobile
from pocketear.encoders.audiontt import AudioNTT
from pocketear.encoders.base import Encoder
from pocketear.encoders.efficientnet import EfficientNetB0
from pocketear.encoders.mobile import MobileEncoder

__all__ = ["AudioNTT", "EfficientNetB0", "Encoder", "MobileEncoder", "audiontt", "conformer",
           "efficientnet", "kwt", "mobile"]
