"""Arabic Speech Commands recipe: the official CSV split, its checks, the GitHub archive."""

from __future__ import annotations

import csv
from collections import Counter
from collections.abc import Mapping, Sequence
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from pocketear.data.corpus import Corpus
from pocketear.data.recipes import RecipeWarning, prepare
from pocketear.data.recipes.base import MARKER, RecipeError

KEYWORDS = ("backward", "yes", "zoom in")
SPLIT = {"00000001": "train", "00000002": "train", "00000003": "train", "00000004": "train",
         "00000005": "valid", "00000006": "test"}
CSV_NAMES = {"train": "train.csv", "valid": "val.csv", "test": "test.csv"}


def make_dataset(root: Path, split: Mapping[str, str] = SPLIT,
                 keywords: Sequence[str] = KEYWORDS, rounds: int = 2,
                 lists: bool = True) -> Path:
    """A fake dataset with the real layout: 0.1-s clips, ``dataset/<kw>/<spk>_NO_<r>.wav``.

    ``split`` maps each speaker to its split; with ``lists`` the three CSVs list every clip.
    """
    rng = np.random.default_rng(0)
    rows: dict[str, list[list[str]]] = {s: [] for s in CSV_NAMES}
    for keyword in keywords:
        for speaker, part in split.items():
            for r in range(1, rounds + 1):
                rel = f"dataset/{keyword}/{speaker}_NO_{r:02d}.wav"
                (root / rel).parent.mkdir(parents=True, exist_ok=True)
                sf.write(root / rel, (0.1 * rng.standard_normal(1600)).astype(np.float32),
                         16000, subtype="PCM_16")
                rows[part].append([rel, keyword])
    if lists:
        for part, name in CSV_NAMES.items():
            with open(root / name, "w", newline="") as f:
                csv.writer(f).writerows([["file", "class"], *rows[part]])
    (root / "README.md").write_text("Arabic Speech Commands")
    return root


@pytest.fixture
def asc(tmp_path: Path) -> Path:
    return make_dataset(tmp_path / "arabic-speech-commands-dataset-main")


def _rel(manifest: Path) -> list[tuple[str, ...]]:
    """Manifest rows with paths relative to the dataset root (comparable across sources)."""
    corpus = Corpus.open(manifest)
    return sorted((Path(it.path).parent.name + "/" + Path(it.path).name,
                   *(it.get(c) for c in corpus.columns)) for it in corpus)


def test_folder_manifest_follows_the_csvs(asc: Path, tmp_path: Path,
                                          capsys: pytest.CaptureFixture[str]) -> None:
    (asc / "background_noise").mkdir()
    sf.write(asc / "background_noise" / "tap.wav", np.zeros(1600, np.float32), 16000)
    (asc / "dataset" / "yes" / "notes.wav").write_bytes(b"RIFF")  # not a clip name: ignored
    manifest = prepare("arabic_speech_commands", str(asc), tmp_path / "out")
    summary = capsys.readouterr().err
    assert ("arabic_speech_commands: 36 files (train 24, valid 6, test 6), 3 labels, 6 groups; "
            "skipped 1 background_noise file(s) (no keyword); speakers train 4, valid 1, test 1"
            ) in summary
    assert manifest.read_text().splitlines()[0] == \
        "path,label,split,group,speaker,round,keyword"
    corpus = Corpus.open(manifest)
    assert set(corpus.column("label")) == set(KEYWORDS)
    for it in corpus:
        speaker = Path(it.path).name[:8]
        assert it.get("split") == SPLIT[speaker] and it.get("group") == speaker == it.get(
            "speaker")
        assert it.get("keyword") == it.get("label") == Path(it.path).parent.name
        assert it.get("round") == Path(it.path).stem[-2:]
    assert Counter(corpus.column("label"))["zoom in"] == 12


