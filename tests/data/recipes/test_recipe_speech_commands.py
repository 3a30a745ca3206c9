"""Speech Commands recipe: official lists, 35/12-class manifests, deterministic _silence_."""

from __future__ import annotations

import os
import tarfile
from collections import Counter
from pathlib import Path

import pytest
import soundfile as sf

from pocketear.data.corpus import Corpus
from pocketear.data.recipes import RecipeWarning, prepare
from pocketear.data.recipes.speech_commands import which_set

SPEAKERS = ("aaaa1111", "bbbb2222", "cccc3333")  # train, validation list, testing list


def _dataset(root: Path, write_clip, words: tuple[str, ...]) -> Path:
    valid, test = [], []
    for word in words:
        for speaker in SPEAKERS:
            for n in range(2):
                name = f"{word}/{speaker}_nohash_{n}.wav"
                write_clip(root / name, sr=16000, seed=n)
                (valid if speaker == SPEAKERS[1] else test if speaker == SPEAKERS[2]
                 else []).append(name)
    (root / "validation_list.txt").write_text("\n".join(valid) + "\n")
    (root / "testing_list.txt").write_text("\n".join(test) + "\n")
    write_clip(root / "_background_noise_" / "white_noise.wav", seconds=10.0, sr=8000)
    write_clip(root / "_background_noise_" / "running_tap.wav", seconds=20.0, sr=8000)
    (root / "_background_noise_" / "README.md").write_text("noise")
    (root / "README.md").write_text("Speech Commands")
    return root


@pytest.fixture
def v2_archive(tmp_path: Path, write_clip) -> Path:
    root = _dataset(tmp_path / "sc", write_clip, ("yes", "no", "bed", "backward"))
    archive = tmp_path / "speech_commands_v0.02.tar.gz"
    with tarfile.open(archive, "w:gz") as tar:  # the real archive has no top-level folder
        tar.add(root, arcname=".")
    return archive


def test_speech_commands_v2_archive(v2_archive: Path, tmp_path: Path) -> None:
    out = tmp_path / "out"
    manifests = prepare("speech_commands", str(v2_archive), out, progress=False)
    assert set(manifests) == {"default", "35", "12"}
    assert manifests["35"] == out / "manifest_35.csv" and manifests["12"].name == "manifest_12.csv"
    assert manifests["default"].read_text() == manifests["35"].read_text()

    full = Corpus.open(manifests["35"])
    assert full.columns == ["label", "split", "group", "word", "speaker"]
    assert len(full) == 4 * 3 * 2
    assert set(full.column("label")) == {"yes", "no", "bed", "backward"}
    assert Counter(full.column("split")) == {"train": 8, "valid": 8, "test": 8}
    for item in full:
        expected = {"aaaa1111": "train", "bbbb2222": "valid", "cccc3333": "test"}
        assert item.get("split") == expected[item.get("group")]

    twelve = Corpus.open(manifests["12"])
    labels = Counter(twelve.column("label"))
    assert labels == {"yes": 6, "no": 6, "_unknown_": 12, "_silence_": 30}
    silence = twelve.filter(label="_silence_")
    # 10 s file: 8/1/1 one-second crops; 20 s file: 16/2/2 (contiguous 80/10/10 time regions)
    assert Counter(silence.column("split")) == {"train": 24, "valid": 3, "test": 3}
    assert set(silence.column("group")) == {"white_noise", "running_tap"}
    for item in silence:
        assert Path(item.path).is_relative_to(out / "_silence_")
    crop = Path(silence[0].path)
    assert sf.info(str(crop)).frames == 8000  # 1 s at the noise file's rate

    stamp = os.stat(crop).st_mtime_ns  # re-run: nothing re-extracted or re-written
    again = prepare("speech_commands", str(v2_archive), out, progress=False)
    assert again["12"].read_text() == manifests["12"].read_text()
    assert os.stat(crop).st_mtime_ns == stamp


def test_v1_folder_missing_lists_and_options(tmp_path: Path, write_clip) -> None:
    root = _dataset(tmp_path / "speech_commands_v0.01", write_clip, ("yes", "cat"))
    (root / "validation_list.txt").unlink()
    (root / "yes" / "dddd4444_nohash_0.wav").write_bytes(b"")
    with pytest.warns(RecipeWarning) as record:
        manifests = prepare("speech_commands", str(root), tmp_path / "out", progress=False,
                            silence_hop="0.5")
    messages = " ".join(str(w.message) for w in record)
    assert "which_set() hash rule" in messages and "empty file" in messages
    assert set(manifests) == {"default", "30", "12"}
    full = Corpus.open(manifests["30"])
    assert len(full) == 12
    for item in full:  # the fallback rule keeps each speaker in one split
        assert item.get("split") == which_set(Path(item.path).name)
    silence = Corpus.open(manifests["12"]).filter(label="_silence_")
    # hop 0.5 s: 10 s file -> train [0, 8): 15 crops, valid [8, 9): 1, test [9, 10): 1
    assert len(silence.filter(group="white_noise")) == 17


def test_which_set_is_per_speaker() -> None:
    splits = {which_set(f"{spk:08x}_nohash_{n}.wav") for spk in range(3) for n in range(3)}
    assert splits <= {"train", "valid", "test"}
    for spk in ("0a1b2c3d", "ffffffff"):
        assert len({which_set(f"{spk}_nohash_{n}.wav") for n in range(5)}) == 1
    counts = Counter(which_set(f"{i:08x}_nohash_0.wav") for i in range(3000))
    assert 200 < counts["valid"] < 400 and 200 < counts["test"] < 400
