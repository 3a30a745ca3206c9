"""VoxForge recipe: language labels, speaker from the session name, speaker-disjoint splits."""

from __future__ import annotations

import tarfile
from collections import defaultdict
from pathlib import Path

import pytest

from pocketear.data.corpus import Corpus
from pocketear.data.recipes import RecipeWarning, prepare
from pocketear.data.recipes.base import RecipeError
from pocketear.data.recipes.voxforge import speaker_of


def test_speaker_of_session_names() -> None:
    assert speaker_of("ralfherzog-20071220-de34") == "ralfherzog"
    assert speaker_of("Ralfherzog-20080101") == "ralfherzog"
    assert speaker_of("jean-luc-20090101-xy") == "jean-luc"
    assert speaker_of("anonymous-20080101-abc") == "anonymous-20080101-abc"
    assert speaker_of("someone_without_date") == "someone_without_date"


@pytest.fixture
def voxforge(tmp_path: Path, write_clip) -> Path:
    root = tmp_path / "voxforge"
    sessions = {"en": ["anonymous-20080101-abc", "anonymous-20080102-def",
                       "ralfherzog-20071220-de34", "Ralfherzog-20080101-xyz"],
                "de": ["ralfherzog-20071221-aaa"]}
    sessions["es"] = [f"hablante{i}-20100101-s{i}" for i in range(40)]
    for lang, names in sessions.items():
        for name in names:
            for k in range(2):
                write_clip(root / lang / name / "wav" / f"a{k:04d}.wav", sr=16000, seed=k)
    write_clip(root / "de" / "user2-20090101-q" / "flac" / "x.flac", sr=16000)
    write_clip(root / "de" / "user3-20090102-r" / "y.wav", sr=16000)  # no wav/ folder: ok
    write_clip(root / "en" / "stray.wav")  # not inside a session: skipped
    (root / "en" / "ralfherzog-20071220-de34" / "wav" / "a0002.wav").write_bytes(b"")
    session = tmp_path / "frenchie-20100101-zz"
    write_clip(session / "wav" / "b0001.wav", sr=16000)
    (session / "etc").mkdir()
    (session / "etc" / "PROMPTS").write_text("b0001 BONJOUR\n")
    (root / "fr").mkdir()
    with tarfile.open(root / "fr" / "frenchie-20100101-zz.tgz", "w:gz") as tar:
        tar.add(session, arcname=session.name)  # a per-session archive as distributed
    return root


def test_voxforge_manifest(voxforge: Path, tmp_path: Path) -> None:
    with pytest.warns(RecipeWarning) as record:
        manifest = prepare("voxforge", str(voxforge), tmp_path / "out", progress=False)
    messages = " ".join(str(w.message) for w in record)
    assert "stray.wav: not inside" in messages and "a0002.wav: empty file" in messages
    corpus = Corpus.open(manifest)
    assert corpus.columns == ["label", "split", "group", "speaker", "session"]
    assert len(corpus) == 8 + 2 + 1 + 1 + 80 + 1
    assert set(corpus.column("label")) == {"en", "de", "es", "fr"}
    groups = defaultdict(set)
    for item in corpus:
        groups[item.get("group")].add(item.get("split"))
    assert all(len(splits) == 1 for splits in groups.values())  # speaker-disjoint
    assert len(corpus.filter(group="ralfherzog")) == 6  # both languages, both sessions
    assert set(corpus.filter(label="fr").column("group")) == {"frenchie"}
    assert (tmp_path / "out" / "sessions" / "fr" / "frenchie-20100101-zz").is_dir()
    es_splits = {next(iter(groups[f"hablante{i}"])) for i in range(40)}
    assert es_splits == {"train", "valid", "test"}

    only = prepare("voxforge", str(voxforge), tmp_path / "out", progress=False,
                   languages="de,fr", fractions="1/0/0")  # en, with its bad files, is left out
    assert set(Corpus.open(only).column("label")) == {"de", "fr"}
    assert set(Corpus.open(only).column("split")) == {"train"}
    with pytest.raises(RecipeError, match="none of the languages"):
        prepare("voxforge", str(voxforge), tmp_path / "out", progress=False, languages="xx")
