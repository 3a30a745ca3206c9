"""ESC-50 recipe: environmental sound classification, 50 classes (or ESC-10), official folds.

Piczak, "ESC: Dataset for Environmental Sound Classification", ACM MM 2015;
github.com/karolpiczak/ESC-50. Licence: CC BY-NC 3.0 (clips from freesound.org).

Layout: ``ESC-50-master/audio/*.wav`` (5 s, 44.1 kHz) and ``meta/esc50.csv`` with columns
``filename,fold,target,category,esc10,src_file,take``. label = ``category`` (50 classes, or the
10 of ESC-10 with ``subset=esc10``); ``fold`` and ``group`` = the official fold (1-5; clips cut
from one source recording share a fold). Split: fold 5 -> test, fold 4 -> valid, folds 1-3 ->
train by default (``test_fold`` / ``valid_fold`` change it; ``valid_fold=none`` puts it in
train). The literature reports 5-fold cross-validation: use the ``fold`` column for that.
No checksum is published (the GitHub archive changes with every commit).
"""

from __future__ import annotations

import csv
from pathlib import Path
from typing import Any

from pocketear.data.recipes.base import (
    COMMON_OPTIONS,
    Recipe,
    RecipeError,
    ScanReport,
    find_dirs,
    write_manifest,
)
from pocketear.registry import register

_EXTRA = ("fold", "target", "esc10", "src_file", "take")


@register("recipe", "esc50")
class ESC50Recipe(Recipe):
    """ESC-50 environmental sounds: 50 categories, official folds (5 test, 4 valid)."""

    name = "esc50"
    options = {**COMMON_OPTIONS,
               "test_fold": "fold used as test (default 5)",
               "valid_fold": "fold used as valid (default 4; 'none': no valid split)",
               "subset": "'esc50' (default) or 'esc10' (the 10-class ESC-10 subset)"}

    def prepare(self, source: str, out: Path, progress: bool = True,
                **options: Any) -> Path:
        """Write ``out/manifest.csv`` from ``meta/esc50.csv`` and ``audio/``."""
        opts = self.check_options(options)
        out = Path(out)
        test_fold = int(opts.get("test_fold", 5))
        valid = str(opts.get("valid_fold", 4)).lower()
        valid_fold = None if valid in ("none", "", "0") else int(valid)
        subset = str(opts.get("subset", "esc50")).lower().replace("-", "")
        if subset not in ("esc50", "esc10"):
            raise RecipeError(f"esc50: subset must be 'esc50' or 'esc10', got {subset!r}")
        if test_fold == valid_fold:
            raise RecipeError("esc50: test_fold and valid_fold must differ")
        roots = self.fetch(source, out, progress, opts)
        found = find_dirs(roots, lambda d: (d / "meta" / "esc50.csv").is_file())
        if not found:
            raise RecipeError(f"esc50: no meta/esc50.csv under {source}; pass ESC-50-master "
                              "(folder or zip)")
        root = found[0]
        report = ScanReport()
        rows: list[dict[str, Any]] = []
        with open(root / "meta" / "esc50.csv", newline="", encoding="utf-8") as f:
            reader = csv.DictReader(f)
            missing = {"filename", "fold", "category"} - set(reader.fieldnames or ())
            if missing:
                raise RecipeError(f"{root / 'meta' / 'esc50.csv'}: missing column(s) "
                                  f"{', '.join(sorted(missing))}")
            for meta in reader:
                if subset == "esc10" and meta.get("esc10", "").lower() != "true":
                    continue
                path = root / "audio" / meta["filename"]
                if not path.is_file():
                    report.skip(path, "listed in esc50.csv but missing")
                    continue
                if not report.usable(path):
                    continue
                fold = int(meta["fold"])
                split = "test" if fold == test_fold else "valid" if fold == valid_fold \
                    else "train"
                rows.append({"path": path, "label": meta["category"], "split": split,
                             "group": fold, **{c: meta.get(c, "") for c in _EXTRA}})
        manifest = write_manifest(out / "manifest.csv", rows, _EXTRA)
        self.finish(rows, report, progress)
        return manifest
