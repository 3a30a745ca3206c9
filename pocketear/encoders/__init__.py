"""Encoders (DESIGN §5). Importing this package registers every encoder family.

Each family lives in its own module and registers its variants with
``@register("encoder", name)``; add the module's import here so ``available("encoder")`` sees it.
"""

from pocketear.encoders import conformer, kwt, mobile
from pocketear.encoders.base import Encoder
from pocketear.encoders.mobile import MobileEncoder

__all__ = ["Encoder", "MobileEncoder", "conformer", "kwt", "mobile"]
