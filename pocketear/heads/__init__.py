"""Task heads: small modules on top of an encoder, discarded after pretraining."""

from pocketear.heads.decoder import FrameDecoder, SliceDecoder
from pocketear.heads.mlp import MLP
from pocketear.heads.quantizer import GumbelQuantizer, Quantized

__all__ = ["MLP", "FrameDecoder", "GumbelQuantizer", "Quantized", "SliceDecoder"]
