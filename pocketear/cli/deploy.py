"""Deployment commands: ``export``, ``embed``."""

from __future__ import annotations

import argparse
from pathlib import Path

from pocketear.cli.core import command
from pocketear.errors import InvalidValue


def _export_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("checkpoint", metavar="CHECKPOINT_OR_RUN_DIR")
    p.add_argument("--format", choices=["onnx", "pte"], default="onnx",
                   help="onnx (default: any batch and length; ONNX Runtime) or pte (ExecuTorch "
                        "XNNPACK fp32, one window per call; needs pip install 'pocketear[edge]')")
    p.add_argument("--int8", action="store_true",
                   help="static int8 QDQ per-channel quantisation of the encoder")
    p.add_argument("--calibration", help="folder or manifest of audio for int8 calibration "
                   "(a few hundred clips of your data; default: synthetic signals)")
    p.add_argument("--force", action="store_true",
                   help="write the model even when the parity check fails")
    p.add_argument("--task-head", choices=["embedding", "pitch"], default="embedding",
                   help="embedding (default: waveform → clip embedding) or pitch (a calibrated "
                        "spice run: waveform → pitch and confidence per frame; onnx only)")
    p.add_argument("--out", type=Path, required=True, help="model file (.onnx or .pte)")


@command("export", _export_args)
def _export(args: argparse.Namespace) -> int:
    """Export a checkpoint to one self-contained model file (waveform in, embedding out).

    The frontend and the normalisation statistics are inside the model, with metadata (sample
    rate, window, hop, embedding size, source checkpoint hash; for .pte in FILE.json beside it).
    Parity against PyTorch is checked and printed; a model outside tolerance is not written
    unless --force.
    """
    from pocketear.export.onnx import export_onnx

    if args.task_head == "pitch":
        from pocketear.pitch.export import export_pitch_onnx

        if args.format != "onnx" or args.int8:
            raise InvalidValue("--task-head pitch exports fp32 ONNX only (no --int8, no pte)")
        report = export_pitch_onnx(args.checkpoint, args.out, force=args.force)
        print(f"wrote {args.out} ({report['bytes'] / 1024:.1f} KB, fp32 pitch tracker; "
              f"max diff vs PyTorch {report['max_abs_diff']:.1e})")
        return 0
    if args.calibration and not args.int8:
        raise InvalidValue("--calibration only applies with --int8")
    if args.format == "pte":
        from pocketear.export.pte import export_pte

        if args.int8:
            raise InvalidValue("--int8 is for --format onnx; the .pte export is fp32 (XNNPACK)")
        report = export_pte(args.checkpoint, args.out, force=args.force)
        print(f"wrote {args.out} ({report['bytes'] / 1024:.1f} KB, fp32, ExecuTorch XNNPACK) "
              f"and {args.out}.json")
        return 0
    report = export_onnx(args.checkpoint, args.out, int8=args.int8,
                         calibration=args.calibration, force=args.force)
    print(f"wrote {args.out} ({report['bytes'] / 1024:.1f} KB, "
          f"{'int8' if args.int8 else 'fp32'}, opset {report['opset']})")
    return 0


def _embed_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("model", metavar="CHECKPOINT_OR_ONNX")
    p.add_argument("inputs", nargs="+", metavar="FILES_OR_DIR",
                   help="audio files, folders or manifests")
    p.add_argument("--out", type=Path, required=True,
                   help="output .npz (or .parquet when pyarrow is installed)")
    p.add_argument("--frames", action="store_true",
                   help="frame embeddings with timestamps instead of one per file")
    p.add_argument("--hop-ms", type=float, help="frame hop in ms (default: the model's window "
                   "hop); with --frames")
    p.add_argument("--threads", type=int, help="inference threads")
    p.add_argument("--no-progress", action="store_true", help="no progress bar")


@command("embed", _embed_args)
def _embed(args: argparse.Namespace) -> int:
    """Embed audio files of any length with a checkpoint or an exported .onnx model.

    Audio is streamed in chunks, so memory stays bounded whatever the file length. Files that
    cannot be decoded are skipped with a warning and counted.
    """
    from pocketear.export.stream import embed_files

    if args.hop_ms is not None and not args.frames:
        raise InvalidValue("--hop-ms only applies with --frames")
    info = embed_files(args.model, args.inputs, args.out, hop_ms=args.hop_ms,
                       frames=args.frames, progress=not args.no_progress, threads=args.threads)
    print(f"wrote {info['out']}: {info['rows']} embedding(s) of {info['embedded']} file(s) "
          f"({info['backend']}), skipped {len(info['skipped'])}")
    return 0
