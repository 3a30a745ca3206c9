"""One ``Corpus`` interface over a folder of audio or a CSV/TSV manifest (README, "Data")."""

from __future__ import annotations

import csv
import hashlib
import os
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from pocketear.audio.io import AUDIO_EXTENSIONS
from pocketear.errors import InvalidValue, MissingPath


class ManifestError(InvalidValue):
    """A manifest that cannot be used; the message names the file and the fix."""


@dataclass(frozen=True)
class Item:
    """One audio file of a corpus: absolute path plus every other manifest column."""

    path: str
    meta: dict[str, str] = field(default_factory=dict, hash=False, compare=False)

    def get(self, column: str, default: str = "") -> str:
        """The value of ``column`` for this file, or ``default`` when the row has none."""
        return self.meta.get(column, default)


class Corpus(Sequence[Item]):
    """An ordered list of audio files with optional columns (label, split, group, ...)."""

    def __init__(self, items: Sequence[Item], source: str, columns: Sequence[str] = ()) -> None:
        self.items = list(items)
        self.source = source
        self.columns = list(columns)

    # --- construction --------------------------------------------------------------------
    @classmethod
    def open(cls, source: str | os.PathLike[str]) -> Corpus:
        """A folder (recursive, by extension) or a ``.csv``/``.tsv`` manifest.

        Raises:
            MissingPath: ``source`` does not exist.
            ManifestError: It is neither a folder nor a manifest, or the manifest is unusable.
        """
        path = Path(source)
        if path.is_dir():
            return cls.from_folder(path)
        if path.suffix.lower() in (".csv", ".tsv", ".txt") and path.is_file():
            return cls.from_manifest(path)
        if not path.exists():
            raise MissingPath(
                f"{path}: no such folder or manifest; pass a folder of audio files or a CSV/TSV "
                "manifest with a 'path' column"
            )
        raise ManifestError(
            f"{path}: not a folder or a .csv/.tsv manifest; pass a folder of audio or a manifest"
        )

    @classmethod
    def from_folder(cls, folder: str | os.PathLike[str]) -> Corpus:
        """Every audio file under ``folder`` (by extension), sorted.

        Column ``folder`` holds the parent folder relative to the root (the class name in
        ``class_name/file.wav`` layouts).
        """
        root = Path(folder).resolve()
        files = sorted(
            p for p in root.rglob("*") if p.suffix.lower().lstrip(".") in AUDIO_EXTENSIONS
            and p.is_file()
        )
        if not files:
            exts = ", ".join(sorted(AUDIO_EXTENSIONS))
            raise ManifestError(f"{root}: no audio files found (looked for: {exts})")
        items = [Item(str(p), {"folder": str(p.parent.relative_to(root))}) for p in files]
        return cls(items, str(root), ["folder"])

    @classmethod
    def from_manifest(cls, manifest: str | os.PathLike[str], check_files: bool = True) -> Corpus:
        """A CSV/TSV manifest with a header; every column other than ``path`` is kept as metadata.

        ``path`` is required; relative paths are resolved against the manifest's folder.

        Raises:
            MissingPath: The manifest does not exist.
            ManifestError: Empty, no ``path`` column, an empty path, listed files missing (when
                ``check_files``) or no rows.
        """
        manifest = Path(manifest).resolve()
        try:
            with open(manifest, newline="", encoding="utf-8") as f:
                text = f.read()
        except FileNotFoundError:
            raise MissingPath(f"{manifest}: no such manifest; pass a CSV/TSV manifest with a "
                              "'path' column") from None
        if not text.strip():
            raise ManifestError(f"{manifest}: empty manifest; the first line must be a header "
                                "such as 'path,label,split'")
        delimiter = "\t" if manifest.suffix.lower() == ".tsv" or "\t" in text.splitlines()[0] \
            else ","
        reader = csv.DictReader(text.splitlines(), delimiter=delimiter)
        columns = [c.strip() for c in reader.fieldnames or []]
        if "path" not in columns:
            raise ManifestError(
                f"{manifest}: no 'path' column (columns: {', '.join(columns) or 'none'}); the "
                "first line must be a header such as 'path,label,split'"
            )
        base = manifest.parent
        items: list[Item] = []
        missing: list[str] = []
        for line, row in enumerate(reader, start=2):
            row = {(k or "").strip(): (v or "").strip() for k, v in row.items()}
            if not row.get("path"):
                raise ManifestError(f"{manifest}, line {line}: empty 'path'; fill it or delete "
                                    "the row")
            path = Path(row.pop("path"))
            path = path if path.is_absolute() else base / path
            if check_files and not path.is_file():
                missing.append(str(path))
            items.append(Item(str(path), row))
        if missing:
            shown = "\n  ".join(missing[:5])
            raise ManifestError(
                f"{manifest}: {len(missing)} listed file(s) do not exist, e.g.\n  {shown}\n"
                "fix the paths (relative paths are resolved against the manifest's folder) or "
                "remove those rows"
            )
        if not items:
            raise ManifestError(f"{manifest}: the manifest lists no files")
        return cls(items, str(manifest), [c for c in columns if c != "path"])

    # --- access ---------------------------------------------------------------------------
    def __len__(self) -> int:
        return len(self.items)

    def __getitem__(self, i):  # type: ignore[override]
        if isinstance(i, slice):
            return Corpus(self.items[i], self.source, self.columns)
        return self.items[i]

    def __iter__(self) -> Iterator[Item]:
        return iter(self.items)

    @property
    def paths(self) -> list[str]:
        """Absolute paths of the files, in corpus order."""
        return [it.path for it in self.items]

    def column(self, name: str) -> list[str]:
        """Values of one column, with a clear error when the column does not exist."""
        if name not in self.columns:
            raise ManifestError(
                f"{self.source}: unknown column {name!r}; columns are: "
                f"{', '.join(self.columns) or 'none'}"
            )
        return [it.get(name) for it in self.items]

    def filter(self, **where: str | Sequence[str]) -> Corpus:
        """Rows whose columns equal the given value (or are in the given list)."""
        for name in where:
            self.column(name)  # validates the column name
        def keep(it: Item) -> bool:
            for k, v in where.items():
                allowed = [v] if isinstance(v, str) else list(v)
                if it.get(k) not in allowed:
                    return False
            return True
        return Corpus([it for it in self.items if keep(it)], self.source, self.columns)

    def fingerprint(self) -> str:
        """Hash of paths, sizes and modification times: changes when the audio changes."""
        h = hashlib.sha1()
        for it in self.items:
            try:
                st = os.stat(it.path)
                h.update(f"{it.path}\0{st.st_size}\0{st.st_mtime_ns}\n".encode())
            except OSError:
                h.update(f"{it.path}\0missing\n".encode())
        return h.hexdigest()[:16]