def test_missing_and_unlisted_files_are_counted(asc: Path, tmp_path: Path) -> None:
    (asc / "dataset" / "yes" / "00000001_NO_01.wav").unlink()  # listed in train.csv
    (asc / "dataset" / "yes" / "00000002_NO_02.wav").write_bytes(b"")  # listed, empty
    sf.write(asc / "dataset" / "yes" / "00000001_NO_07.wav", np.zeros(1600, np.float32), 16000)
    with pytest.warns(RecipeWarning) as caught:
        manifest = prepare("arabic_speech_commands", str(asc), tmp_path / "out", progress=False)
    messages = " | ".join(str(w.message) for w in caught)
    assert "1 file(s) listed in a split CSV but missing, e.g. dataset/yes/00000001_NO_01.wav" \
        in messages
    assert "1 file(s) in no split CSV (left out)" in messages and "empty file" in messages
    names = {Path(p).name for p in Corpus.open(manifest).paths if "/yes/" in p}
    assert "00000001_NO_07.wav" not in names and len(names) == 10


def test_a_speaker_in_two_splits_is_an_error(asc: Path, tmp_path: Path) -> None:
    with open(asc / "test.csv", "a", newline="") as f:
        csv.writer(f).writerow(["dataset/yes/00000003_NO_01.wav", "yes"])
    with pytest.raises(RecipeError, match=r"00000003 in train.csv, test.csv.*speaker-disjoint"):
        prepare("arabic_speech_commands", str(asc), tmp_path / "out", progress=False)


def test_the_github_zip_and_tar_give_the_same_manifest(asc: Path, tmp_path: Path,
                                                       pack) -> None:
    folder = _rel(prepare("arabic_speech_commands", str(asc), tmp_path / "a", progress=False))
    archive = pack(asc, tmp_path / "main.zip")  # the name the GitHub URL downloads as
    out = tmp_path / "b"
    manifest = prepare("arabic_speech_commands", str(archive), out, progress=False)
    assert _rel(manifest) == folder
    assert (out / "extracted" / "main" / MARKER).is_file()
    assert all(not Path(line.split(",")[0]).is_absolute()
               for line in manifest.read_text().splitlines()[1:])
    tar = pack(asc, tmp_path / "arabic-speech-commands-dataset-main.tar.gz")
    assert _rel(prepare("arabic_speech_commands", str(tar), tmp_path / "c",
                        progress=False)) == folder


def test_without_csvs_speakers_are_split_by_hash(tmp_path: Path) -> None:
    speakers = {f"{i:08d}": "train" for i in range(1, 11)}
    root = make_dataset(tmp_path / "asc", speakers, ("yes",), rounds=1, lists=False)
    with pytest.warns(RecipeWarning, match="splitting the speakers by hash"):
        manifest = prepare("arabic_speech_commands", str(root), tmp_path / "out",
                           progress=False)
    corpus = Corpus.open(manifest)
    by_split = {s: {it.get("speaker") for it in corpus if it.get("split") == s}
                for s in ("train", "valid", "test")}
    assert [len(v) for v in by_split.values()] == [6, 2, 2]  # exact 60/20/20 of the speakers
    with pytest.warns(RecipeWarning):
        again = prepare("arabic_speech_commands", str(root), tmp_path / "out2", progress=False)
    assert _rel(again) == _rel(manifest)
    (root / "train.csv").write_text("file,class\n")
    with pytest.raises(RecipeError, match="val.csv, test.csv missing"):
        prepare("arabic_speech_commands", str(root), tmp_path / "out3", progress=False)


def test_wrong_source_and_header(asc: Path, tmp_path: Path) -> None:
    (tmp_path / "empty").mkdir()
    with pytest.raises(RecipeError, match="no folder with dataset/ or train.csv"):
        prepare("arabic_speech_commands", str(tmp_path / "empty"), tmp_path / "out",
                progress=False)
    (asc / "val.csv").write_text("path,label\n")
    with pytest.raises(RecipeError, match="expected the header 'file,class'"):
        prepare("arabic_speech_commands", str(asc), tmp_path / "out", progress=False)
