"""The ``pocketear`` command line: one sub-command per driver, each with ``--help``."""

from __future__ import annotations

import argparse
import sys
import warnings
from collections.abc import Callable
from pathlib import Path

LIST_KINDS = {"encoders": "encoder", "tasks": "task", "augmentations": "augmentation",
              "suites": "suite", "recipes": "recipe", "probes": "probe", "frontends": "frontend"}

COMMANDS: dict[str, tuple[Callable[[argparse.ArgumentParser], None],
                          Callable[[argparse.Namespace], int]]] = {}


def command(name: str, add_args: Callable[[argparse.ArgumentParser], None]):
    """Register a sub-command: ``add_args`` declares its options; the function runs it."""
    def deco(fn: Callable[[argparse.Namespace], int]) -> Callable[[argparse.Namespace], int]:
        COMMANDS[name] = (add_args, fn)
        return fn
    return deco


# --- list ---------------------------------------------------------------------------------
def _list_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("kind", nargs="?", choices=sorted(LIST_KINDS), help="what to list (all if "
                   "omitted)")


@command("list", _list_args)
def _list(args: argparse.Namespace) -> int:
    """List everything registered: encoders (with size and cost), tasks, suites, ..."""
    from pocketear.registry import available, create, describe

    kinds = [args.kind] if args.kind else list(LIST_KINDS)
    for plural in kinds:
        kind = LIST_KINDS[plural]
        names = available(kind)
        print(f"{plural}:")
        if not names:
            print("  (none registered yet)")
        for name in names:
            extra = ""
            if kind == "encoder":
                enc = create("encoder", name)
                extra = (f"  {enc.params / 1e3:8.1f} k params  "
                         f"{enc.macs_per_second() / 1e6:8.1f} M MACs/s audio")
            print(f"  {name:<22}{extra}  {describe(kind, name)}")
    return 0


# --- synth --------------------------------------------------------------------------------
def _synth_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("out_dir", type=Path, help="folder for the WAV files and manifest.csv")
    p.add_argument("--minutes", type=float, default=6.0, help="total audio (default 6)")
    p.add_argument("--seed", type=int, default=0, help="corpus seed (deterministic)")
    p.add_argument("--workers", type=int, default=2, help="processes (default 2)")


@command("synth", _synth_args)
def _synth(args: argparse.Namespace) -> int:
    """Write the built-in synthetic corpus (speech, music, scenes; events + long-form)."""
    from pocketear.data.synth.corpus import write_corpus

    manifest = write_corpus(args.out_dir, minutes=args.minutes, seed=args.seed,
                            workers=args.workers)
    print(f"wrote {manifest}")
    return 0


# --- cache --------------------------------------------------------------------------------
def _cache_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("data", help="folder of audio or CSV/TSV manifest")
    p.add_argument("--out", type=Path, required=True, help="cache folder")
    p.add_argument("--workers", type=int, default=2, help="processes (default 2)")
    p.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE",
                   help="frontend option, e.g. --set n_mels=40 (repeatable)")


@command("cache", _cache_args)
def _cache(args: argparse.Namespace) -> int:
    """Compute the log-mel feature cache of a corpus (reused by later commands)."""
    import dataclasses

    from omegaconf import OmegaConf

    from pocketear.data.cache import build_cache
    from pocketear.data.corpus import Corpus
    from pocketear.frontends.logmel import LogMelConfig

    fields = {f.name for f in dataclasses.fields(LogMelConfig)}
    given = OmegaConf.to_container(OmegaConf.from_dotlist(args.overrides))
    unknown = set(given) - fields  # type: ignore[arg-type]
    if unknown:
        raise SystemExit(f"unknown frontend option(s) {sorted(unknown)}; known: {sorted(fields)}")
    cfg = LogMelConfig(**given)  # type: ignore[arg-type]
    cache = build_cache(Corpus.open(args.data), args.out, cfg, workers=args.workers)
    print(f"cache {cache.root}: {len(cache)} clips, {cache.index['total_frames']} frames, "
          f"skipped {len(cache.skipped)} file(s)")
    return 0


# --- pretrain -----------------------------------------------------------------------------
def _pretrain_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("--task", help="pretext task (`pocketear list tasks`)")
    p.add_argument("--data", help="folder of audio or CSV/TSV manifest (labels are ignored)")
    p.add_argument("--encoder", help="encoder (`pocketear list encoders`; default mobile_100)")
    p.add_argument("--config", type=Path, help="YAML config file (see docs/configs.md)")
    p.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE",
                   help="dotted override, e.g. --set optim.lr=1e-3 (repeatable)")
    group = p.add_mutually_exclusive_group()
    group.add_argument("--steps", type=int, help="optimiser steps")
    group.add_argument("--epochs", type=float, help="epochs over the corpus's clips")
    p.add_argument("--out", type=Path, required=True, help="run folder")
    p.add_argument("--resume", action="store_true", help="continue the run in --out")
    p.add_argument("--no-progress", action="store_true", help="no progress bar")


@command("pretrain", _pretrain_args)
def _pretrain(args: argparse.Namespace) -> int:
    """Pretrain an encoder with a pretext task on unlabeled audio."""
    from pocketear.train.config import load_config
    from pocketear.train.loop import pretrain

    sets = []
    for key, value in (("task.name", args.task), ("encoder.name", args.encoder),
                       ("data.source", args.data), ("train.steps", args.steps),
                       ("train.epochs", args.epochs)):
        if value is not None:
            sets.append(f"{key}={value}")
    cfg = {} if args.resume else load_config(args.config, [*sets, *args.overrides])
    if args.resume:
        cfg = {"train": {"steps": args.steps or 0}}
    summary = pretrain(cfg, args.out, resume=args.resume, progress=not args.no_progress)
    loss = summary["final"].get("loss", float("nan"))
    print(f"done: {summary['steps']} steps, final loss {loss:.4f}, "
          f"checkpoint {summary['checkpoint']}")
    if summary["skipped_files"]:
        print(f"skipped {summary['skipped_files']} undecodable file(s); see the cache index")
    return 0


# --- entry point --------------------------------------------------------------------------
def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="pocketear",
        description="Self-supervised audio representation learning with small, on-device "
                    "encoders: pretrain on unlabeled audio, evaluate frozen embeddings against "
                    "baselines, export to ONNX.",
    )
    from pocketear import __version__

    parser.add_argument("--version", action="version", version=f"pocketear {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    for name, (add_args, fn) in COMMANDS.items():
        doc = (fn.__doc__ or "").strip()
        p = sub.add_parser(name, help=doc, description=doc)
        add_args(p)
        p.set_defaults(func=fn)
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if not getattr(args, "func", None):
        parser.print_help()
        return 0
    warnings.simplefilter("default")
    try:
        return int(args.func(args) or 0)
    except (ValueError, FileNotFoundError, FileExistsError, KeyError) as err:
        msg = err.args[0] if isinstance(err, KeyError) and err.args else err
        print(f"pocketear {args.command}: error: {msg}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
