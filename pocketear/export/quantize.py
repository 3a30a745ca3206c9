"""Static int8 quantisation (ONNX Runtime, QDQ, per-channel) of an exported model's encoder.

Why static and not ``quantize_dynamic``: dynamic quantisation re-derives activation scales on
every call and falls back to slow kernels for convolutions (~6× slower than fp32 on this encoder
family; ``docs/benchmarks.md`` §4). Static QDQ fixes activation ranges from calibration windows
of the user's own audio, and ONNX Runtime fuses each ``DequantizeLinear → Conv →
QuantizeLinear`` into a ``QLinearConv``.

What is quantised:
- only encoder ``Conv`` / ``MatMul`` / ``Gemm`` nodes whose weight has at least
  ``min_weight_elements`` (4,096) values. The frontend (DFT conv, power, mel matmul, log,
  normalisation) stays fp32: the log of an int8 power spectrum loses every bin more than ~40 dB
  below the loudest one, which is most of the mel bins of quiet or tonal audio. The smallest
  encoder layers (the first blocks: few channels, large feature maps) stay fp32 too: they hold
  <3 % of the weights, and measured on ``mobile_100`` their ``QLinearConv`` kernels were several
  times slower than the fp32 NCHWc ones, so quantising them cost time and saved ~15 KB.
- weights symmetric int8 per output channel, activations int8 per tensor (MinMax calibration).

Calibration set: windows at random offsets of up to 300 clips of the user's audio (capped at 512
windows) plus one synthetic window (noise, harmonics, chirps, clicks at -60..0 dBFS) per eight of
them. MinMax ranges fitted to narrow-band data alone clip other signals: a briefly trained
``mobile_100`` calibrated on the test tone folder only gave cosine 0.81 on a 440 + 3000 Hz clip;
with the synthetic share 0.9998, and unchanged (1.0000) on the user's own audio.
"""

from __future__ import annotations

import contextlib
import logging
import math
import os
import warnings
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from pocketear.export.graph import INPUT_NAME, ExportError, window_samples

if TYPE_CHECKING:
    from pocketear.model import Pretrained

MIN_WEIGHT_ELEMENTS = 4096
SYNTHETIC_SHARE = 8  # user windows per synthetic window added to the calibration set
QUANT_OPS = ("Conv", "MatMul", "Gemm")


def synthetic_windows(n: int, window: int, sample_rate: int, seed: int = 0) -> np.ndarray:
    """Synthetic calibration windows: noise, harmonics, chirps and clicks at many levels."""
    rng = np.random.default_rng(seed)
    t = np.arange(window) / sample_rate
    out = np.empty((n, window), dtype=np.float32)
    for i in range(n):
        kind = i % 4
        if kind == 0:  # white or brown-ish noise
            x = rng.standard_normal(window)
            x = np.cumsum(x) / 30 if rng.random() < 0.5 else x
        elif kind == 1:  # a few harmonics
            f0 = rng.uniform(80, 2000)
            x = sum(np.sin(2 * np.pi * f0 * h * t) / h for h in range(1, rng.integers(2, 6)))
        elif kind == 2:  # chirp
            f0, f1 = rng.uniform(100, 6000, size=2)
            x = np.sin(2 * np.pi * (f0 * t + (f1 - f0) * t**2 / (2 * t[-1])))
        else:  # clicks in noise
            x = 0.05 * rng.standard_normal(window)
            x[rng.integers(0, window, size=5)] += 1.0
        x = x / max(np.abs(x).max(), 1e-6) * 10 ** rng.uniform(-3, 0)
        out[i] = x
    return out


