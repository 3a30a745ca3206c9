"""The fsdd suite on a fake FSDD folder with the real file-name layout."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from pocketear.evaluate import suite_fsdd
from pocketear.evaluate.suite_fsdd import FSDDSuite, speaker_folds
from pocketear.evaluate.suites import resolve_suite

SPEAKERS = ("ann", "bob", "cy", "dee", "eve")


@pytest.fixture
def fsdd(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setattr(suite_fsdd, "DEFAULT_DATA_DIR", tmp_path / "suites")
    rng = np.random.default_rng(0)
    for speaker in SPEAKERS:
        for digit in (1, 2, 3):
            for index in (0, 3, 5, 8):
                path = tmp_path / "fsdd" / "recordings" / f"{digit}_{speaker}_{index}.wav"
                path.parent.mkdir(parents=True, exist_ok=True)
                sf.write(path, (0.1 * rng.standard_normal(2000)).astype(np.float32), 8000)
    return tmp_path / "fsdd"


def test_speaker_folds_test_every_speaker_exactly_once() -> None:
    speakers = [s for s in SPEAKERS for _ in range(3)]
    folds = speaker_folds(speakers)
    assert len(folds) == 3  # pairs (ann, bob), (cy, dee), (eve)
    tested = [sorted({s for s, f in zip(speakers, fold, strict=True) if f == "test"})
              for fold in folds]
    assert tested == [["ann", "bob"], ["cy", "dee"], ["eve"]]
    for fold in folds:  # train and test speakers are disjoint
        train = {s for s, f in zip(speakers, fold, strict=True) if f == "train"}
        assert not train & {s for s, f in zip(speakers, fold, strict=True) if f == "test"}
    with pytest.raises(ValueError, match="two speakers"):
        speaker_folds(["ann", "ann"])


def test_fsdd_tasks_from_the_raw_folder(fsdd: Path) -> None:
    tasks = {t.name: t for t in resolve_suite("fsdd").tasks(fsdd, progress=False)}
    assert list(tasks) == ["fsdd-digit", "fsdd-speaker", "fsdd-digit-unseen-speaker"]
    digit = tasks["fsdd-digit"]
    assert len(digit.corpus) == 60 and digit.classes == ["1", "2", "3"]
    index = [int(Path(it.path).stem.split("_")[2]) for it in digit.corpus]
    assert all((s == "test") == (i <= 4) for s, i in zip(digit.split, index, strict=True))
    assert tasks["fsdd-speaker"].classes == sorted(SPEAKERS)
    assert tasks["fsdd-speaker"].groups is None  # group-std would reveal the speaker label
    unseen = tasks["fsdd-digit-unseen-speaker"]
    assert len(unseen.splits) == 3 and unseen.summary()["folds"] == 3
    # prepared once, then reused
    manifests = list((fsdd.parent / "suites").glob("fsdd-*/manifest.csv"))
    assert len(manifests) == 1
    again = FSDDSuite().tasks(manifests[0], progress=False)
    assert again[0].labels == digit.labels


def test_fsdd_without_data_says_how_to_get_it(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv(suite_fsdd.SOURCE_ENV, raising=False)
    with pytest.raises(FileNotFoundError, match="--data-dir"):
        FSDDSuite().tasks(None, progress=False)
