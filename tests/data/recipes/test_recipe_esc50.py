"""ESC-50 recipe: labels from meta/esc50.csv, fold column and group, fold 5 test / 4 valid."""

from __future__ import annotations

from collections import Counter
from pathlib import Path

import pytest

from pocketear.data.corpus import Corpus
from pocketear.data.recipes import RecipeWarning, prepare
from pocketear.data.recipes.base import RecipeError

CATEGORIES = {0: ("dog", "True"), 1: ("rooster", "True"), 5: ("cat", "False")}


@pytest.fixture
def esc50_zip(tmp_path: Path, write_clip, pack) -> Path:
    root = tmp_path / "ESC-50-master"
    lines = ["filename,fold,target,category,esc10,src_file,take"]
    for fold in range(1, 6):
        for target, (category, esc10) in CATEGORIES.items():
            src = 100000 + 10 * fold + target
            name = f"{fold}-{src}-A-{target}.wav"
            write_clip(root / "audio" / name, sr=8000)
            lines.append(f"{name},{fold},{target},{category},{esc10},{src},A")
    lines.append("5-999999-A-0.wav,5,0,dog,True,999999,A")  # listed, file missing
    (root / "meta").mkdir()
    (root / "meta" / "esc50.csv").write_text("\n".join(lines) + "\n")
    (root / "README.md").write_text("ESC-50")
    return pack(root, tmp_path / "ESC-50-master.zip")


def test_esc50_default_folds(esc50_zip: Path, tmp_path: Path) -> None:
    with pytest.warns(RecipeWarning, match="listed in esc50.csv but missing"):
        manifest = prepare("esc50", str(esc50_zip), tmp_path / "out", progress=False)
    corpus = Corpus.open(manifest)
    assert corpus.columns == ["label", "split", "group", "fold", "target", "esc10", "src_file",
                              "take"]
    assert len(corpus) == 15
    assert set(corpus.column("label")) == {"dog", "rooster", "cat"}
    assert Counter(corpus.column("split")) == {"train": 9, "valid": 3, "test": 3}
    for item in corpus:
        assert item.get("group") == item.get("fold")
        fold = int(item.get("fold"))
        assert item.get("split") == {5: "test", 4: "valid"}.get(fold, "train")
        assert Path(item.path).name.startswith(f"{fold}-")


def test_esc50_options(esc50_zip: Path, tmp_path: Path) -> None:
    out = tmp_path / "out"
    (out / "downloads").mkdir(parents=True)
    with pytest.warns(RecipeWarning):
        manifest = prepare("esc50", str(esc50_zip), out, progress=False, test_fold=1,
                           valid_fold="none", subset="esc10")
    corpus = Corpus.open(manifest)
    assert set(corpus.column("label")) == {"dog", "rooster"}
    assert Counter(corpus.column("split")) == {"train": 8, "test": 2}
    with pytest.raises(RecipeError, match="must differ"):
        prepare("esc50", str(esc50_zip), out, progress=False, test_fold=4)
    with pytest.raises(RecipeError, match="no meta/esc50.csv"):
        prepare("esc50", str(out / "downloads"), out, progress=False)
