"""NSynth recipe: official split folders, examples.json labels, instrument and pitch manifests."""

from __future__ import annotations

import json
import tarfile
from collections import Counter
from pathlib import Path

import pytest

from pocketear.data.corpus import Corpus
from pocketear.data.recipes import RecipeWarning, prepare
from pocketear.data.recipes.base import RecipeError

INSTRUMENTS = {"train": ("bass_synthetic_033", "guitar_acoustic_010", "keyboard_electronic_001"),
               "valid": ("bass_synthetic_068",), "test": ("guitar_electronic_022",)}
SOURCES = {"synthetic": 2, "acoustic": 0, "electronic": 1}
FAMILIES = {"bass": 0, "guitar": 3, "keyboard": 4}


def _split(root: Path, split: str, write_clip) -> Path:
    folder = root / f"nsynth-{split}"
    examples = {}
    for i, instrument in enumerate(INSTRUMENTS[split]):
        family, source, _ = instrument.split("_")
        for pitch in (60, 62):
            note = f"{instrument}-{pitch:03d}-100"
            examples[note] = {
                "note": i * 100 + pitch, "note_str": note, "instrument": i,
                "instrument_str": instrument, "pitch": pitch, "velocity": 100,
                "sample_rate": 16000, "qualities": [0] * 10, "qualities_str": [],
                "instrument_family": FAMILIES[family], "instrument_family_str": family,
                "instrument_source": SOURCES[source], "instrument_source_str": source}
            write_clip(folder / "audio" / f"{note}.wav", sr=16000, seed=pitch)
    (folder / "examples.json").write_text(json.dumps(examples))
    return folder


@pytest.fixture
def archives(tmp_path: Path, write_clip) -> list[Path]:
    paths = []
    for split in ("train", "valid", "test"):
        folder = _split(tmp_path / "src", split, write_clip)
        if split == "train":
            write_clip(folder / "audio" / "stray_note-000-000.wav")  # not in examples.json
            data = json.loads((folder / "examples.json").read_text())
            data["bass_synthetic_033-064-100"] = dict(data["bass_synthetic_033-060-100"])
            (folder / "examples.json").write_text(json.dumps(data))  # listed, no file
        archive = tmp_path / f"nsynth-{split}.jsonwav.tar.gz"
        with tarfile.open(archive, "w:gz") as tar:
            tar.add(folder, arcname=folder.name)
        paths.append(archive)
    return paths


def test_nsynth_three_archives(archives: list[Path], tmp_path: Path) -> None:
    out = tmp_path / "out"
    source = ",".join(str(a) for a in archives)
    recipe_out = prepare("nsynth", source, out, progress=False)
    assert set(recipe_out) == {"default", "instrument", "pitch"}
    instrument = Corpus.open(recipe_out["instrument"])
    assert instrument.columns == ["label", "split", "group", "instrument_family_str",
                                  "instrument_source_str", "pitch", "velocity", "note_str"]
    assert len(instrument) == 10  # the stray file and the missing note are skipped
    assert Counter(instrument.column("split")) == {"train": 6, "valid": 2, "test": 2}
    assert set(instrument.column("label")) == {"bass", "guitar", "keyboard"}
    assert set(instrument.filter(split="test").column("group")) == {"guitar_electronic_022"}
    for item in instrument:
        assert Path(item.path).stem == item.get("note_str")
        assert item.get("group").startswith(item.get("label") + "_")
    pitch = Corpus.open(recipe_out["pitch"])
    assert Counter(pitch.column("label")) == {"60": 5, "62": 5}
    assert recipe_out["default"].read_text() == recipe_out["instrument"].read_text()
    assert prepare("nsynth", source, out, progress=False) == recipe_out  # idempotent


def test_nsynth_partial_folder_warns(tmp_path: Path, write_clip) -> None:
    _split(tmp_path / "nsynth", "valid", write_clip)
    with pytest.warns(RecipeWarning, match="split\\(s\\) test, train not found"):
        manifests = prepare("nsynth", str(tmp_path / "nsynth"), tmp_path / "out",
                            progress=False)
    assert set(Corpus.open(manifests["pitch"]).column("split")) == {"valid"}
    with pytest.raises(RecipeError, match="no nsynth-"):
        prepare("nsynth", str(tmp_path / "out"), tmp_path / "out2", progress=False)
