"""The ``fsdd`` suite: real spoken digits (Free Spoken Digit Dataset).

Tasks:
- ``fsdd-digit``: the official split (recordings with index 0–4 are test, the rest train).
- ``fsdd-speaker``: the same split, the speaker as the label.
- ``fsdd-digit-unseen-speaker``: digits on speakers the probe never heard: the speakers are
  cut into disjoint pairs (sorted by name), each pair is the test set of one fold with every
  other speaker's clips as train, and the score is the mean over the folds (every speaker is
  tested exactly once). Speaker-disjoint splits are the realistic case; the official split is
  near the ceiling.

Label-deficient variants are ``pocketear evaluate --shots 1,5,10`` (k clips per class from each
fold's train part, a new draw per seed); the label-free views ``seg3`` / ``group-std`` (groups
are the speakers) are ``--views``. The suite has no validation part (as in the official split);
the runner carves one from each fold's train part (:meth:`EvalTask.with_valid`: stratified for
the official split, whole speakers for the unseen-speaker folds), used by every method alike to
select a probe's regularisation and the supervised epochs and learning rate.
"""

from __future__ import annotations

import os
from pathlib import Path

from pocketear.data.corpus import Corpus
from pocketear.errors import InvalidValue, MissingPath
from pocketear.evaluate.suites import DEFAULT_DATA_DIR, EvalTask, Suite, prepared_manifest
from pocketear.registry import register

SOURCE_ENV = "POCKETEAR_FSDD"


def speaker_folds(speakers: list[str], per_fold: int = 2) -> list[list[str]]:
    """Splits of the clips, one per disjoint group of ``per_fold`` speakers (sorted by name).

    ``test`` holds that group's clips, ``train`` every other clip.
    """
    names = sorted(set(speakers))
    if len(names) < 2:
        raise InvalidValue(f"fsdd-digit-unseen-speaker needs two speakers or more, found {names}")
    per_fold = min(per_fold, len(names) - 1)
    groups = [names[i:i + per_fold] for i in range(0, len(names), per_fold)]
    return [["test" if s in g else "train" for s in speakers] for g in groups]


@register("suite", "fsdd")
class FSDDSuite(Suite):
    """Free Spoken Digit Dataset: digit (official split), speaker, digit on unseen speakers.

    Args:
        source: the FSDD folder (holding ``recordings/``), its GitHub zip, or a manifest written
            by ``pocketear prepare fsdd``; default: ``data_dir`` of :meth:`tasks`, else the
            ``POCKETEAR_FSDD`` environment variable.
        per_fold: speakers tested per fold of the unseen-speaker task (default 2: train on
            four speakers, test on two).
    """

    name = "fsdd"

    def __init__(self, source: str | os.PathLike[str] | None = None, per_fold: int = 2) -> None:
        self.source, self.per_fold = source, int(per_fold)

    def manifest(self, data_dir: str | os.PathLike[str] | None = None,
                 progress: bool = True) -> Path:
        """The prepared manifest (prepared once into ``~/.cache/pocketear/suites``)."""
        src = self.source or data_dir or os.environ.get(SOURCE_ENV)
        if not src:
            raise MissingPath(
                "the fsdd suite needs the dataset: pass --data-dir PATH (the FSDD folder with "
                f"recordings/, its zip, or a prepared manifest.csv) or set {SOURCE_ENV}")
        return prepared_manifest(Path(src).expanduser(), "fsdd", "recordings", DEFAULT_DATA_DIR,
                                 "fsdd", progress)

    def tasks(self, data_dir: str | os.PathLike[str] | None = None,
              progress: bool = True) -> list[EvalTask]:
        """Prepare FSDD under ``data_dir`` once; its digit, speaker and unseen-speaker tasks."""
        corpus = Corpus.open(self.manifest(data_dir, progress))
        missing = {"digit", "speaker", "split"} - set(corpus.columns)
        if missing:
            raise InvalidValue(f"{corpus.source}: not an FSDD manifest (no column(s) "
                               f"{', '.join(sorted(missing))}); prepare it with `pocketear "
                               "prepare fsdd`")
        digits, speakers = corpus.column("digit"), corpus.column("speaker")
        split = corpus.column("split")
        folds = speaker_folds(speakers, self.per_fold)
        return [
            EvalTask("fsdd-digit", corpus, digits, split, speakers),
            # no groups: standardising per speaker would hand the label to a speaker probe
            EvalTask("fsdd-speaker", corpus, speakers, split),
            EvalTask("fsdd-digit-unseen-speaker", corpus, digits, folds[0], speakers, folds[1:]),
        ]
