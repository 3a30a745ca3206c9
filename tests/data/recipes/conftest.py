"""Fixtures for the recipe tests: tiny audio files and archives with real dataset layouts."""

from __future__ import annotations

import tarfile
import zipfile
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf


def _write_clip(path: Path, seconds: float = 0.1, sr: int = 8000, seed: int = 0) -> Path:
    """A short noise clip; the format follows the extension (``.wav`` or ``.flac``)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    audio = 0.1 * np.random.default_rng(seed).standard_normal(int(seconds * sr))
    sf.write(path, audio.astype(np.float32), sr, subtype="PCM_16")
    return path


@pytest.fixture
def write_clip() -> Callable[..., Path]:
    return _write_clip


def _pack(folder: Path, archive: Path) -> Path:
    """Pack ``folder`` (as its top-level directory) into a .zip or .tar[.gz|.bz2|.xz]."""
    if archive.suffix == ".zip":
        with zipfile.ZipFile(archive, "w") as zf:
            for p in sorted(folder.rglob("*")):
                zf.write(p, p.relative_to(folder.parent).as_posix())
    else:
        mode = {".gz": "w:gz", ".tgz": "w:gz", ".bz2": "w:bz2", ".xz": "w:xz"}.get(
            archive.suffix, "w")
        with tarfile.open(archive, mode) as tar:
            tar.add(folder, arcname=folder.name)
    return archive


@pytest.fixture
def pack() -> Callable[[Path, Path], Path]:
    return _pack
