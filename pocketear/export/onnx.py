"""Export a checkpoint to ONE self-contained ONNX file: raw waveform in, clip embedding out.

The graph (input ``wave`` ``(batch, samples)`` float32 at the model's rate, output ``embedding``
``(batch, D)``) contains the log-mel frontend, the normalisation stats and the encoder, and
reproduces :meth:`pocketear.model.Pretrained.embed` exactly: log-mel of the whole input
(``center=False``), windows of ``encoder.input_frames`` frames (96 = 15,600 samples at the
defaults) at a hop of one window, the last window aligned to the end of the input, an input
shorter than one window embedded at its own length (no padding), the encoder's read-out
(``encoder.readout``) of each window, then the mean of the per-window embeddings. Batch and
length are dynamic and any length >= 1 sample works; all clips of one call share a length (call
once per clip for clips of different lengths).

Inside the graph the STFT is a strided ``Conv`` with a windowed DFT basis (ONNX Runtime's
``STFT`` kernel took 0.8 ms for one 0.96 s window, the conv 0.3 ms; both match ``torch.stft`` to
~1e-5 in log-mel). The basis (822 KB as an initialiser) is rebuilt by a few constant-foldable
nodes from two 512-entry tables, so it costs ~5 KB on disk and is folded once at session start.

Every export checks parity against the PyTorch path on the spot (noise at three lengths and a
two-tone clip) and refuses to write a model outside tolerance unless ``force=True``.

The traced modules (:class:`DftLogMel`, :class:`ClipModel`), the input/output names and the
metadata are shared with the other exporters and live in :mod:`pocketear.export.graph`; they
are re-exported here.
"""

from __future__ import annotations

import logging
import os
import tempfile
import warnings
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import torch

from pocketear.export.graph import (
    FP32_TOLERANCE,
    INPUT_NAME,
    OUTPUT_NAME,
    ClipModel,
    DftLogMel,
    ExportError,
    as_pretrained,
    dft_tables,
    file_sha256,
    model_metadata,
    window_samples,
)
from pocketear.export.quantize import calibration_windows, quantize_int8

if TYPE_CHECKING:
    from pocketear.model import Pretrained

__all__ = [  # the shared names stay importable from here, where they lived before graph.py
    "FP32_TOLERANCE",
    "INPUT_NAME",
    "INT8_MIN_COSINE",
    "OUTPUT_NAME",
    "ClipModel",
    "DftLogMel",
    "ExportError",
    "check_parity",
    "compact_dft_basis",
    "export_graph",
    "export_onnx",
    "file_sha256",
    "model_metadata",
    "parity_inputs",
    "set_metadata",
    "strip_debug_info",
    "window_samples",
]

INT8_MIN_COSINE = 0.99  # min cosine similarity of int8 to fp32 PyTorch embeddings


def export_graph(pre: Pretrained, path: str | os.PathLike[str], opset: int | None = None) -> Path:
    """Export the fp32 :class:`ClipModel` of ``pre`` (dynamo exporter, one file, compact basis)."""
    import onnx

    model = ClipModel(DftLogMel(pre.frontend), pre.encoder).eval()
    window, _ = window_samples(pre)
    example = torch.randn(2, 2 * window + 1234, generator=torch.Generator().manual_seed(0)) * 0.1
    dims = ({0: torch.export.Dim("batch", min=1), 1: torch.export.Dim("samples", min=1)},)
    kwargs: dict[str, Any] = {} if opset is None else {"opset_version": int(opset)}
    path = Path(path)
    # the exporter logs one warning per torchvision op it cannot register (torchvision is not
    # installed here, by design); they say nothing about this model
    logging.getLogger("torch.onnx._internal.exporter._registration").setLevel(logging.ERROR)
    with warnings.catch_warnings(), torch.no_grad():
        warnings.simplefilter("ignore")
        torch.onnx.export(model, (example,), str(path), dynamo=True, dynamic_shapes=dims,
                          input_names=[INPUT_NAME], output_names=[OUTPUT_NAME],
                          external_data=False, verbose=False, **kwargs)
    proto = onnx.load(str(path))
    compact_dft_basis(proto, model.frontend)
    onnx.save(proto, str(path))
    return path


