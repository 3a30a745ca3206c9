"""Task heads: small modules on top of an encoder, discarded after pretraining."""

from pocketear.heads.decoder import SliceDecoder
from pocketear.heads.mlp import MLP

__all__ = ["MLP", "SliceDecoder"]
