"""Data commands: ``list``, ``synth``, ``prepare``, ``cache``, ``shard``."""

from __future__ import annotations

import argparse
from pathlib import Path

from pocketear.cli.core import command
from pocketear.errors import InvalidValue
from pocketear.registry import KINDS

LIST_KINDS = {f"{kind}s": kind for kind in KINDS}  # `pocketear list encoders` ... `baselines`


# --- list ---------------------------------------------------------------------------------
def _list_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("kind", nargs="?", choices=sorted(LIST_KINDS), help="what to list (all if "
                   "omitted)")


@command("list", _list_args)
def _list(args: argparse.Namespace) -> int:
    """List everything registered: encoders, tasks, suites, recipes, ...

    Encoders come with their size, cost and the embedding size of each read-out
    (``--set encoder.readout=POOLING:SOURCE``).
    """
    from pocketear.encoders.base import DEFAULT_READOUT
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
            if kind == "encoder":
                print(f"  {'':<22}  read-out sizes: {readout_sizes(enc)}")
        if kind == "encoder":
            print(f"  (default read-out {DEFAULT_READOUT}; meanstd doubles the size)")
    return 0


def readout_sizes(encoder: object) -> str:
    """``proj D_p, features D_f`` (the max/mean/meanmax size; meanstd is twice it)."""
    return f"proj {encoder.embed_dim}, features {encoder.feature_dim}"  # type: ignore[attr-defined]


# --- synth --------------------------------------------------------------------------------
def _synth_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("out_dir", type=Path, help="folder for the WAV files and manifest.csv")
    p.add_argument("--minutes", type=float, default=30.0,
                   help="total audio (default 30, the synthetic suite's size)")
    p.add_argument("--seed", type=int, default=0, help="corpus seed (deterministic)")
    p.add_argument("--workers", type=int, default=2, help="processes (default 2)")


@command("synth", _synth_args)
def _synth(args: argparse.Namespace) -> int:
    """Write the built-in synthetic corpus (speech, music, scenes; events + long-form).

    Labelled 1 s events (word, speaker, instrument, pitch, scene) for evaluation and 10-30 s
    long-form recordings for pretraining, with manifest.csv; deterministic for a seed.
    """
    from pocketear.data.synth.corpus import write_corpus

    manifest = write_corpus(args.out_dir, minutes=args.minutes, seed=args.seed,
                            workers=args.workers)
    print(f"wrote {manifest}")
    return 0


# --- prepare ------------------------------------------------------------------------------
_FLAG = "recipe_option_"  # argparse dest prefix of the options every recipe declares
_OWN_FLAGS = frozenset({"recipe", "source", "out", "opt", "options", "no_progress", "help"})


def recipe_flags() -> dict[str, str]:
    """Option -> help of every option a registered recipe declares (the ``--KEY`` flags).

    An option some recipes only take names them; one their help texts differ on gives each.
    """
    from pocketear.data.recipes import recipe_options
    from pocketear.registry import available

    names = available("recipe")
    texts: dict[str, dict[str, str]] = {}
    for name in names:
        for key, text in recipe_options(name).items():
            texts.setdefault(key, {})[name] = text
    flags = {}
    for key, by_recipe in sorted(texts.items()):
        if key in _OWN_FLAGS:
            continue  # only through --opt
        if len(set(by_recipe.values())) == 1:
            others = [n for n in names if n not in by_recipe]
            who = "" if not others else f" [every recipe but {', '.join(others)}]" \
                if len(others) < len(by_recipe) else f" [{', '.join(by_recipe)}]"
            flags[key] = next(iter(by_recipe.values())) + who
        else:
            flags[key] = "; ".join(f"{name}: {text}" for name, text in by_recipe.items())
    return flags


def _prepare_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("recipe", help="dataset recipe (`pocketear list recipes`; '-' or '_')")
    p.add_argument("--source", help="URL, downloaded archive or extracted folder (comma-separated "
                   "for datasets in several archives); needed by every recipe but debian-audio")
    p.add_argument("--out", type=Path, required=True, help="output folder (manifests, "
                   "downloads/, extracted/)")
    p.add_argument("--opt", dest="options", action="append", default=[], metavar="KEY=VALUE",
                   help="recipe option (repeatable; the same as --KEY VALUE below)")
    p.add_argument("--no-progress", action="store_true", help="no progress bars")
    group = p.add_argument_group("recipe options (each recipe refuses those it does not take)")
    for key, text in recipe_flags().items():
        group.add_argument(f"--{key.replace('_', '-')}", dest=_FLAG + key, metavar=key.upper(),
                           help=text)
    p.epilog = ("examples:\n"
                "  pocketear prepare fsdd --source ../shared/data/fsdd --out data/fsdd\n"
                "  pocketear prepare folder --source my_audio --out data/mine --seed 1\n"
                "  pocketear prepare debian-audio --out data/debian --hours 10 "
                "--domains speech,music")


