"""Generic folder recipe: class folders, seeded stratified 60/20/20, or train/valid/test folders."""

from __future__ import annotations

from collections import Counter
from pathlib import Path

import pytest

from pocketear.data.corpus import Corpus
from pocketear.data.recipes import RecipeWarning, prepare
from pocketear.data.recipes.base import RecipeError


@pytest.fixture
def classes(tmp_path: Path, write_clip) -> Path:
    root = tmp_path / "mydata"
    for i in range(10):
        write_clip(root / "dog" / f"d{i}.wav", seed=i)
    write_clip(root / "dog" / "more" / "d10.flac")  # deeper files belong to the class
    for i in range(5):
        write_clip(root / "cat" / f"c{i}.flac", seed=i)
    (root / "cat" / "broken.wav").write_bytes(b"")
    write_clip(root / "loose.wav")
    (root / "notes.txt").write_text("not audio")
    return root


def test_folder_random_stratified(classes: Path, tmp_path: Path) -> None:
    with pytest.warns(RecipeWarning) as record:
        manifest = prepare("folder", str(classes), tmp_path / "out", progress=False)
    messages = " ".join(str(w.message) for w in record)
    assert "loose.wav: not inside a class folder" in messages and "broken.wav: empty" in messages
    corpus = Corpus.open(manifest)
    assert corpus.columns == ["label", "split"]
    counts = Counter(zip(corpus.column("label"), corpus.column("split"), strict=True))
    assert counts == {("dog", "train"): 7, ("dog", "valid"): 2, ("dog", "test"): 2,
                      ("cat", "train"): 3, ("cat", "valid"): 1, ("cat", "test"): 1}
    with pytest.warns(RecipeWarning):
        same = prepare("folder", str(classes), tmp_path / "again", progress=False)
        other = prepare("folder", str(classes), tmp_path / "seed1", progress=False, seed=1)
    assert Corpus.open(same).column("split") == corpus.column("split")
    assert Corpus.open(other).column("split") != corpus.column("split")


def test_folder_split_folders_and_wrapped_zip(tmp_path: Path, write_clip, pack) -> None:
    root = tmp_path / "wrapped" / "dataset"
    for split, n in (("train", 4), ("val", 2), ("test", 2)):
        for label in ("yes", "no"):
            for i in range(n):
                write_clip(root / split / label / f"{label}{i}.wav", seed=i)
    archive = pack(tmp_path / "wrapped", tmp_path / "wrapped.zip")
    manifest = prepare("folder", str(archive), tmp_path / "out", progress=False)
    corpus = Corpus.open(manifest)
    assert Counter(corpus.column("split")) == {"train": 8, "valid": 4, "test": 4}
    assert set(corpus.column("label")) == {"yes", "no"}
    assert all(not line.startswith("/") for line in manifest.read_text().splitlines())
    forced = prepare("folder", str(archive), tmp_path / "out", progress=False, split="random")
    assert set(Corpus.open(forced).column("label")) == {"train", "val", "test"}
    with pytest.raises(RecipeError, match="split must be"):
        prepare("folder", str(archive), tmp_path / "out", progress=False, split="kfold")