def compact_dft_basis(proto: Any, frontend: DftLogMel) -> bool:
    """Replace the DFT-basis initialiser by nodes that rebuild it from two small tables.

    Returns False (and leaves the graph alone) when no initialiser equals the basis.
    """
    from onnx import helper, numpy_helper

    basis = frontend.basis.numpy()
    graph = proto.graph
    found = next((t for t in graph.initializer if tuple(t.dims) == basis.shape
                  and np.array_equal(numpy_helper.to_array(t), basis)), None)
    if found is None:
        return False
    cfg, name = frontend.cfg, found.name
    left = (cfg.n_fft - cfg.win_length) // 2
    cos_t, nsin_t = (t.numpy() for t in dft_tables(cfg.n_fft))

    def const(tag: str, value: np.ndarray) -> str:
        out = f"{name}_{tag}"
        nodes.append(helper.make_node("Constant", [], [out],
                                      value=numpy_helper.from_array(value, out + "_value")))
        return out

    def op(kind: str, inputs: list[str], tag: str, **attrs: Any) -> str:
        out = f"{name}_{tag}"
        nodes.append(helper.make_node(kind, inputs, [out], name=out, **attrs))
        return out

    nodes: list[Any] = []
    i64 = np.int64
    k = op("Unsqueeze", [op("Range", [const("k0", np.array(0, i64)), const(
        "k1", np.array(frontend.bins, i64)), const("one", np.array(1, i64))], "k"),
        const("ax1", np.array([1], i64))], "kcol")
    n = op("Range", [const("n0", np.array(left, i64)), const(
        "n1", np.array(left + cfg.win_length, i64)), f"{name}_one"], "n")
    m = op("Mod", [op("Mul", [k, n], "kn"), const("nfft", np.array(cfg.n_fft, i64))], "m")
    re = op("Gather", [const("cos", cos_t), m], "re")
    im = op("Gather", [const("nsin", nsin_t), m], "im")
    rows = op("Mul", [op("Concat", [re, im], "cat", axis=0),
                      const("window", frontend.window)], "rows")
    nodes.append(helper.make_node("Unsqueeze", [rows, f"{name}_ax1"], [name],
                                  name=f"{name}_out"))
    graph.initializer.remove(found)
    for node in reversed(nodes):
        graph.node.insert(0, node)
    return True


def set_metadata(proto: Any, meta: dict[str, str]) -> None:
    """Replace the model's ``metadata_props`` with ``meta`` (all strings)."""
    del proto.metadata_props[:]
    for key, value in meta.items():
        entry = proto.metadata_props.add()
        entry.key, entry.value = key, str(value)


def strip_debug_info(proto: Any) -> None:
    """Drop per-node exporter annotations and doc strings (about 10 % of a small model's file)."""
    for node in proto.graph.node:
        del node.metadata_props[:]
        node.doc_string = ""
    proto.graph.doc_string = ""