def _recipe_options(args: argparse.Namespace) -> dict[str, str]:
    """``--opt KEY=VALUE`` and ``--KEY VALUE`` merged (the two may not disagree)."""
    options: dict[str, str] = {}
    for item in args.options:
        key, sep, value = item.partition("=")
        if not sep or not key:
            raise InvalidValue(f"--opt {item!r}: expected KEY=VALUE")
        options[key.strip()] = value
    for dest, value in vars(args).items():
        key = dest.removeprefix(_FLAG)
        if key == dest or value is None:
            continue
        if options.get(key, value) != value:
            raise InvalidValue(f"--{key.replace('_', '-')} {value!r} and --opt "
                               f"{key}={options[key]!r} disagree; give one")
        options[key] = value
    return options


@command("prepare", _prepare_args)
def _prepare(args: argparse.Namespace) -> int:
    """Prepare a standard dataset into a manifest with its official splits.

    Works from a URL or, with no internet, from an archive or folder already on disk; verifies
    published checksums, extracts safely (no absolute paths, '..' or outside links), resumes an
    interrupted run, and writes manifest.csv (path,label,split[,group]) last. debian-audio
    needs no --source: it assembles a pretraining corpus from the audio in Debian packages
    (apt-get download, or --from-debs FOLDER).
    """
    from pocketear.data.recipes import prepare

    result = prepare(args.recipe, args.source, args.out, progress=not args.no_progress,
                     **_recipe_options(args))
    for variant, path in (result.items() if isinstance(result, dict) else [("", result)]):
        print(f"wrote {path}" + (f"  ({variant})" if variant else ""))
    return 0


# --- cache --------------------------------------------------------------------------------
def _cache_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("data", help="folder of audio or CSV/TSV manifest")
    p.add_argument("--out", type=Path, required=True, help="cache folder")
    p.add_argument("--workers", type=int, default=2, help="processes (default 2)")
    p.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE",
                   help="frontend option, e.g. --set n_mels=40 or --set name=cqt (repeatable)")


@command("cache", _cache_args)
def _cache(args: argparse.Namespace) -> int:
    """Compute the feature cache of a corpus (log-mel; CQT with --set name=cqt), reused later.

    Optional: pretrain and evaluate build it when missing. Keyed by the frontend config and the
    corpus's files, so a change builds a new cache rather than reading a stale one.
    """
    from omegaconf import OmegaConf

    from pocketear.data.cache import build_cache
    from pocketear.data.corpus import Corpus
    from pocketear.frontends import frontend_config

    given = OmegaConf.to_container(OmegaConf.from_dotlist(args.overrides))
    cfg = frontend_config(given)  # type: ignore[arg-type]
    cache = build_cache(Corpus.open(args.data), args.out, cfg, workers=args.workers)
    print(f"cache {cache.root}: {len(cache)} clips, {cache.index['total_frames']} frames, "
          f"skipped {len(cache.skipped)} file(s)")
    return 0


# --- shard --------------------------------------------------------------------------------
def _shard_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("data", help="folder of audio or CSV/TSV manifest")
    p.add_argument("--out", type=Path, required=True, help="folder for NNNNNN.tar and shards.json")
    p.add_argument("--size", default="1GB", help="bytes per shard, e.g. 1GB, 500MB, 64kB, 2GiB "
                   "(default 1GB; smaller shards feed more ranks × workers)")
    p.add_argument("--mels", action="store_true", help="also store float16 log-mels (larger "
                   "shards; no decoding while training with the same frontend)")
    p.add_argument("--sample-rate", type=int, default=16000, help="rate of the stored FLAC "
                   "(default 16000)")
    p.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE",
                   help="frontend option of the stored log-mels and statistics, e.g. --set "
                   "n_mels=40 (repeatable)")
    p.add_argument("--overwrite", action="store_true", help="replace shards already in --out")
    p.add_argument("--no-progress", action="store_true", help="no progress bar")
    p.epilog = ("examples:\n"
                "  pocketear shard data/big --out shards --size 1GB\n"
                "  pocketear pretrain --data 'shards/{000000..000012}.tar' ...\n"
                "  pocketear pretrain --data s3://bucket/shards ...")


@command("shard", _shard_args)
def _shard(args: argparse.Namespace) -> int:
    """Write a corpus as WebDataset tar shards, for corpora larger than memory or disk.

    Each clip is stored once as 16-bit FLAC with its manifest columns (and, with --mels, its
    log-mel); shards.json, written last, lists the shards and holds the log-mel mean/std, so
    training needs no pass over the data. Train from them with
    `pocketear pretrain --data 'SHARDS/{000000..000012}.tar'` (or the folder SHARDS/), local or
    any fsspec URL (s3://, gs://, http://): shards are streamed, never held whole.
    """
    from omegaconf import OmegaConf

    from pocketear.data.shards import parse_size, write_shards
    from pocketear.frontends import frontend_config

    size = parse_size(args.size)
    given = OmegaConf.to_container(OmegaConf.from_dotlist(args.overrides))
    cfg = frontend_config(given)  # type: ignore[arg-type]
    index = write_shards(args.data, args.out, max_bytes=size, frontend=cfg,
                         store_mels=args.mels, sample_rate=args.sample_rate,
                         progress=not args.no_progress, overwrite=args.overwrite)
    print(f"shards {args.out}: {index['clips']} clips, {len(index['shards'])} shard(s) "
          f"{index['pattern']}, skipped {len(index['skipped'])} file(s), {index['bytes']} bytes")
    return 0
