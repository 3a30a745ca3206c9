"""The ``arabic-commands`` suite: 40 Arabic spoken keywords on unseen speakers.

Data: the Arabic Speech Commands dataset (Ghandoura, Hjabo & Al Dakkak 2021; recipe
``arabic_speech_commands``): 12,000 one-second clips, 30 speakers.

Task ``arabic-keyword``: the keyword (all 40 labels) on the dataset's official split, whose
train / valid / test speakers (18 / 6 / 6) are disjoint, so every score is on speakers the probe
never heard. The split has its own validation speakers, so nothing is carved from train; they
select a probe's regularisation and the supervised epochs and learning rate for every method
alike. Groups are the speakers: the label-free ``group-std`` view (``--views``) standardises
each speaker's embeddings.

Label-deficient variants are ``pocketear evaluate --shots 1,5,10``: k clips per keyword drawn
from the train speakers only, a new draw per seed
(:func:`~pocketear.evaluate.splits.kshot_indices`), tested on the same unseen test speakers.
The data2vec-KWS protocol (80 % of the training speakers' clips unlabelled for pretraining,
20 % labelled) is :func:`label_deficient_split`, used by ``benchmarks/keyword.py --dataset
arabic-commands``.

Usage::

    pocketear evaluate RUN --suite arabic-commands --data-dir PATH --baselines \
        --shots 1,5,10 --views clip,group-std --out RUN/eval_arabic
"""

from __future__ import annotations

import os
from collections import defaultdict
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from pocketear.data.corpus import Corpus
from pocketear.data.recipes.arabic_speech_commands import URL
from pocketear.errors import InvalidValue, MissingPath
from pocketear.evaluate.suites import DEFAULT_DATA_DIR, EvalTask, Suite, prepared_manifest
from pocketear.registry import register

SOURCE_ENV = "POCKETEAR_ARABIC_COMMANDS"
RECIPE = "arabic_speech_commands"


def _how_to_get_it() -> str:
    return (f"download {URL} and pass --data-dir PATH (the zip, its extracted folder with "
            f"dataset/ and train.csv, or the folder written by `pocketear prepare {RECIPE} "
            f"--source PATH --out DIR`), or set {SOURCE_ENV}")


def check_unseen_speakers(split: Sequence[str], speakers: Sequence[str], source: str) -> None:
    """Raise when a speaker has clips in two splits.

    Raises:
        InvalidValue: Names a shared speaker and how to rebuild the manifest.
    """
    where: dict[str, set[str]] = defaultdict(set)
    for s, g in zip(split, speakers, strict=True):
        where[g].add(s)
    shared = sorted(g for g, s in where.items() if len(s) > 1)
    if shared:
        raise InvalidValue(f"{source}: speaker {shared[0]} has clips in "
                           f"{', '.join(sorted(where[shared[0]]))} ({len(shared)} shared "
                           f"speaker(s)); the split must be speaker-disjoint: prepare the "
                           f"manifest again with `pocketear prepare {RECIPE}`")


def label_deficient_split(split: Sequence[str], speakers: Sequence[str],
                          keywords: Sequence[str], fraction: float = 0.2, seed: int = 0
                          ) -> tuple[np.ndarray, np.ndarray]:
    """The train clips cut into an unlabelled part (pretraining) and a labelled one.

    The protocol of data2vec-KWS (Bovbjerg & Tan, "Improving label-deficient keyword spotting
    through self-supervised pretraining", arXiv 2210.01703, 2022): of every (speaker, keyword)
    of the ``train`` split, ``fraction`` of its clips (rounded, at least one, and at least one
    left unlabelled when it has two or more) are labelled, the rest unlabelled; which ones is
    seeded. So every keyword, and every speaker with two clips of a keyword, sits in both
    parts; ``valid`` and ``test`` clips are in neither (with the official split: other
    speakers).

    Args:
        split: ``train``, ``valid`` or ``test`` of every clip.
        speakers: speaker of every clip.
        keywords: keyword (label) of every clip.
        fraction: share of each (speaker, keyword)'s train clips that is labelled.
        seed: seeds the choice.

    Returns:
        (unlabelled indices, labelled indices): sorted and disjoint.

    Raises:
        InvalidValue: ``fraction`` outside (0, 1), or no train clip.
    """
    if not 0.0 < fraction < 1.0:
        raise InvalidValue(f"labelled fraction must be in (0, 1), got {fraction}")
    cells: dict[tuple[str, str], list[int]] = defaultdict(list)
    for i, (s, g, k) in enumerate(zip(split, speakers, keywords, strict=True)):
        if s == "train":
            cells[g, k].append(i)
    if not cells:
        raise InvalidValue("label_deficient_split: no clip has split 'train'")
    rng = np.random.default_rng([seed, 29])
    unlabelled, labelled = [], []
    for cell in sorted(cells):
        members = rng.permutation(cells[cell])
        n = len(members)
        n_labelled = 1 if n < 2 else min(n - 1, max(1, round(fraction * n)))
        labelled += members[:n_labelled].tolist()
        unlabelled += members[n_labelled:].tolist()
    return np.sort(np.asarray(unlabelled, np.int64)), np.sort(np.asarray(labelled, np.int64))


@register("suite", "arabic-commands")
class ArabicCommandsSuite(Suite):
    """Arabic Speech Commands: 40 keywords on the official speaker-disjoint split.

    Args:
        source: the dataset's folder (holding ``dataset/`` and the split CSVs), its GitHub zip,
            or a manifest written by ``pocketear prepare arabic_speech_commands`` (or the folder
            holding it); default: ``data_dir`` of :meth:`tasks`, else the
            ``POCKETEAR_ARABIC_COMMANDS`` environment variable.
    """

    name = "arabic-commands"

    def __init__(self, source: str | os.PathLike[str] | None = None) -> None:
        self.source = source

    def manifest(self, data_dir: str | os.PathLike[str] | None = None,
                 progress: bool = True) -> Path:
        """The prepared manifest (prepared once into ``~/.cache/pocketear/suites``).

        Raises:
            MissingPath: No source given, or it does not exist (the message says where to get
                the dataset and how to pass it).
        """
        src = self.source or data_dir or os.environ.get(SOURCE_ENV)
        if not src:
            raise MissingPath("the arabic-commands suite needs the Arabic Speech Commands "
                              f"dataset: {_how_to_get_it()}")
        path = Path(src).expanduser()
        if not path.exists():
            raise MissingPath(f"{path}: no such folder, archive or manifest; {_how_to_get_it()}")
        return prepared_manifest(path, RECIPE, "dataset", DEFAULT_DATA_DIR, self.name, progress)

    def tasks(self, data_dir: str | os.PathLike[str] | None = None,
              progress: bool = True) -> list[EvalTask]:
        """Prepare the dataset once; the keyword task on the official split."""
        corpus = Corpus.open(self.manifest(data_dir, progress))
        missing = {"label", "speaker", "split"} - set(corpus.columns)
        if missing:
            raise InvalidValue(f"{corpus.source}: not an Arabic Speech Commands manifest (no "
                               f"column(s) {', '.join(sorted(missing))}); prepare it with "
                               f"`pocketear prepare {RECIPE}`")
        split, speakers = corpus.column("split"), corpus.column("speaker")
        check_unseen_speakers(split, speakers, corpus.source)
        return [EvalTask("arabic-keyword", corpus, corpus.column("label"), split, speakers)]
