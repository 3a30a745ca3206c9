"""LibriSpeech speaker-id recipe: label = speaker, group = chapter, exact 80/10/10 per speaker."""

from __future__ import annotations

import hashlib
import tarfile
from collections import Counter
from pathlib import Path

import pytest

from pocketear.data.corpus import Corpus
from pocketear.data.recipes import ChecksumError, prepare
from pocketear.data.recipes.base import RecipeError

SPEAKERS_TXT = """\
; Some comment
;ID  |SEX| SUBSET           |MINUTES| NAME
19   | F | train-clean-100  | 25.19 | Kara Shallenberg
26   | M | train-clean-100  | 25.08 | Denny Sayers
103  | F | train-clean-100  | 25.12 | Karen Savage
"""
CHAPTERS = {"19": {"198": 10, "227": 10}, "26": {"495": 10}, "103": {"1240": 5}}


@pytest.fixture
def libri(tmp_path: Path, write_clip) -> Path:
    root = tmp_path / "LibriSpeech"
    for spk, chapters in CHAPTERS.items():
        for chapter, n in chapters.items():
            folder = root / "train-clean-100" / spk / chapter
            for utt in range(n):
                write_clip(folder / f"{spk}-{chapter}-{utt:04d}.flac", sr=16000, seed=utt)
            (folder / f"{spk}-{chapter}.trans.txt").write_text("TEXT\n")
    write_clip(root / "dev-clean" / "84" / "121123" / "84-121123-0000.flac")
    (root / "SPEAKERS.TXT").write_text(SPEAKERS_TXT)
    return root


def test_librispeech_folder(libri: Path, tmp_path: Path) -> None:
    manifest = prepare("librispeech_spk", str(libri), tmp_path / "out", progress=False)
    corpus = Corpus.open(manifest)
    assert corpus.columns == ["label", "split", "group", "speaker", "chapter", "sex", "subset"]
    assert len(corpus) == 35  # dev-clean is not part of the default subset
    assert set(corpus.column("label")) == {"19", "26", "103"}
    per_speaker = Counter((it.get("label"), it.get("split")) for it in corpus)
    assert per_speaker[("19", "train")] == 16 and per_speaker[("19", "test")] == 2
    assert per_speaker[("26", "valid")] == 1 and per_speaker[("103", "train")] == 3
    for item in corpus:
        assert Path(item.path).parent.name == item.get("group")
        assert item.get("sex") == {"19": "F", "26": "M", "103": "F"}[item.get("label")]
    again = prepare("librispeech_spk", str(libri), tmp_path / "out2", progress=False)
    assert [line.split(",")[1:] for line in again.read_text().splitlines()] == \
        [line.split(",")[1:] for line in manifest.read_text().splitlines()]

    both = prepare("librispeech_spk", str(libri), tmp_path / "out3", progress=False,
                   subset="train-clean-100,dev-clean", fractions="1/0/0")
    both_corpus = Corpus.open(both)
    assert len(both_corpus) == 36 and set(both_corpus.column("split")) == {"train"}
    with pytest.raises(RecipeError, match="no train-other-500/ folder"):
        prepare("librispeech_spk", str(libri), tmp_path / "o", progress=False,
                subset="train-other-500")


def test_librispeech_published_md5_is_checked(libri: Path, tmp_path: Path) -> None:
    archive = tmp_path / "train-clean-100.tar.gz"  # the official name: its md5 is known
    with tarfile.open(archive, "w:gz") as tar:
        tar.add(libri, arcname="LibriSpeech")
    with pytest.raises(ChecksumError, match="expected md5 2a93770f6d5c6c964bc36631d331a522"):
        prepare("librispeech_spk", str(archive), tmp_path / "out", progress=False)
    own = hashlib.md5(archive.read_bytes()).hexdigest()
    manifest = prepare("librispeech_spk", str(archive), tmp_path / "out", progress=False,
                       checksum=own)
    assert len(Corpus.open(manifest)) == 35
    assert (tmp_path / "out" / "extracted" / "train-clean-100" / "LibriSpeech").is_dir()
    # extracted already: a re-run does not hash (or need) the checksum again
    assert prepare("librispeech_spk", str(archive), tmp_path / "out", progress=False) == manifest
