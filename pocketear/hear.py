"""HEAR API (https://hearbenchmark.com/hear-api.html) for any pocketear checkpoint or ``.onnx``.

Usage with the third-party validator::

    hear-validator pocketear.hear --model runs/x/checkpoints/last.pt   # or model.onnx

- ``load_model(path)`` → a ``torch.nn.Module`` (the validator requires one; it holds no
  parameters of its own and always computes on the CPU) with ``sample_rate``,
  ``scene_embedding_size`` and ``timestamp_embedding_size``.
- ``get_timestamp_embeddings(audio (n, samples), model)`` → ``(n, K, D)`` float32 embeddings and
  ``(n, K)`` float32 timestamps in ms: timestamp ``k`` is ``k · 50 ms`` for every ``k · 50 ms``
  within the clip (first 0, last <= clip length), and its embedding is the encoder's clip
  embedding of the 0.975 s window (``input_frames`` frames) centred on it, the audio zero-padded
  by half a window at both ends.
- ``get_scene_embeddings(audio, model)`` → ``(n, D)`` float32: exactly ``Pretrained.embed`` (mean
  of the read-out embeddings of consecutive windows, the last aligned to the end; a clip shorter
  than a window is embedded at its own length), so scene embeddings equal ``pocketear embed``
  and ``pocketear evaluate`` features.
"""

from __future__ import annotations

import os
import warnings

import numpy as np
import torch
from torch import nn

from pocketear.errors import InvalidValue
from pocketear.export.runtime import Embedder, cut_windows, load_embedder

TIMESTAMP_HOP_MS = 50.0  # HEAR asks for <= 50 ms (onset tolerance of its transcription tasks)

__all__ = ["HearModel", "get_scene_embeddings", "get_timestamp_embeddings", "load_model"]


class HearModel(nn.Module):
    """A pocketear embedder behind the HEAR attributes.

    ``.to(device)`` is accepted and ignored: inference runs on the CPU, where these models are
    meant to run.
    """

    def __init__(self, embedder: Embedder, hop_ms: float = TIMESTAMP_HOP_MS) -> None:
        super().__init__()
        self.embedder = embedder
        self.sample_rate = int(embedder.sample_rate)
        self.scene_embedding_size = int(embedder.embed_dim)
        self.timestamp_embedding_size = int(embedder.embed_dim)
        self.hop_ms = float(hop_ms)

    def extra_repr(self) -> str:
        """Backend, rate, embedding size and hop, shown by ``print(model)``."""
        return (f"backend={self.embedder.backend}, sample_rate={self.sample_rate}, "
                f"embedding_size={self.scene_embedding_size}, hop_ms={self.hop_ms}")


def load_model(model_file_path: str = "") -> HearModel:
    """Load a checkpoint / run folder (PyTorch) or an exported ``.onnx`` (ONNX Runtime).

    An empty path gives a randomly initialised ``mobile_100`` (a smoke-test model, as the HEAR
    baselines do without weights), with a warning.
    """
    if model_file_path:
        return HearModel(load_embedder(os.fspath(model_file_path)))
    from pocketear.export.runtime import TorchEmbedder
    from pocketear.frontends.logmel import LogMel
    from pocketear.model import Pretrained
    from pocketear.registry import create

    warnings.warn("pocketear.hear.load_model() without a model file: randomly initialised "
                  "mobile_100 (for API checks only)", stacklevel=2)
    torch.manual_seed(0)
    pre = Pretrained(LogMel(), create("encoder", "mobile_100"),
                     {"encoder": {"name": "mobile_100"}, "frontend": {}})
    return HearModel(TorchEmbedder(pre))


def _as_batch(audio: torch.Tensor | np.ndarray, model: HearModel) -> np.ndarray:
    if not isinstance(model, HearModel):
        raise TypeError(f"model must come from pocketear.hear.load_model, got {type(model)}")
    if isinstance(audio, torch.Tensor):
        audio = audio.detach().cpu().numpy()
    wave = np.asarray(audio, dtype=np.float32)
    if wave.ndim != 2 or wave.shape[1] == 0:
        raise InvalidValue(f"audio must be (n_sounds, n_samples) with n_samples > 0, got "
                         f"{wave.shape}")
    return wave


def get_timestamp_embeddings(audio: torch.Tensor,
                             model: HearModel) -> tuple[torch.Tensor, torch.Tensor]:
    """Embeddings ``(n_sounds, n_timestamps, D)`` and timestamps ``(n_sounds, n_timestamps)`` ms.

    Both are float32 tensors, one every ``model.hop_ms`` (50 ms) from 0 to the clip length.
    """
    wave = _as_batch(audio, model)
    emb = model.embedder
    centres, times = emb.framing.frame_centres(wave.shape[1], model.hop_ms)
    starts = centres - emb.framing.window // 2
    out = np.stack([emb.embed_windows(cut_windows(w, starts, emb.framing.window))
                    for w in wave])  # one sound at a time: memory ~ one clip's windows
    stamps = np.broadcast_to(times.astype(np.float32), (len(wave), len(times)))
    return torch.from_numpy(np.ascontiguousarray(out)), torch.from_numpy(stamps.copy())


def get_scene_embeddings(audio: torch.Tensor, model: HearModel) -> torch.Tensor:
    """Clip embeddings ``(n_sounds, D)`` float32 (the same as ``Pretrained.embed``)."""
    wave = _as_batch(audio, model)
    out = np.stack([model.embedder.embed(w) for w in wave]).astype(np.float32)
    return torch.from_numpy(out)
