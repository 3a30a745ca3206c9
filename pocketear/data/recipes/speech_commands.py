"""Speech Commands v1/v2 recipe: one-second spoken keywords, official splits.

Warden, "Speech Commands: A Dataset for Limited-Vocabulary Speech Recognition", 2018;
download.tensorflow.org/data/speech_commands_v0.0{1,2}.tar.gz. CC BY 4.0.

Layout: ``<word>/<speakerhash>_nohash_<n>.wav`` (1 s, 16 kHz), ``_background_noise_/*.wav``,
``validation_list.txt`` and ``testing_list.txt``. Splits are the official lists; every other
clip is ``train``. If the lists are missing, the dataset's own ``which_set`` rule (sha1 of the
speaker hash, 10 % valid / 10 % test) that generated them is used, with a warning.

Manifests (``prepare`` returns ``{"default", "35" (v1: "30"), "12"}`` -> path):

* ``manifest_35.csv`` (v2) / ``manifest_30.csv`` (v1): label = word, all words.
* ``manifest_12.csv``: yes, no, up, down, left, right, on, off, stop, go, ``_unknown_`` (every
  other word, all of them, not subsampled) and ``_silence_``.
* ``manifest.csv``: the same rows as the all-words manifest (written last).

``_silence_`` clips are 1-s crops of each ``_background_noise_`` file written to
``out/_silence_/`` (16-bit WAV at the file's rate). Each noise file is cut in time into
contiguous regions: the first 80 % -> train, next 10 % -> valid, last 10 % -> test, so no audio
is shared between splits; within a region crops start every ``silence_hop`` seconds (default 1,
non-overlapping) and must fit entirely inside it. With the six v2 noise files (about 400 s)
that is about 400 crops: ~320 train, ~40 valid, ~40 test. ``group`` = speaker hash (the noise
file name for silence). Version: auto-detected (v2 has the words backward, follow, forward,
learn, visual) or option ``version``.

Checksums: Google publishes none. torchaudio pins these sha256 values (third-party), usable as
``checksum``: v0.02 ``af14739ee7dc311471de98f5f9d2c9191b18aedfe957f4a6ff791c709868ff58``,
v0.01 ``743935421bb51cccdb6bdd152e04c5c70274e935c82119ad7faeec31780d811d``.
The separate v0.02 test-set archive (with its own ``_silence_`` folder) is not used.
"""

from __future__ import annotations

import hashlib
import re
import warnings
from pathlib import Path
from typing import Any

import soundfile as sf

from pocketear.audio.io import save_wav
from pocketear.data.recipes.base import (
    COMMON_OPTIONS,
    Recipe,
    RecipeError,
    RecipeWarning,
    ScanReport,
    find_dirs,
    write_manifest,
)
from pocketear.registry import register

COMMANDS = ("yes", "no", "up", "down", "left", "right", "on", "off", "stop", "go")
V2_ONLY = frozenset({"backward", "follow", "forward", "learn", "visual"})
NOISE = "_background_noise_"
_MAX_WAVS = 2**27 - 1  # the constant of the dataset's which_set()
_EXTRA = ("word", "speaker")


def which_set(filename: str, valid_percent: float = 10.0, test_percent: float = 10.0) -> str:
    """The rule that generated the official lists (by speaker, so speakers never straddle)."""
    speaker = re.sub(r"_nohash_.*$", "", Path(filename).name)
    h = int(hashlib.sha1(speaker.encode()).hexdigest(), 16)
    percent = (h % (_MAX_WAVS + 1)) * (100.0 / _MAX_WAVS)
    if percent < valid_percent:
        return "valid"
    return "test" if percent < valid_percent + test_percent else "train"


def _read_list(path: Path) -> set[str]:
    return {line.strip() for line in path.read_text().splitlines() if line.strip()}


