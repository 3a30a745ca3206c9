"""Free Spoken Digit Dataset (FSDD) recipe: spoken digits 0-9 by several speakers, 8 kHz.

Z. Jackson et al., github.com/Jakobovski/free-spoken-digit-dataset. Licence: CC BY-SA 4.0.

Layout: ``recordings/{digit}_{speaker}_{index}.wav`` (8 kHz), either as a folder or as the
GitHub archive ``free-spoken-digit-dataset-master.zip``. Files whose names do not follow the
pattern are ignored.

Official split (the repository's README): index 0-4 of every speaker/digit is ``test``, the rest
``train``. There is no official validation part and none is carved out, so results stay
comparable with the literature; carve one from ``train`` by ``group`` (speaker) if needed.
Columns: ``label`` (the digit, or the speaker with ``label=speaker``), ``group`` = speaker,
``speaker``, ``digit``, ``index``.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

from pocketear.data.recipes.base import (
    COMMON_OPTIONS,
    Recipe,
    RecipeError,
    ScanReport,
    audio_files,
    write_manifest,
)
from pocketear.registry import register

_NAME = re.compile(r"^(\d)_([A-Za-z]+)_(\d+)\.wav$")


@register("recipe", "fsdd")
class FSDDRecipe(Recipe):
    """Free Spoken Digit Dataset: digit (or speaker) labels, official split index 0-4 = test."""

    name = "fsdd"
    options = {**COMMON_OPTIONS,
               "label": "'digit' (default) or 'speaker': which column becomes the label"}

    def prepare(self, source: str, out: Path, progress: bool = True,
                **options: Any) -> Path:
        """Write ``out/manifest.csv`` for FSDD found in ``source`` (folder, zip or URL)."""
        opts = self.check_options(options)
        label_by = str(opts.get("label", "digit"))
        if label_by not in ("digit", "speaker"):
            raise RecipeError(f"fsdd: label must be 'digit' or 'speaker', got {label_by!r}")
        out = Path(out)
        report = ScanReport()
        rows: list[dict[str, Any]] = []
        seen: set[str] = set()
        for root in self.fetch(source, out, progress, opts):
            for path in audio_files(root):
                match = _NAME.match(path.name)
                if not match or path.name in seen:  # other files; or a second copy
                    continue
                if not report.usable(path):
                    continue
                seen.add(path.name)
                digit, speaker, index = match.group(1), match.group(2), int(match.group(3))
                rows.append({
                    "path": path, "label": digit if label_by == "digit" else speaker,
                    "split": "test" if index <= 4 else "train", "group": speaker,
                    "speaker": speaker, "digit": digit, "index": index,
                })
        manifest = write_manifest(out / "manifest.csv", rows, ("speaker", "digit", "index"))
        self.finish(rows, report, progress)
        return manifest