def parity_inputs(sample_rate: int, window: int) -> dict[str, np.ndarray]:
    """Named test batches: noise of one window, of 2.6 windows, shorter than a window; two tones."""
    rng = np.random.default_rng(1234)
    t = np.arange(2 * sample_rate) / sample_rate
    tones = np.stack([0.5 * np.sin(2 * np.pi * 440 * t) + 0.2 * np.sin(2 * np.pi * 3000 * t),
                      0.3 * np.sin(2 * np.pi * 1000 * t) + 0.01 * rng.standard_normal(t.size)])
    return {
        "noise_1_window": 0.3 * rng.standard_normal((2, window)),
        "noise_2.6_windows": 0.3 * rng.standard_normal((2, int(2.6 * window))),
        "noise_short": 0.3 * rng.standard_normal((2, window // 3)),
        "tones_2s": tones,
    }


def check_parity(pre: Pretrained, session: Any, int8: bool) -> dict[str, Any]:
    """Compare an ONNX Runtime session with ``pre.embed`` on :func:`parity_inputs`.

    Returns ``max_abs_diff``, ``max_abs_ref``, ``min_cosine``, the limit used and ``ok``.
    """
    worst, ref_max, cos_min = 0.0, 0.0, 1.0
    for wave in parity_inputs(pre.sample_rate, window_samples(pre)[0]).values():
        wave = wave.astype(np.float32)
        got = session.run(None, {INPUT_NAME: wave})[0]
        ref = np.stack([pre.embed(w) for w in wave])
        worst = max(worst, float(np.abs(got - ref).max()))
        ref_max = max(ref_max, float(np.abs(ref).max()))
        cos = (got * ref).sum(1) / np.maximum(
            np.linalg.norm(got, axis=1) * np.linalg.norm(ref, axis=1), 1e-12)
        cos_min = min(cos_min, float(cos.min()))
    limit = FP32_TOLERANCE * max(1.0, ref_max)
    ok = cos_min >= INT8_MIN_COSINE if int8 else worst <= limit
    return {"max_abs_diff": worst, "max_abs_ref": ref_max, "min_cosine": cos_min,
            "fp32_limit": limit, "int8_min_cosine": INT8_MIN_COSINE, "ok": bool(ok)}


def _session(path: str | os.PathLike[str]) -> Any:
    import onnxruntime as ort

    opts = ort.SessionOptions()
    opts.log_severity_level = 3
    return ort.InferenceSession(str(path), opts, providers=["CPUExecutionProvider"])


def export_onnx(
    checkpoint_or_pretrained: str | os.PathLike[str] | Pretrained,
    out_path: str | os.PathLike[str],
    int8: bool = False,
    calibration: str | os.PathLike[str] | None = None,
    force: bool = False,
    opset: int | None = None,
    *,
    max_calibration_windows: int = 512,
    verbose: bool = True,
) -> dict[str, Any]:
    """Export a checkpoint (or a loaded ``Pretrained``) to one ``.onnx`` file and check parity.

    Args:
        checkpoint_or_pretrained: checkpoint file, run folder or ``Pretrained``.
        out_path: where to write the model (replaced atomically).
        int8: static int8 QDQ per-channel quantisation of the encoder (frontend stays fp32).
        calibration: folder or manifest of audio for int8 calibration (windows from up to 300
            clips, at most ``max_calibration_windows``); None uses synthetic signals.
        force: write the model even when parity is outside tolerance.
        opset: ONNX opset (exporter default when None).
        max_calibration_windows: cap on calibration windows.
        verbose: print the parity numbers.

    Returns:
        Report: path, bytes, metadata, parity (fp32, and int8 when asked), calibration info.

    Raises:
        ExportError: parity outside tolerance (fp32 max abs diff > 1e-4 × max(1, max|emb|), or
            int8 cosine < 0.99) and not ``force``.
    """
    import onnx

    pre = as_pretrained(checkpoint_or_pretrained)
    out = Path(out_path)
    report: dict[str, Any] = {"path": str(out), "int8": bool(int8), "forced": False}
    with tempfile.TemporaryDirectory(prefix="pocketear-export-") as tmp:
        fp32 = export_graph(pre, Path(tmp) / "fp32.onnx", opset)
        report["parity_fp32"] = check_parity(pre, _session(fp32), int8=False)
        final = fp32
        if int8:
            windows, info = calibration_windows(calibration, pre,
                                                max_windows=max_calibration_windows)
            report["calibration"] = info
            final = Path(tmp) / "int8.onnx"
            report["quantized"] = quantize_int8(fp32, final, windows)
            report["parity_int8"] = check_parity(pre, _session(final), int8=True)
        _print_parity(report, verbose)
        failed = [k for k in ("parity_fp32", "parity_int8") if k in report and not report[k]["ok"]]
        if failed and not force:
            raise ExportError(f"refusing to write {out}: {_parity_text(report)}; inspect the "
                              "checkpoint or calibration data, or pass force=True to write anyway")
        if failed:
            report["forced"] = True
            warnings.warn(f"writing {out} despite failed parity ({', '.join(failed)})",
                          stacklevel=2)
        proto = onnx.load(str(final))
        strip_debug_info(proto)
        meta = model_metadata(pre, int8)
        set_metadata(proto, meta)
        onnx.checker.check_model(proto)
        out.parent.mkdir(parents=True, exist_ok=True)
        fd, staged = tempfile.mkstemp(prefix=f".{out.name}.", dir=out.parent)
        os.close(fd)
        try:
            onnx.save(proto, staged)
            os.replace(staged, out)
        finally:
            Path(staged).unlink(missing_ok=True)
    report.update(bytes=out.stat().st_size, metadata=meta, opset=proto.opset_import[0].version)
    return report


def _parity_text(report: dict[str, Any]) -> str:
    parts = []
    if "parity_fp32" in report:
        p = report["parity_fp32"]
        parts.append(f"fp32 max abs diff {p['max_abs_diff']:.2e} (limit {p['fp32_limit']:.1e}, "
                     f"max |embedding| {p['max_abs_ref']:.3g})")
    if "parity_int8" in report:
        p = report["parity_int8"]
        parts.append(f"int8 min cosine {p['min_cosine']:.5f} (limit {INT8_MIN_COSINE}), "
                     f"max abs diff {p['max_abs_diff']:.2e}")
    return "; ".join(parts)


def _print_parity(report: dict[str, Any], verbose: bool) -> None:
    if verbose:
        print(f"parity vs PyTorch: {_parity_text(report)}")
