"""Pitch commands: ``calibrate`` a SPICE run, track ``pitch`` in audio files."""

from __future__ import annotations

import argparse
from pathlib import Path

from pocketear.cli.core import command


def _calibrate_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("checkpoint", metavar="RUN_DIR_OR_CHECKPOINT", help="a `--task spice` run")
    p.add_argument("--notes", type=Path, metavar="MANIFEST",
                   help="CSV/TSV with 'path' and 'midi' columns, one held note per file "
                        "(default: notes of the built-in synthesiser, so no data is needed)")
    p.add_argument("--seed", type=int, default=0, help="seed of the built-in notes")


@command("calibrate", _calibrate_args)
def _calibrate(args: argparse.Namespace) -> int:
    """Fit a SPICE model's map from its output to semitones, and store it in the checkpoint.

    Self-supervised pitch is known only up to an offset and a scale; a handful of notes of
    known pitch fix both (least squares, notes off by more than a semitone dropped). Needed
    once before `pocketear pitch` and `pocketear export --task-head pitch`.
    """
    from pocketear.pitch.calibrate import calibrate

    info = calibrate(args.checkpoint, args.notes, seed=args.seed)
    print(f"calibrated {info['checkpoint']}: midi = {info['offset']:.3f} + {info['slope']:.3f} "
          f"* output, fitted on {int(info['notes'])} notes ({info['source']}), rms residual "
          f"{info['rms_semitones']:.3f} semitones; voiced from confidence "
          f"{info['voicing_threshold']:.2f}")
    return 0


def _pitch_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("model", metavar="MODEL",
                   help="calibrated spice run folder or checkpoint, or its exported .onnx")
    p.add_argument("inputs", nargs="+", metavar="FILES_OR_DIR",
                   help="audio files, folders or manifests")
    p.add_argument("--out", type=Path, required=True, help="output CSV")
    p.add_argument("--threshold", type=float,
                   help="confidence at or above which a frame is voiced (default: the one "
                        "`pocketear calibrate` stored, else 0.9 as in SPICE's tutorial)")
    p.add_argument("--threads", type=int, help="inference threads")
    p.add_argument("--no-progress", action="store_true", help="no progress bar")


@command("pitch", _pitch_args)
def _pitch(args: argparse.Namespace) -> int:
    """Track pitch: one CSV row per 32 ms frame (file, time s, Hz, confidence, voiced).

    Files of any length stream through in 30 s blocks, so memory stays bounded; a checkpoint
    runs in PyTorch, an .onnx in ONNX Runtime, with the same output. Files that cannot be
    decoded are skipped with a warning and counted.
    """
    from pocketear.pitch.track import track_files

    info = track_files(args.model, args.inputs, args.out, threshold=args.threshold,
                       threads=args.threads, progress=not args.no_progress)
    print(f"wrote {info['out']}: {info['frames']} frames of {info['tracked']} file(s) "
          f"({info['backend']}), skipped {len(info['skipped'])}")
    return 0
