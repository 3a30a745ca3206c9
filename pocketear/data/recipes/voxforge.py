"""VoxForge language identification recipe, with speaker-disjoint splits.

voxforge.org, the free GPL speech corpus; BYOL-A and the seed paper use 6 languages: de, en, es,
fr, it, ru. Licence: GPL (v3 or later).

Layout: ``<lang>/<session>/wav/*.wav`` (``flac/`` or files directly in the session folder are
accepted too), e.g. ``en/anonymous-20080101-abc/wav/a0001.wav``. Session folders are named
``<user>-<YYYYMMDD>-<code>``; the speaker is ``<user>`` (lower-cased): the session name up to
the date part. Sessions by ``anonymous`` cannot be linked to a person, so each anonymous
session counts as its own speaker (its full session name). A folder without a date part is its
own speaker. Per-session archives as distributed (``<lang>/<session>.tgz``) are extracted
safely into ``out/sessions/<lang>/`` first.

label = language folder name; ``group`` = speaker. Split: speaker-disjoint, by thresholding the
sha1 of the speaker name (``fractions``, default 80/10/10): stable when the corpus grows, and
a speaker recording in several languages lands in one split. No checksums are published.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

from tqdm import tqdm

from pocketear.data.recipes.base import (
    COMMON_OPTIONS,
    Recipe,
    RecipeError,
    ScanReport,
    archive_stem,
    audio_files,
    hash_split,
    parse_fractions,
    safe_extract,
    write_manifest,
)
from pocketear.registry import register

_SESSION = re.compile(r"^(?P<user>.+?)-(?P<date>\d{8})(?:-.*)?$")
_ARCHIVES = (".tgz", ".tar.gz", ".zip", ".tar", ".tar.bz2")


def speaker_of(session: str) -> str:
    """Speaker of a session folder: the part before ``-YYYYMMDD`` (anonymous: the session)."""
    match = _SESSION.match(session)
    if not match or match.group("user").lower() == "anonymous":
        return session.lower()
    return match.group("user").lower()


def _session_dir(path: Path) -> Path | None:
    """``<session>`` of ``<session>/wav/x.wav`` or of a dated ``<session>/x.wav``, else None."""
    if path.parent.name.lower() in ("wav", "flac"):
        return path.parent.parent
    return path.parent if _SESSION.match(path.parent.name) else None


@register("recipe", "voxforge")
class VoxForgeRecipe(Recipe):
    """VoxForge language id: label = language folder, speaker-disjoint 80/10/10 split."""

    name = "voxforge"
    options = {**COMMON_OPTIONS,
               "languages": "comma-separated language folders to keep (default: all)",
               "fractions": "train/valid/test speaker fractions (default 80/10/10)"}

    def prepare(self, source: str, out: Path, progress: bool = True,
                **options: Any) -> Path:
        """Write ``out/manifest.csv`` for the language folders found in ``source``."""
        opts = self.check_options(options)
        out = Path(out)
        fractions = parse_fractions(opts.get("fractions", "80/10/10"))
        keep = {s.strip() for s in str(opts.get("languages", "")).split(",") if s.strip()}
        report = ScanReport()
        files: list[tuple[Path, str, Path | None]] = []  # (file, language, session folder)
        for root in self.fetch(source, out, progress, opts):
            for path in audio_files(root):
                session = _session_dir(path)
                files.append((path, session.parent.name if session else "", session))
            archives = sorted(p for p in root.rglob("*") if p.name.lower().endswith(_ARCHIVES)
                              and p.is_file())
            for archive in tqdm(archives, desc="extracting sessions", unit="archive",
                                disable=not progress or not archives):
                lang = archive.parent.name
                dest = out / "sessions" / lang / archive_stem(archive)
                for path in audio_files(safe_extract(archive, dest, progress=False)):
                    files.append((path, lang, _session_dir(path)))
        rows: list[dict[str, Any]] = []
        for path, lang, session in files:
            if keep and lang not in keep:
                continue
            if session is None or not lang:
                report.skip(path, "not inside <lang>/<session>/")
                continue
            if not report.usable(path):
                continue
            speaker = speaker_of(session.name)
            rows.append({"path": path, "label": lang, "group": speaker, "speaker": speaker,
                         "session": session.name,
                         "split": hash_split(speaker, fractions, salt="voxforge")})
        if not rows and keep:
            raise RecipeError(f"voxforge: none of the languages {sorted(keep)} found in "
                              f"{source}")
        manifest = write_manifest(out / "manifest.csv", rows, ("speaker", "session"))
        self.finish(rows, report, progress)
        return manifest
