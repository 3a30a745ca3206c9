"""On-device export (DESIGN §8): ONNX with the frontend, static int8, streaming embeddings.

- :func:`export_onnx`: checkpoint → one self-contained ``.onnx`` (waveform in, clip embedding
  out), parity-checked against PyTorch before it is written; ``int8=True`` for static QDQ.
- :class:`OnnxEmbedder` / :func:`load_embedder`: run a ``.onnx`` or a checkpoint behind one
  ``embed`` / ``embed_frames`` interface.
- :func:`embed_files`: clip or frame embeddings of files of any length, in bounded memory.

The HEAR API module is :mod:`pocketear.hear`.
"""

from pocketear.export.onnx import ExportError, export_onnx
from pocketear.export.runtime import (
    Embedder,
    ModelFileError,
    OnnxEmbedder,
    TorchEmbedder,
    load_embedder,
)
from pocketear.export.stream import embed_files

__all__ = [
    "Embedder",
    "ExportError",
    "ModelFileError",
    "OnnxEmbedder",
    "TorchEmbedder",
    "embed_files",
    "export_onnx",
    "load_embedder",
]
