"""FSDD recipe: official split (index 0-4 test), speaker groups, folder and GitHub zip."""

from __future__ import annotations

import os
from collections import Counter
from pathlib import Path

import pytest

from pocketear.data.corpus import Corpus
from pocketear.data.recipes import RecipeWarning, prepare
from pocketear.data.recipes.base import MARKER, RecipeError
from pocketear.data.recipes.fsdd import FSDDRecipe


@pytest.fixture
def fsdd(tmp_path: Path, write_clip) -> Path:
    root = tmp_path / "free-spoken-digit-dataset-master"
    for speaker in ("jackson", "theo"):
        for digit in (0, 7):
            for index in (0, 4, 5, 9, 12):
                write_clip(root / "recordings" / f"{digit}_{speaker}_{index}.wav", seed=index)
    (root / "recordings" / "3_theo_40.wav").write_bytes(b"")  # empty: skipped with a warning
    (root / "README.md").write_text("FSDD")
    write_clip(root / "utils" / "not_a_recording.wav")
    return root


def test_fsdd_folder_manifest(fsdd: Path, tmp_path: Path,
                              capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.warns(RecipeWarning, match="3_theo_40.wav: empty file"):
        manifest = prepare("fsdd", str(fsdd), tmp_path / "out")
    summary = capsys.readouterr().err
    assert "fsdd: 20 files (train 12, test 8), 2 labels, 2 groups" in summary
    assert "skipped 1 empty file (0 bytes)" in summary
    header = manifest.read_text().splitlines()[0]
    assert header == "path,label,split,group,speaker,digit,index"
    corpus = Corpus.open(manifest)
    assert len(corpus) == 20
    assert Counter(corpus.column("split")) == {"train": 12, "test": 8}
    assert set(corpus.column("label")) == {"0", "7"}
    assert set(corpus.column("group")) == {"jackson", "theo"}
    for item in corpus:
        index = int(item.get("index"))
        assert item.get("split") == ("test" if index <= 4 else "train")
        assert Path(item.path).name.startswith(f"{item.get('label')}_{item.get('group')}_")

    recipe = FSDDRecipe()  # quiet: no output, the summary is kept on the recipe
    with pytest.warns(RecipeWarning):
        recipe.prepare(str(fsdd), tmp_path / "out", progress=False)
    assert capsys.readouterr().err == "" and recipe.summary in summary


def test_fsdd_zip_speaker_label_and_idempotent(fsdd: Path, tmp_path: Path, pack) -> None:
    archive = pack(fsdd, tmp_path / "free-spoken-digit-dataset-master.zip")
    out = tmp_path / "out"
    with pytest.warns(RecipeWarning):
        manifest = prepare("fsdd", str(archive), out, progress=False, label="speaker")
    corpus = Corpus.open(manifest)
    assert set(corpus.column("label")) == {"jackson", "theo"}
    assert all(not Path(p).is_absolute() for p in
               (line.split(",")[0] for line in manifest.read_text().splitlines()[1:]))
    marker = out / "extracted" / "free-spoken-digit-dataset-master" / MARKER
    stamp = os.stat(marker).st_mtime_ns
    first = manifest.read_text()
    with pytest.warns(RecipeWarning):
        again = prepare("fsdd", str(archive), out, progress=False, label="speaker")
    assert again.read_text() == first and os.stat(marker).st_mtime_ns == stamp
    with pytest.raises(RecipeError, match="label must be"):
        prepare("fsdd", str(archive), out, progress=False, label="gender")


def test_fsdd_wrong_source(tmp_path: Path) -> None:
    (tmp_path / "empty").mkdir()
    with pytest.raises(RecipeError, match="no audio found"):
        prepare("fsdd", str(tmp_path / "empty"), tmp_path / "out", progress=False)
