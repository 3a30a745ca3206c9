from pathlib import Path

import pytest

from pocketear.data.corpus import Corpus, ManifestError


def test_folder_is_recursive_and_sorted(tone_folder: Path) -> None:
    (tone_folder / "notes.txt").write_text("not audio")
    corpus = Corpus.open(tone_folder)
    assert len(corpus) == 12
    assert corpus.paths == sorted(corpus.paths)
    assert set(corpus.column("folder")) == {"low", "high"}


def test_manifest_relative_paths_and_columns(tone_folder: Path) -> None:
    manifest = tone_folder / "m.csv"
    manifest.write_text("path,label,split\nlow/l0.wav,low,train\nhigh/h0.wav,high,test\n")
    corpus = Corpus.open(manifest)
    assert corpus.paths == [str(tone_folder / "low/l0.wav"), str(tone_folder / "high/h0.wav")]
    assert corpus.column("label") == ["low", "high"]
    assert len(corpus.filter(split="train")) == 1
    with pytest.raises(ManifestError, match="unknown column 'speaker'"):
        corpus.column("speaker")


def test_tsv_manifest(tone_folder: Path) -> None:
    manifest = tone_folder / "m.tsv"
    manifest.write_text("path\tlabel\nlow/l1.wav\tlow\n")
    assert Corpus.open(manifest).column("label") == ["low"]


@pytest.mark.parametrize(
    ("text", "match"),
    [
        ("file,label\nlow/l0.wav,low\n", "no 'path' column"),
        ("path,label\nlow/missing.wav,low\n", "1 listed file"),
        ("path,label\n,low\n", "line 2: empty 'path'"),
        ("", "empty manifest"),
    ],
)
def test_manifest_errors_name_the_file(tone_folder: Path, text: str, match: str) -> None:
    manifest = tone_folder / "bad.csv"
    manifest.write_text(text)
    with pytest.raises(ManifestError, match=match) as info:
        Corpus.open(manifest)
    assert str(manifest) in str(info.value)


def test_fingerprint_changes_with_audio(tone_folder: Path) -> None:
    before = Corpus.open(tone_folder).fingerprint()
    (tone_folder / "low" / "l0.wav").write_bytes((tone_folder / "high" / "h0.wav").read_bytes()
                                                 + b"\0\0")
    assert Corpus.open(tone_folder).fingerprint() != before


def test_missing_source_is_clear(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError, match="no such folder or manifest"):
        Corpus.open(tmp_path / "nope")
