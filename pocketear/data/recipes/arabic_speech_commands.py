"""Arabic Speech Commands recipe: 40 one-second keywords by 30 speakers, the official split.

Ghandoura, Hjabo & Al Dakkak, "Building and Benchmarking an Arabic Speech Commands Dataset for
Small-Footprint Keyword Spotting", Engineering Applications of Artificial Intelligence, 2021;
github.com/abdulkaderghandoura/arabic-speech-commands-dataset. CC BY 4.0. 12,000 clips: each
of the 30 speakers says each keyword 10 times (1 s, 16 kHz).

Layout: ``dataset/<keyword>/<speaker>_NO_<round>.wav`` (``speaker``: 8 digits; keywords may
hold a space: ``zoom in``), an optional ``background_noise/`` folder, and ``train.csv``,
``val.csv`` and ``test.csv`` at the root (header ``file,class``, rows such as
``dataset/backward/00000030_NO_01.wav,backward``). The source is that folder, the GitHub
archive (:data:`URL`, or its zip / tar.gz downloaded) or its extracted folder. Files whose
names do not follow the pattern are ignored.

Split: the dataset's own CSVs (train / valid / test: 18 / 6 / 6 speakers, 7,200 / 2,400 / 2,400
clips), checked to be speaker-disjoint (a speaker listed in two CSVs is an error). A listed file
that is missing is warned about and counted; a file present but listed in no CSV goes into no
split and is counted. Without the three CSVs the speakers are split by hash in exact 60/20/20
proportions (18/6/6 of 30), with a warning; with only some of them, an error.

Columns: ``label`` = the CSV's ``class`` (the keyword folder without CSVs), ``group`` =
speaker, ``speaker``, ``round``, ``keyword`` (the folder). ``background_noise/`` holds no
keyword: its files are not in the manifest (counted in the summary).
"""

from __future__ import annotations

import csv
import posixpath
import re
import sys
import warnings
from collections import defaultdict
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from pocketear.data.recipes.base import (
    COMMON_OPTIONS,
    SPLITS,
    Recipe,
    RecipeError,
    RecipeWarning,
    ScanReport,
    audio_files,
    find_dirs,
    ordered_split,
    write_manifest,
)
from pocketear.registry import register

URL = ("https://github.com/abdulkaderghandoura/arabic-speech-commands-dataset/archive/refs/"
       "heads/main.zip")
LISTS = {"train": "train.csv", "valid": "val.csv", "test": "test.csv"}
FALLBACK_FRACTIONS = (0.6, 0.2, 0.2)  # of the speakers, without the CSVs
NOISE = "background_noise"
_NAME = re.compile(r"^(\d+)_NO_(\d+)\.wav$", re.IGNORECASE)
_EXTRA = ("speaker", "round", "keyword")


def _relative(name: str) -> str:
    """A CSV's ``file`` entry as a normalised POSIX path (backslashes and ``./`` tolerated)."""
    return posixpath.normpath(name.strip().replace("\\", "/"))


def speaker_of(file: str) -> str | None:
    """The speaker (leading digits) of ``<speaker>_NO_<round>.wav``; None for other names."""
    match = _NAME.match(posixpath.basename(file))
    return match.group(1) if match else None


def read_list(path: Path) -> dict[str, str]:
    """One split CSV (``file,class``) as ``{relative file: class}``.

    Raises:
        RecipeError: The header lacks ``file`` or ``class``.
    """
    with open(path, newline="", encoding="utf-8-sig") as f:
        reader = csv.DictReader(f)
        reader.fieldnames = [c.strip() for c in reader.fieldnames or []]
        if not {"file", "class"} <= set(reader.fieldnames):
            raise RecipeError(f"{path}: expected the header 'file,class', found "
                              f"{','.join(reader.fieldnames) or 'nothing'}; restore the "
                              "dataset's CSV")
        return {_relative(row["file"]): (row.get("class") or "").strip()
                for row in reader if (row.get("file") or "").strip()}


def read_lists(root: Path) -> dict[str, dict[str, str]] | None:
    """The official split ``{split: {file: class}}`` from the three CSVs; None when none exist.

    Raises:
        RecipeError: Only some of the three CSVs exist, or one has a wrong header.
    """
    present = {s: root / name for s, name in LISTS.items() if (root / name).is_file()}
    if not present:
        return None
    if len(present) < len(LISTS):
        missing = [name for s, name in LISTS.items() if s not in present]
        raise RecipeError(f"{root}: {', '.join(missing)} missing beside "
                          f"{', '.join(p.name for p in present.values())}; the official split "
                          "needs all three: restore them from the archive, or remove all three "
                          "to split the speakers by hash")
    return {s: read_list(p) for s, p in present.items()}


