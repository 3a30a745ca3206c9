"""Run an exported ``.onnx`` model (or a checkpoint) behind one embedding interface.

:class:`OnnxEmbedder` and :class:`TorchEmbedder` share :class:`Embedder`:

- ``embed(audio) -> (D,)``: the clip embedding, equal to ``Pretrained.embed`` (windows of
  ``input_frames`` frames every window, last one aligned to the end, mean of the window
  embeddings; audio shorter than one window is one window of its own length).
- ``embed_frames(audio, hop_ms) -> (embeddings (K, D), timestamps_ms (K,))``: the embedding of the
  window *centred* on each timestamp ``0, hop, 2·hop, ... <= duration``; the audio is zero-padded
  by half a window at both ends, so the first timestamp is 0 ms (the HEAR convention).
- ``embed_batch(waves (B, N)) -> (B, D)``: one call of the exported graph (or its PyTorch twin).

Long inputs are embedded window by window in batches, so memory does not grow with the length
of the audio beyond the audio itself (see :mod:`pocketear.export.stream` for files).
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import torch

from pocketear.errors import InvalidValue
from pocketear.export.graph import INPUT_NAME, ClipModel, require_logmel, window_samples

if TYPE_CHECKING:
    from pocketear.model import Pretrained

REQUIRED_METADATA = ("sample_rate", "window_samples", "hop_samples", "input_frames",
                     "embedding_size")


class ModelFileError(InvalidValue):
    """A model file that cannot be used; the message names the file and the fix.

    An :class:`~pocketear.errors.InvalidValue`, hence still a ``ValueError``.
    """


@dataclass(frozen=True)
class Framing:
    """Window geometry, in samples at ``sample_rate``.

    Attributes:
        sample_rate: model rate in Hz.
        window: samples of one encoder window (15,600 = 96 frames of 25 ms every 10 ms).
        hop: samples between clip windows (15,360 = 96 frames).
        frame_hop: frontend hop (160).
        win_length: frontend window (400).
        frames: encoder input frames (96).
    """

    sample_rate: int
    window: int
    hop: int
    frame_hop: int
    win_length: int
    frames: int

    def num_frames(self, n: int) -> int:
        """Log-mel frames of ``n`` samples (``center=False``; at least 1)."""
        return max(1, 1 + (n - self.win_length) // self.frame_hop)

    def clip_starts(self, n: int) -> np.ndarray | None:
        """Sample offsets of the clip windows of ``n`` samples (``pocketear.model.segment``).

        None when the audio is shorter than one window (it is embedded at its own length).
        """
        t = self.num_frames(n)
        if t < self.frames:
            return None
        count = -(-t // self.frames)
        starts = np.minimum(np.arange(count) * self.frames, t - self.frames)
        return starts.astype(np.int64) * self.frame_hop

    def frame_centres(self, n: int, hop_ms: float) -> tuple[np.ndarray, np.ndarray]:
        """Centre samples and timestamps (ms) ``k·hop_ms`` for every ``k·hop_ms <= duration``.

        Each centre is rounded from the exact time, so no rounding error accumulates.
        """
        if hop_ms <= 0:
            raise InvalidValue(f"hop_ms must be > 0, got {hop_ms}")
        duration_ms = 1000.0 * n / self.sample_rate
        count = int(np.floor(duration_ms / hop_ms + 1e-9)) + 1
        times = np.arange(count, dtype=np.float64) * hop_ms
        centres = np.round(times * self.sample_rate / 1000.0).astype(np.int64)
        return centres, times


def cut_windows(audio: np.ndarray, starts: np.ndarray, window: int, offset: int = 0) -> np.ndarray:
    """Windows ``(S, window)`` starting at absolute samples ``starts``; zeros outside ``audio``.

    ``audio`` holds samples ``[offset, offset + len(audio))`` of the whole signal, so a chunk of a
    long file can be cut with the file's own sample positions.
    """
    out = np.zeros((len(starts), window), dtype=np.float32)
    for i, s in enumerate(np.asarray(starts, dtype=np.int64) - offset):
        lo, hi = max(0, s), min(audio.size, s + window)
        if hi > lo:
            out[i, lo - s : hi - s] = audio[lo:hi]
    return out


class Embedder:
    """Common interface of the PyTorch and ONNX Runtime backends (see the module docstring)."""

    framing: Framing
    embed_dim: int
    backend: str = ""
    batch: int = 32  # windows per model call

    @property
    def sample_rate(self) -> int:
        """The rate in Hz the model expects its input at."""
        return self.framing.sample_rate

    @property
    def default_hop_ms(self) -> float:
        """Frame hop used when none is given: one clip-window hop (960 ms at the defaults)."""
        return 1000.0 * self.framing.hop / self.sample_rate

    def embed_batch(self, waves: np.ndarray) -> np.ndarray:  # pragma: no cover - abstract
        """Clip embeddings ``(B, D)`` of equal-length waveforms ``(B, N)``."""
        raise NotImplementedError

    def embed_windows(self, windows: np.ndarray) -> np.ndarray:
        """Embeddings ``(S, D)`` of exact encoder windows ``(S, window)``, ``batch`` at a time."""
        windows = np.asarray(windows, dtype=np.float32)
        if len(windows) == 0:
            return np.zeros((0, self.embed_dim), dtype=np.float32)
        parts = [self.embed_batch(windows[i : i + self.batch])
                 for i in range(0, len(windows), self.batch)]
        return np.concatenate(parts).astype(np.float32, copy=False)

    def _audio(self, audio: str | os.PathLike[str] | np.ndarray | torch.Tensor) -> np.ndarray:
        if isinstance(audio, str | os.PathLike):
            from pocketear.audio.io import load_audio

            return load_audio(audio, self.sample_rate)
        if isinstance(audio, torch.Tensor):
            audio = audio.detach().cpu().numpy()
        wave = np.asarray(audio, dtype=np.float32)
        if wave.ndim != 1 or wave.size == 0:
            raise InvalidValue(f"expected a non-empty mono waveform (N,), got shape {wave.shape}")
        return wave

    def embed(self, audio: str | os.PathLike[str] | np.ndarray | torch.Tensor) -> np.ndarray:
        """Clip embedding ``(D,)`` of a file or waveform (the same as ``Pretrained.embed``)."""
        wave = self._audio(audio)
        starts = self.framing.clip_starts(wave.size)
        if starts is None:
            return self.embed_batch(wave[None])[0].astype(np.float32)
        total = np.zeros(self.embed_dim, dtype=np.float64)
        for i in range(0, len(starts), self.batch):
            chunk = cut_windows(wave, starts[i : i + self.batch], self.framing.window)
            total += self.embed_batch(chunk).sum(axis=0, dtype=np.float64)
        return (total / len(starts)).astype(np.float32)

    def embed_frames(self, audio: str | os.PathLike[str] | np.ndarray | torch.Tensor,
                     hop_ms: float | None = None) -> tuple[np.ndarray, np.ndarray]:
        """Embeddings ``(K, D)`` of windows centred on timestamps ``(K,)`` ms, ``hop_ms`` apart."""
        wave = self._audio(audio)
        centres, times = self.framing.frame_centres(wave.size, hop_ms or self.default_hop_ms)
        half = self.framing.window // 2
        parts = [self.embed_windows(cut_windows(wave, centres[i : i + 256] - half,
                                                self.framing.window))
                 for i in range(0, len(centres), 256)]
        return np.concatenate(parts), times


class TorchEmbedder(Embedder):
    """A ``Pretrained`` checkpoint run in PyTorch eager mode (CPU)."""

    backend = "torch"

    def __init__(self, pre: Pretrained, threads: int | None = None) -> None:
        if threads:
            torch.set_num_threads(int(threads))  # process-wide, like any torch code
        self.pretrained = require_logmel(pre)
        self.model = ClipModel(pre.frontend, pre.encoder).eval()
        cfg = pre.frontend.cfg
        window, hop = window_samples(pre)
        self.framing = Framing(pre.sample_rate, window, hop, cfg.hop_length, cfg.win_length,
                               int(pre.encoder.input_frames))
        self.embed_dim = int(pre.embed_dim)

    @torch.no_grad()
    def embed_batch(self, waves: np.ndarray) -> np.ndarray:
        """The :class:`ClipModel` of the checkpoint, in PyTorch without gradients."""
        x = torch.from_numpy(np.ascontiguousarray(waves, dtype=np.float32))
        return self.model(x).numpy()


class OnnxEmbedder(Embedder):
    """An exported ``.onnx`` model run with ONNX Runtime (CPU).

    Args:
        path: the model file.
        threads: intra-op threads (None: ONNX Runtime's default, all cores).

    Raises:
        ModelFileError: missing, empty, truncated or corrupt file, or not a pocketear export.
    """

    backend = "onnx"

    def __init__(self, path: str | os.PathLike[str], threads: int | None = None) -> None:
        import onnxruntime as ort

        self.path = Path(path)
        if not self.path.is_file():
            raise ModelFileError(f"{self.path}: no such ONNX model file")
        if self.path.stat().st_size == 0:
            raise ModelFileError(f"{self.path}: the file is empty (0 bytes); re-export it with "
                                 "`pocketear export`")
        opts = ort.SessionOptions()
        opts.log_severity_level = 3
        opts.inter_op_num_threads = 1
        if threads:
            opts.intra_op_num_threads = int(threads)
        try:
            self.session = ort.InferenceSession(str(self.path), opts,
                                                providers=["CPUExecutionProvider"])
        except Exception as err:  # noqa: BLE001 - any failure here means an unusable file
            first = (str(err).strip().splitlines() or [type(err).__name__])[0][:200]
            raise ModelFileError(
                f"{self.path}: cannot be loaded as an ONNX model ({type(err).__name__}: {first}); "
                "the file is truncated or corrupt — re-export it with `pocketear export`"
            ) from None
        meta = dict(self.session.get_modelmeta().custom_metadata_map)
        missing = [k for k in REQUIRED_METADATA if k not in meta]
        if missing or [i.name for i in self.session.get_inputs()] != [INPUT_NAME]:
            inputs = [i.name for i in self.session.get_inputs()]
            raise ModelFileError(
                f"{self.path}: not a complete pocketear export (missing metadata "
                f"{', '.join(missing) or '-'}; inputs {inputs}); the file may be truncated — "
                "re-export it with `pocketear export`"
            )
        self.metadata = meta
        frames = int(meta["input_frames"])
        window, hop = int(meta["window_samples"]), int(meta["hop_samples"])
        frame_hop = hop // frames
        self.framing = Framing(int(meta["sample_rate"]), window, hop, frame_hop,
                               window - (frames - 1) * frame_hop, frames)
        self.embed_dim = int(meta["embedding_size"])

    @property
    def frontend_config(self) -> dict[str, Any]:
        """The exported frontend's LogMelConfig as a dict (from the metadata)."""
        return json.loads(self.metadata.get("frontend", "{}"))

    def embed_batch(self, waves: np.ndarray) -> np.ndarray:
        """One ONNX Runtime call of the exported graph on ``(B, N)`` float32 waveforms."""
        x = np.ascontiguousarray(waves, dtype=np.float32)
        if x.ndim != 2:
            raise InvalidValue(f"expected waveforms (B, N), got shape {x.shape}")
        return self.session.run(None, {INPUT_NAME: x})[0]


def load_embedder(model: str | os.PathLike[str] | Pretrained | Embedder,
                  threads: int | None = None) -> Embedder:
    """An :class:`Embedder` for a ``.onnx`` file, a checkpoint / run folder, or a ``Pretrained``."""
    from pocketear.model import Pretrained, load

    if isinstance(model, Embedder):
        return model
    if isinstance(model, Pretrained):
        return TorchEmbedder(model, threads)
    if Path(model).suffix.lower() == ".onnx":
        return OnnxEmbedder(model, threads)
    return TorchEmbedder(load(model), threads)
