"""Generic ``class_name/file.wav`` folder (any extension in ``AUDIO_EXTENSIONS``): your own data.

label = the first folder below the root (files deeper inside count for that class; files
directly in the root have no class and are skipped). Split, option ``split``:

* ``auto`` (default): ``folders`` when the root holds ``train/`` and ``test/`` (and optionally
  ``valid/``, ``val/``, ``validation/`` or ``dev/``), otherwise ``random``;
* ``folders``: the split is the top-level folder: ``<split>/<class>/file.wav``;
* ``random``: per class, files ordered by a seeded hash of their relative path, the last 20 %
  -> test, the 20 % before -> valid (``fractions``, default 60/20/20; ``seed``, default 0):
  stratified, exact proportions, same on every machine.

A root that only wraps one folder (e.g. a zip of ``mydata/``) is descended into. No group.
"""

from __future__ import annotations

from collections import defaultdict
from pathlib import Path
from typing import Any

from pocketear.data.recipes.base import (
    COMMON_OPTIONS,
    Recipe,
    RecipeError,
    ScanReport,
    audio_files,
    ordered_split,
    parse_fractions,
    write_manifest,
)
from pocketear.registry import register

SPLIT_FOLDERS = {"train": "train", "valid": "valid", "val": "valid", "validation": "valid",
                 "dev": "valid", "test": "test"}


def _unwrap(root: Path) -> Path:
    """Descend while the folder holds exactly one sub-folder and no files."""
    while True:
        entries = [p for p in root.iterdir() if not p.name.startswith(".")]
        if len(entries) != 1 or not entries[0].is_dir():
            return root
        root = entries[0]


def _split_folders(root: Path) -> dict[str, Path]:
    found = {p.name.lower(): p for p in root.iterdir() if p.is_dir()}
    return {SPLIT_FOLDERS[n]: p for n, p in found.items() if n in SPLIT_FOLDERS}


@register("recipe", "folder")
class FolderRecipe(Recipe):
    """Any class_name/file folder: label = class folder, seeded stratified 60/20/20 split."""

    name = "folder"
    options = {**COMMON_OPTIONS,
               "split": "auto (default), folders (train/ valid/ test/ at the top) or random",
               "fractions": "train/valid/test fractions per class for random (default 60/20/20)",
               "seed": "seed of the random split (default 0)"}

    def prepare(self, source: str, out: Path, progress: bool = True,
                **options: Any) -> Path:
        """Write ``out/manifest.csv`` for a folder (or archive) of class folders."""
        opts = self.check_options(options)
        out = Path(out)
        mode = str(opts.get("split", "auto")).lower()
        if mode not in ("auto", "folders", "random"):
            raise RecipeError(f"folder: split must be auto, folders or random, got {mode!r}")
        fractions = parse_fractions(opts.get("fractions", "60/20/20"))
        seed = int(opts.get("seed", 0))
        report = ScanReport()
        rows: list[dict[str, Any]] = []
        for root in self.fetch(source, out, progress, opts):
            root = _unwrap(root)
            folders = _split_folders(root)
            use_folders = mode == "folders" or (
                mode == "auto" and "train" in folders and "test" in folders)
            if use_folders:
                if "train" not in folders:
                    raise RecipeError(f"folder: split=folders but {root} has no train/ folder")
                for split, folder in sorted(folders.items()):
                    rows += self._scan(folder, report, split)
            else:
                by_class: dict[str, list[dict[str, Any]]] = defaultdict(list)
                for row in self._scan(root, report, ""):
                    by_class[row["label"]].append(row)
                for items in by_class.values():
                    keys = {manifest_key(r["path"], root): r for r in items}
                    split = ordered_split(keys, fractions, salt=f"seed{seed}")
                    rows += [{**r, "split": split[k]} for k, r in keys.items()]
        manifest = write_manifest(out / "manifest.csv", rows)
        self.finish(rows, report, progress)
        return manifest

    @staticmethod
    def _scan(folder: Path, report: ScanReport, split: str) -> list[dict[str, Any]]:
        rows = []
        for path in audio_files(folder):
            rel = path.relative_to(folder)
            if len(rel.parts) < 2:
                report.skip(path, "not inside a class folder")
                continue
            if report.usable(path):
                rows.append({"path": path, "label": rel.parts[0], "split": split})
        return rows


def manifest_key(path: Path, root: Path) -> str:
    """Relative POSIX path: the split is the same wherever the folder lives."""
    return path.relative_to(root).as_posix()
