"""On-device export: ONNX with the frontend, static int8, streaming embeddings.

- :func:`export_onnx`: checkpoint → one self-contained ``.onnx`` (waveform in, clip embedding
  out), parity-checked against PyTorch before it is written; ``int8=True`` for static QDQ.
- :class:`OnnxEmbedder` / :func:`load_embedder`: run a ``.onnx`` or a checkpoint behind one
  ``embed`` / ``embed_frames`` interface.
- :func:`embed_files`: clip or frame embeddings of files of any length, in bounded memory.
- :func:`export_frontend_onnx`: the log-mel frontend alone (waveform → log-mel) as ``.onnx``.

What every exporter shares (the traced graph, input/output names, metadata, :class:`ExportError`)
is in :mod:`pocketear.export.graph`.

The HEAR API module is :mod:`pocketear.hear`.
"""

from pocketear.export.frontend import export_frontend_onnx
from pocketear.export.graph import ExportError, as_pretrained
from pocketear.export.onnx import export_onnx
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
    "as_pretrained",
    "embed_files",
    "export_frontend_onnx",
    "export_onnx",
    "load_embedder",
]
