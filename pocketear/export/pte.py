"""ExecuTorch export (optional extra ``pip install pocketear[edge]``): one ``.pte`` for phones.

The program is the same :class:`~pocketear.export.graph.ClipModel` as the ONNX export (the
frontend as a DFT convolution, the normalisation, the encoder), lowered to the XNNPACK backend
(fp32). Its input shape is fixed: one window of ``window_samples`` samples (15,600 = 0.96 s at
the defaults) → one embedding ``(1, D)``, because that is what an app streaming microphone
audio calls, and a fixed shape lets XNNPACK plan every buffer ahead. Longer audio: call it per
window (hop ``hop_samples``) and average, as ``pocketear.export.runtime.Framing`` does. The
metadata that ONNX carries inside the file is written beside it as ``<file>.json``.
"""

from __future__ import annotations

import json
import os
import tempfile
import warnings
from pathlib import Path
from typing import Any

import numpy as np
import torch

from pocketear.export.graph import (
    FP32_TOLERANCE,
    ClipModel,
    DftLogMel,
    ExportError,
    as_pretrained,
    model_metadata,
    window_samples,
)


def available() -> bool:
    """Whether ExecuTorch (the ``edge`` extra) is installed."""
    try:
        import executorch.exir  # noqa: F401
    except ImportError:
        return False
    return True


def _require() -> None:
    if not available():
        raise ExportError("the .pte format needs ExecuTorch: pip install 'pocketear[edge]' "
                          "(or pip install executorch, constrained to the installed torch)")


def parity_windows(sample_rate: int, window: int) -> np.ndarray:
    """Test windows: noise at two levels, two tones, near silence."""
    rng = np.random.default_rng(4321)
    t = np.arange(window) / sample_rate
    return np.stack([
        0.3 * rng.standard_normal(window),
        0.01 * rng.standard_normal(window),
        0.5 * np.sin(2 * np.pi * 440 * t) + 0.2 * np.sin(2 * np.pi * 3000 * t),
        0.3 * np.sin(2 * np.pi * 1000 * t),
        1e-4 * rng.standard_normal(window),
    ]).astype(np.float32)


def load_pte(path: str | os.PathLike[str]) -> Any:
    """The ``forward`` method of a ``.pte`` program (ExecuTorch runtime)."""
    _require()
    from executorch.runtime import Runtime

    path = Path(path)
    if not path.is_file() or path.stat().st_size == 0:
        raise ExportError(f"{path}: no such .pte file (or it is empty); re-export it")
    try:
        return Runtime.get().load_program(str(path)).load_method("forward")
    except Exception as err:  # noqa: BLE001 - any failure means an unusable file
        raise ExportError(f"{path}: cannot be loaded by ExecuTorch ({type(err).__name__}); the "
                          "file is truncated or corrupt — re-export it") from None


def export_pte(checkpoint_or_pretrained: Any, out_path: str | os.PathLike[str],
               force: bool = False, verbose: bool = True) -> dict[str, Any]:
    """Export a checkpoint to an ExecuTorch ``.pte`` (XNNPACK, fp32) and check parity.

    Raises:
        ExportError: ExecuTorch missing, or parity outside the fp32 tolerance and not ``force``.
    """
    _require()
    from executorch.backends.xnnpack.partition.xnnpack_partitioner import XnnpackPartitioner
    from executorch.exir import to_edge_transform_and_lower

    pre = as_pretrained(checkpoint_or_pretrained)
    window, _ = window_samples(pre)
    model = ClipModel(DftLogMel(pre.frontend), pre.encoder).eval()
    example = torch.zeros(1, window)
    with warnings.catch_warnings(), torch.no_grad():
        warnings.simplefilter("ignore")
        program = to_edge_transform_and_lower(
            torch.export.export(model, (example,)),
            partitioner=[XnnpackPartitioner()]).to_executorch()
    out = Path(out_path)
    out.parent.mkdir(parents=True, exist_ok=True)
    fd, name = tempfile.mkstemp(prefix=f".{out.name}.", dir=out.parent)
    os.close(fd)
    staged = Path(name)
    try:
        staged.write_bytes(program.buffer)
        method = load_pte(staged)
        windows = parity_windows(pre.sample_rate, window)
        got = np.concatenate([method.execute([torch.from_numpy(w[None])])[0].numpy()
                              for w in windows])
        ref = np.stack([pre.embed(w) for w in windows])
        worst, ref_max = float(np.abs(got - ref).max()), float(np.abs(ref).max())
        limit = FP32_TOLERANCE * max(1.0, ref_max)
        parity = {"max_abs_diff": worst, "max_abs_ref": ref_max, "fp32_limit": limit,
                  "ok": worst <= limit}
        if verbose:
            print(f"parity vs PyTorch: fp32 max abs diff {worst:.2e} (limit {limit:.1e})")
        if not parity["ok"] and not force:
            raise ExportError(f"refusing to write {out}: max abs diff {worst:.2e} > {limit:.1e}; "
                              "pass force=True to write anyway")
        meta = {**model_metadata(pre, int8=False), "format": "executorch-xnnpack-fp32",
                "input": f"float32 (1, {window}) mono in [-1, 1]: exactly one window",
                "output": f"float32 (1, {pre.embed_dim})"}
        Path(f"{out}.json").write_text(json.dumps(meta, indent=1) + "\n")
        os.replace(staged, out)
    finally:
        staged.unlink(missing_ok=True)
    return {"path": str(out), "bytes": out.stat().st_size, "parity": parity, "metadata": meta,
            "forced": bool(force and not parity["ok"])}