def calibration_windows(
    source: str | os.PathLike[str] | None,
    pre: Pretrained,
    max_windows: int = 512,
    max_clips: int = 300,
    seed: int = 0,
) -> tuple[np.ndarray, dict[str, Any]]:
    """Calibration windows ``(n, window_samples)`` from a folder or manifest of the user's audio.

    Windows are drawn at random offsets from up to ``max_clips`` clips of ``source``, plus a 1/8
    share of synthetic windows (only synthetic ones when ``source`` is None).

    Files that cannot be decoded are skipped (and counted); clips shorter than a window are
    zero-padded. Returns the windows and an info dict for the export report.
    """
    from pocketear.audio.io import AudioError, audio_duration, load_audio
    from pocketear.data.corpus import Corpus

    window, _ = window_samples(pre)
    sr = pre.sample_rate
    if source is None:
        warnings.warn("int8 calibration without --calibration uses synthetic signals; calibrate "
                      "on a few hundred clips of your own audio for the best accuracy",
                      stacklevel=2)
        n = min(max_windows, 256)
        return synthetic_windows(n, window, sr, seed), {"source": "synthetic", "windows": n}
    corpus = Corpus.open(source)
    rng = np.random.default_rng(seed)
    order = rng.permutation(len(corpus))[:max_clips]
    per_clip = max(1, math.ceil(max_windows / len(order)))
    windows: list[np.ndarray] = []
    skipped = 0
    for i in order:
        path = corpus[int(i)].path
        try:
            seconds = audio_duration(path)
            spare = max(0.0, seconds - window / sr)
            for _ in range(per_clip):
                offset = float(rng.uniform(0.0, spare)) if spare > 0 else 0.0
                audio = load_audio(path, sr, offset_seconds=offset, max_seconds=window / sr)
                windows.append(np.pad(audio[:window], (0, max(0, window - audio.size))))
        except AudioError as err:
            skipped += 1
            warnings.warn(f"calibration: skipping {err}", stacklevel=2)
        if len(windows) >= max_windows:
            break
    if not windows:
        raise ExportError(f"{source}: no decodable audio for int8 calibration "
                          f"({skipped} file(s) skipped)")
    data = np.stack(windows[:max_windows]).astype(np.float32)
    extra = synthetic_windows(max(16, len(data) // SYNTHETIC_SHARE), window, sr, seed)
    info = {"source": str(source), "clips": int(min(len(order), len(corpus))),
            "windows": int(len(data)), "synthetic_windows": len(extra), "skipped_files": skipped}
    return np.concatenate([data, extra]), info


class WindowReader:
    """ONNX Runtime ``CalibrationDataReader`` over an array of windows, ``batch`` at a time."""

    def __init__(self, windows: np.ndarray, batch: int = 16) -> None:
        self.windows = np.asarray(windows, dtype=np.float32)
        self.batch = batch
        self._it = self._batches()

    def _batches(self) -> Iterator[dict[str, np.ndarray]]:
        for i in range(0, len(self.windows), self.batch):
            yield {INPUT_NAME: self.windows[i : i + self.batch]}

    def get_next(self) -> dict[str, np.ndarray] | None:
        """The next ``{"wave": windows}`` feed, or None when the windows are used up."""
        return next(self._it, None)

    def rewind(self) -> None:
        """Start again from the first window (the calibrator may read the data twice)."""
        self._it = self._batches()


def encoder_nodes(proto: Any) -> list[Any]:
    """Nodes the exporter annotated as belonging to the ``encoder`` submodule."""
    out = []
    for node in proto.graph.node:
        scope = next((p.value for p in node.metadata_props if p.key == "namespace"), "")
        if "/encoder" in scope:
            out.append(node)
    return out


def nodes_to_quantize(proto: Any, min_weight_elements: int = MIN_WEIGHT_ELEMENTS) -> list[str]:
    """Names of encoder Conv/MatMul/Gemm nodes with a constant weight of enough elements."""
    sizes = {t.name: int(np.prod(t.dims)) for t in proto.graph.initializer}
    chosen = [n.name for n in encoder_nodes(proto) if n.op_type in QUANT_OPS
              and len(n.input) > 1 and sizes.get(n.input[1], 0) >= min_weight_elements]
    return chosen


@contextlib.contextmanager
def _quiet() -> Iterator[None]:
    """Silence onnxruntime.quantization's root-logger advice and ORT's C++ warnings."""
    import onnxruntime as ort

    root = logging.getLogger()
    level = root.level
    root.setLevel(logging.ERROR)
    ort.set_default_logger_severity(3)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            yield
    finally:
        root.setLevel(level)


def quantize_int8(
    fp32_path: str | os.PathLike[str],
    out_path: str | os.PathLike[str],
    windows: np.ndarray,
    min_weight_elements: int = MIN_WEIGHT_ELEMENTS,
    extra_nodes: list[str] | None = None,
) -> dict[str, Any]:
    """Static QDQ per-channel int8 quantisation of the encoder of an exported fp32 model.

    Args:
        fp32_path: model written by :func:`pocketear.export.onnx.export_graph` (keeps the
            exporter's ``namespace`` annotations, which tell encoder from frontend nodes).
        out_path: quantised model.
        windows: calibration windows ``(n, window_samples)``.
        min_weight_elements: smaller layers stay fp32 (see the module docstring).
        extra_nodes: more node names to quantise (e.g. to measure a quantised frontend).

    Returns:
        ``{"nodes": [...], "count": n, "weights_quantized": fraction}``.
    """
    import onnx
    from onnxruntime.quantization import (
        CalibrationMethod,
        QuantFormat,
        QuantType,
        quantize_static,
    )

    proto = onnx.load(str(fp32_path))
    chosen = nodes_to_quantize(proto, min_weight_elements) + list(extra_nodes or [])
    if not chosen:
        raise ExportError(f"{fp32_path}: found no encoder layer to quantise (with at least "
                          f"{min_weight_elements} weights); export without int8")
    sizes = {t.name: int(np.prod(t.dims)) for t in proto.graph.initializer}
    by_name = {n.name: n for n in proto.graph.node}
    weights = [sizes.get(by_name[n].input[1], 0) for n in chosen if n in by_name]
    total = sum(sizes.get(n.input[1], 0) for n in encoder_nodes(proto)
                if n.op_type in QUANT_OPS and len(n.input) > 1)
    with _quiet():
        quantize_static(
            str(fp32_path), str(Path(out_path)), WindowReader(windows),
            quant_format=QuantFormat.QDQ, per_channel=True,
            activation_type=QuantType.QInt8, weight_type=QuantType.QInt8,
            op_types_to_quantize=list(QUANT_OPS), nodes_to_quantize=chosen,
            calibrate_method=CalibrationMethod.MinMax,
            extra_options={"WeightSymmetric": True, "ActivationSymmetric": False},
        )
    return {"nodes": chosen, "count": len(chosen),
            "weights_quantized": round(sum(weights) / max(total, 1), 4)}