@register("recipe", "speech_commands")
class SpeechCommandsRecipe(Recipe):
    """Speech Commands v1/v2: all words (30/35) and 12-class manifests, official lists."""

    name = "speech_commands"
    options = {**COMMON_OPTIONS,
               "version": "1, 2 or auto (default: auto-detect from the words present)",
               "silence_hop": "seconds between _silence_ crop starts (default 1.0)"}

    def prepare(self, source: str, out: Path, progress: bool = True,
                **options: Any) -> dict[str, Path]:
        """Write the all-words, 12-class and default manifests; return variant -> path."""
        opts = self.check_options(options)
        out = Path(out)
        hop = float(opts.get("silence_hop", 1.0))
        if not hop > 0:
            raise RecipeError(f"speech_commands: silence_hop must be > 0, got {hop}")
        roots = self.fetch(source, out, progress, opts)
        found = find_dirs(roots, lambda d: (d / "testing_list.txt").is_file()
                          or (d / NOISE).is_dir())
        if not found:
            raise RecipeError(f"speech_commands: no folder with testing_list.txt or {NOISE}/ "
                              f"in {source}; pass the extracted archive or the .tar.gz")
        root = found[0]
        words = sorted(d.name for d in root.iterdir() if d.is_dir()
                       and not d.name.startswith(("_", ".")))
        version = self._version(str(opts.get("version", "auto")), words)
        n_all = "35" if version == 2 else "30"

        lists = {s: root / f"{n}_list.txt" for s, n in (("valid", "validation"),
                                                        ("test", "testing"))}
        official = {s: _read_list(p) for s, p in lists.items() if p.is_file()}
        if len(official) < 2:
            warnings.warn(f"{root}: validation_list.txt/testing_list.txt missing; using the "
                          "dataset's which_set() hash rule instead", RecipeWarning, stacklevel=2)

        report = ScanReport()
        rows: list[dict[str, Any]] = []
        for word in words:
            for path in sorted((root / word).glob("*.wav")):
                if not report.usable(path):
                    continue
                rel = f"{word}/{path.name}"
                if len(official) == 2:
                    split = "valid" if rel in official["valid"] else \
                        "test" if rel in official["test"] else "train"
                else:
                    split = which_set(path.name)
                speaker = path.name.split("_nohash_")[0]
                rows.append({"path": path, "label": word, "split": split, "group": speaker,
                             "word": word, "speaker": speaker})
        silence = self._silence(root / NOISE, out / "_silence_", hop, report)
        twelve = [{**r, "label": r["word"] if r["word"] in COMMANDS else "_unknown_"}
                  for r in rows] + silence
        manifests = {
            n_all: write_manifest(out / f"manifest_{n_all}.csv", rows, _EXTRA),
            "12": write_manifest(out / "manifest_12.csv", twelve, _EXTRA),
        }
        manifests["default"] = write_manifest(out / "manifest.csv", rows, _EXTRA)
        self.finish(rows, report, progress)
        return manifests

    @staticmethod
    def _version(option: str, words: list[str]) -> int:
        detected = 2 if V2_ONLY & set(words) else 1
        option = option.lower().lstrip("v").replace("0.0", "")
        if option == "auto":
            return detected
        if option not in ("1", "2"):
            raise RecipeError(f"speech_commands: version must be 1, 2 or auto, got {option!r}")
        if int(option) != detected:
            warnings.warn(f"speech_commands: version {option} given but the words look like "
                          f"v{detected}", RecipeWarning, stacklevel=3)
        return int(option)

    @staticmethod
    def _silence(noise_dir: Path, dest: Path, hop: float, report: ScanReport) \
            -> list[dict[str, Any]]:
        """1-s crops of each noise file, contiguous 80/10/10 time regions -> splits."""
        rows: list[dict[str, Any]] = []
        if not noise_dir.is_dir():
            return rows
        for noise in sorted(noise_dir.glob("*.wav")):
            if not report.usable(noise):
                continue
            info = sf.info(str(noise))
            rate, total = int(info.samplerate), info.frames / info.samplerate
            audio = None
            regions = (("train", 0.0, 0.8), ("valid", 0.8, 0.9), ("test", 0.9, 1.0))
            for split, lo, hi in regions:
                start, end = lo * total, hi * total
                while start + 1.0 <= end + 1e-9:
                    first = min(int(start * rate + 1e-6), info.frames - rate)
                    path = dest / noise.stem / f"{noise.stem}_{int(round(start * 1000)):07d}.wav"
                    if not path.is_file():  # idempotent: crops already written are kept
                        if audio is None:
                            audio, _ = sf.read(str(noise), dtype="float32")
                        save_wav(path, audio[first:first + rate], rate)
                    rows.append({"path": path, "label": "_silence_", "split": split,
                                 "group": noise.stem, "word": "", "speaker": ""})
                    start += hop
        return rows
