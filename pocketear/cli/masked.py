"""Target commands of the masked-prediction tasks.

``cluster`` fits HuBERT's k-means targets; ``tokenizer`` trains BEATs' tokenizer.
"""

from __future__ import annotations

import argparse
from pathlib import Path

from pocketear.cli.core import command


def _common(p: argparse.ArgumentParser, k: int) -> None:
    p.add_argument("--layer", type=int, help="encoder layer: 0 = output, l = block l "
                   "(default: the middle block of a transformer, else 0)")
    p.add_argument("--k", type=int, default=k, help=f"codebook size (default {k})")
    p.add_argument("--data", help="folder or manifest to cluster (default: the run's data)")
    p.add_argument("--out", type=Path, help="target file (.npz; default: in the run folder)")
    p.add_argument("--max-frames", type=int, default=200_000,
                   help="cluster at most this many frames (a seeded random subset)")
    p.add_argument("--seed", type=int, default=0, help="seed of the subset and k-means")
    p.add_argument("--no-progress", action="store_true", help="no progress bars")


def _cluster_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("run", nargs="?", type=Path,
                   help="run folder or checkpoint whose encoder gives the features (later "
                        "iterations); omit it and give --data for iteration 1")
    p.add_argument("--features", choices=["mfcc", "logmel"], default="mfcc",
                   help="frame features for iteration 1 (no RUN_DIR)")
    _common(p, 100)


@command("cluster", _cluster_args)
def _cluster(args: argparse.Namespace) -> int:
    """K-means targets for HuBERT (pretrain --task hubert --targets FILE).

    Iteration 1: `pocketear cluster --data FOLDER --features mfcc --k 100 --out t1.npz`
    clusters 39-d MFCC frames of the corpus. Later iterations: `pocketear cluster RUN_DIR
    --layer L --k K` clusters that run's layer-L features; the file embeds the frozen encoder,
    which labels each training batch on the fly.
    """
    from pocketear.train.targets import make_targets

    path, meta = make_targets(args.run, args.data, args.features, args.layer, args.k, args.out,
                              "euclidean", args.max_frames, args.seed,
                              progress=not args.no_progress)
    print(f"wrote {path}: k={meta['k']} {meta['kind']} targets (layer {meta['layer']}) from "
          f"{meta['frames']:,} frames of {meta['clips']:,} clips, inertia {meta['inertia']:.4g}")
    return 0


def _tokenizer_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("run", type=Path, help="run folder or checkpoint of the previous iteration")
    _common(p, 1024)


@command("tokenizer", _tokenizer_args)
def _tokenizer(args: argparse.Namespace) -> int:
    """Next-iteration BEATs tokenizer from a trained run (pretrain --task beats --targets FILE).

    The run's frozen encoder at --layer gives frame features; a spherical k-means codebook
    (L2-normalised features and centroids, cosine lookup) quantises them. Unlike BEATs, no
    separate tokenizer network is distilled: the previous model itself is the tokenizer.
    """
    from pocketear.train.targets import make_targets

    path, meta = make_targets(args.run, args.data, "model", args.layer, args.k, args.out,
                              "cosine", args.max_frames, args.seed,
                              progress=not args.no_progress)
    print(f"wrote {path}: {meta['k']}-code tokenizer (layer {meta['layer']}) from "
          f"{meta['frames']:,} frames of {meta['clips']:,} clips")
    return 0
