"""NSynth recipe: musical notes labelled by instrument family or pitch, official splits.

Engel et al., "Neural Audio Synthesis of Musical Notes with WaveNet Autoencoders", ICML 2017;
magenta.tensorflow.org/datasets/nsynth. Licence: CC BY 4.0.

Layout: ``nsynth-{train,valid,test}/audio/<note_str>.wav`` (4 s, 16 kHz) and
``nsynth-{train,valid,test}/examples.json`` mapping ``note_str`` to its attributes
(``instrument_family_str``, ``instrument_str``, ``pitch``, ``velocity``, ...). The three
``*.jsonwav.tar.gz`` archives can be passed comma-separated, or their extracted parent folder.
Splits are the official folders (instruments of train never occur in valid/test).

Manifests (``prepare`` returns ``{"default", "instrument", "pitch"}`` -> path):
``manifest_instrument.csv`` (label = ``instrument_family_str``, 11 families),
``manifest_pitch.csv`` (label = MIDI ``pitch``), and ``manifest.csv`` = the instrument one.
``group`` = ``instrument_str``. Notes listed in a JSON without a file (or the reverse) are
skipped and counted. No checksums are published for the archives.
"""

from __future__ import annotations

import json
import warnings
from pathlib import Path
from typing import Any

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

_FOLDERS = {"nsynth-train": "train", "nsynth-valid": "valid", "nsynth-test": "test"}
_EXTRA = ("instrument_family_str", "instrument_source_str", "pitch", "velocity", "note_str")


@register("recipe", "nsynth")
class NSynthRecipe(Recipe):
    """NSynth notes: instrument family (11) and pitch manifests, official splits."""

    name = "nsynth"
    options = dict(COMMON_OPTIONS)

    def prepare(self, source: str, out: Path, progress: bool = True,
                **options: Any) -> dict[str, Path]:
        """Write instrument, pitch and default manifests; return variant -> path."""
        opts = self.check_options(options)
        out = Path(out)
        roots = self.fetch(source, out, progress, opts)
        found = find_dirs(roots, lambda d: d.name in _FOLDERS
                          and (d / "examples.json").is_file())
        if not found:
            raise RecipeError(f"nsynth: no nsynth-{{train,valid,test}}/examples.json under "
                              f"{source}; pass the folder or the .jsonwav.tar.gz archives "
                              "(comma-separated)")
        splits = {_FOLDERS[d.name] for d in found}
        if splits != set(_FOLDERS.values()):
            absent = sorted(set(_FOLDERS.values()) - splits)
            warnings.warn(f"nsynth: split(s) {', '.join(absent)} not found in {source}",
                          RecipeWarning, stacklevel=2)
        report = ScanReport()
        rows: list[dict[str, Any]] = []
        for folder in found:
            with open(folder / "examples.json", encoding="utf-8") as f:
                examples: dict[str, dict[str, Any]] = json.load(f)
            on_disk = {p.stem: p for p in (folder / "audio").glob("*.wav")}
            for note, meta in sorted(examples.items()):
                path = on_disk.pop(note, None)
                if path is None:
                    report.skip(folder / "audio" / f"{note}.wav",
                                "listed in examples.json but missing", warn=False)
                    continue
                if not report.usable(path):
                    continue
                rows.append({
                    "path": path, "split": _FOLDERS[folder.name],
                    "group": meta.get("instrument_str", ""), "note_str": note,
                    **{c: meta.get(c, "") for c in _EXTRA if c != "note_str"}})
            for path in on_disk.values():
                report.skip(path, "not in examples.json", warn=False)
        instrument = [{**r, "label": r["instrument_family_str"]} for r in rows]
        pitch = [{**r, "label": r["pitch"]} for r in rows]
        manifests = {
            "instrument": write_manifest(out / "manifest_instrument.csv", instrument, _EXTRA),
            "pitch": write_manifest(out / "manifest_pitch.csv", pitch, _EXTRA),
        }
        manifests["default"] = write_manifest(out / "manifest.csv", instrument, _EXTRA)
        self.finish(instrument, report, progress)
        return manifests