def check_speaker_disjoint(lists: Mapping[str, Mapping[str, str]], root: Path) -> None:
    """Raise when a speaker is listed in more than one split.

    Raises:
        RecipeError: Names the speakers and the splits they straddle.
    """
    where: dict[str, set[str]] = defaultdict(set)
    for split, files in lists.items():
        for file in files:
            speaker = speaker_of(file)
            if speaker is not None:
                where[speaker].add(split)
    shared = sorted(s for s, splits in where.items() if len(splits) > 1)
    if shared:
        shown = "; ".join(f"{s} in {', '.join(LISTS[x] for x in SPLITS if x in where[s])}"
                          for s in shared[:5])
        raise RecipeError(f"{root}: {len(shared)} speaker(s) appear in more than one split CSV "
                          f"({shown}); the split must be speaker-disjoint: restore the "
                          "dataset's CSVs, or remove all three to split the speakers by hash")


def _warn_count(report: ScanReport, reason: str, files: Sequence[str], root: Path) -> None:
    """Count ``files`` under ``reason`` with one warning (not one per file)."""
    if files:
        report.skipped[reason] += len(files)
        warnings.warn(f"{root}: {len(files)} file(s) {reason}, e.g. {files[0]}", RecipeWarning,
                      stacklevel=3)


@register("recipe", "arabic_speech_commands")
class ArabicSpeechCommandsRecipe(Recipe):
    """Arabic Speech Commands: 40 keywords, 30 speakers, the official speaker-disjoint CSVs."""

    name = "arabic_speech_commands"
    options = dict(COMMON_OPTIONS)

    def prepare(self, source: str, out: Path, progress: bool = True,
                **options: Any) -> Path:
        """Write ``out/manifest.csv`` from ``source`` (folder, zip / tar.gz or URL)."""
        opts = self.check_options(options)
        out = Path(out)
        roots = self.fetch(source, out, progress, opts)
        found = find_dirs(roots, lambda d: (d / "dataset").is_dir() or (d / LISTS["train"])
                          .is_file())
        if not found:
            raise RecipeError(f"arabic_speech_commands: no folder with dataset/ or train.csv in "
                              f"{source}; pass the repository's folder, its archive or {URL}")
        root = found[0]
        report = ScanReport()
        clips, seen = self._scan(root, report)
        lists = read_lists(root)
        if lists is None:
            warnings.warn(f"{root}: train.csv, val.csv and test.csv missing; splitting the "
                          "speakers by hash (60/20/20 of the speakers) instead of the official "
                          "split", RecipeWarning, stacklevel=2)
            split = ordered_split({c["speaker"] for c in clips.values()}, FALLBACK_FRACTIONS,
                                  salt=self.name)
            rows = [{**c, "label": c["keyword"], "split": split[c["speaker"]]}
                    for c in clips.values()]
        else:
            check_speaker_disjoint(lists, root)
            listed = {f: (s, label) for s, files in lists.items() for f, label in files.items()}
            _warn_count(report, "listed in a split CSV but missing",
                        sorted(set(listed) - seen), root)
            _warn_count(report, "in no split CSV (left out)", sorted(set(clips) - set(listed)),
                        root)
            rows = [{**c, "split": listed[f][0], "label": listed[f][1] or c["keyword"]}
                    for f, c in clips.items() if f in listed]
        manifest = write_manifest(out / "manifest.csv", rows, _EXTRA)
        self.finish(rows, report, progress)
        return manifest

    @staticmethod
    def _scan(root: Path, report: ScanReport) -> tuple[dict[str, dict[str, Any]], set[str]]:
        """Usable clips ``{relative file: row}`` and every clip name found (empty ones too)."""
        clips: dict[str, dict[str, Any]] = {}
        seen: set[str] = set()
        folder = root / "dataset"
        keywords = sorted(d for d in folder.iterdir() if d.is_dir()
                          and not d.name.startswith(".")) if folder.is_dir() else []
        for keyword in keywords:
            for path in sorted(keyword.iterdir()):
                match = _NAME.match(path.name)
                if not match or not path.is_file():
                    continue
                rel = f"dataset/{keyword.name}/{path.name}"
                seen.add(rel)
                if not report.usable(path):
                    continue
                speaker = match.group(1)
                clips[rel] = {"path": path, "group": speaker, "speaker": speaker,
                              "round": match.group(2), "keyword": keyword.name}
        noise = audio_files(root / NOISE) if (root / NOISE).is_dir() else []
        if noise:
            report.skipped[f"{NOISE} file(s) (no keyword)"] += len(noise)
        return clips, seen

    def finish(self, rows: Sequence[Mapping[str, Any]], report: ScanReport, progress: bool) \
            -> None:
        """The base summary plus the speakers of each split (disjoint by construction)."""
        super().finish(rows, report, progress=False)
        speakers = {s: len({r["speaker"] for r in rows if r["split"] == s}) for s in SPLITS}
        self.summary += "; speakers " + ", ".join(f"{s} {speakers[s]}" for s in SPLITS)
        if progress:
            print(self.summary, file=sys.stderr)
