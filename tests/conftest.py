"""Shared fixtures: small audio folders made in the test, never ../shared."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import soundfile as sf


def write_tone(path: Path, freq: float, seconds: float = 1.0, sr: int = 16000,
               noise: float = 0.05, seed: int = 0) -> Path:
    rng = np.random.default_rng(seed)
    t = np.arange(int(seconds * sr)) / sr
    wave = 0.4 * np.sin(2 * np.pi * freq * t) * (0.5 + 0.5 * np.sin(2 * np.pi * 1.5 * t))
    wave = wave + noise * rng.standard_normal(len(t))
    path.parent.mkdir(parents=True, exist_ok=True)
    sf.write(path, wave.astype(np.float32), sr, subtype="PCM_16")
    return path


def write_tone_manifest(root: Path, n: int, seconds: float) -> Path:
    """``n`` low/high tone clips under ``root/audio`` and ``root/labels.csv`` listing them.

    The CSV is ``path,label,split``: pairs of clips cycle through train, train, valid, test.
    """
    lines = ["path,label,split"]
    for i in range(n):
        label = "low" if i % 2 else "high"
        freq = (200 + 15 * i) if label == "low" else (2500 + 60 * i)
        path = write_tone(root / "audio" / f"{label}{i}.wav", freq, seconds=seconds, seed=i)
        split = ["train", "train", "valid", "test"][(i // 2) % 4]
        lines.append(f"{path.relative_to(root).as_posix()},{label},{split}")
    (root / "labels.csv").write_text("\n".join(lines) + "\n")
    return root / "labels.csv"


@pytest.fixture
def tone_folder(tmp_path: Path) -> Path:
    """Twelve 3-second clips in two class folders (low/high tones)."""
    root = tmp_path / "audio"
    for i in range(6):
        write_tone(root / "low" / f"l{i}.wav", 200 + 20 * i, seconds=3.0, seed=i)
        write_tone(root / "high" / f"h{i}.wav", 2000 + 100 * i, seconds=3.0, seed=10 + i)
    return root
