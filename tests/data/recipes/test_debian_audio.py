"""debian_audio: hand-made .deb files (ar + tar, no dpkg needed) through the whole recipe."""

from __future__ import annotations

import csv
import io
import os
import shutil
import subprocess
import tarfile
import zipfile
from collections import defaultdict
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from pocketear.cli import main
from pocketear.data.recipes import RecipeError, RecipeWarning, UnsafeArchiveError, prepare
from pocketear.data.recipes import debian_audio as deb
from pocketear.data.recipes.base import MARKER

SR = 8000
DEP5 = ("Format: https://www.debian.org/doc/packaging-manuals/copyright-format/1.0/\n\n"
        "Files: *\nCopyright: 2024 Someone\nLicense: GPL-2+\n\nFiles: debian/*\nLicense: MIT\n")
FREE_TEXT = "Sounds by Someone.\n\nReleased under the Creative Commons Attribution 3.0 licence.\n"
Files = dict[str, "bytes | tuple[str, str]"]  # member -> content, or ("link", target)


def clip(seconds: float, seed: int, fmt: str = "WAV") -> bytes:
    audio = 0.1 * np.random.default_rng(seed).standard_normal(int(seconds * SR))
    buf = io.BytesIO()
    sf.write(buf, audio.astype(np.float32), SR, format=fmt,
             subtype="PCM_16" if fmt == "WAV" else "VORBIS")
    return buf.getvalue()


def zip_bytes(members: dict[str, bytes]) -> bytes:
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as zf:
        for name, data in members.items():
            zf.writestr(zipfile.ZipInfo(name), data)
    return buf.getvalue()


def tar_bytes(members: Files, compression: str) -> bytes:
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode=f"w:{compression}") as tar:
        for name, value in members.items():
            info = tarfile.TarInfo(name)
            if isinstance(value, tuple):
                info.type, info.linkname = tarfile.SYMTYPE, value[1]
                tar.addfile(info)
            else:
                info.size, info.mode = len(value), 0o644
                tar.addfile(info, io.BytesIO(value))
    return buf.getvalue()


def ar_bytes(members: list[tuple[str, bytes]]) -> bytes:
    out = [b"!<arch>\n"]
    for name, data in members:
        out.append(f"{name:<16}{0:<12}{0:<6}{0:<6}{'100644':<8}{len(data):<10}`\n".encode())
        out.append(data + b"\n" * (len(data) % 2))
    return b"".join(out)


def make_deb(folder: Path, package: str, files: Files, compression: str = "xz",
             data: bytes | None = None) -> Path:
    """``folder/PACKAGE_1.0_all.deb``: debian-binary, control.tar.gz, data.tar[.COMPRESSION]."""
    control = tar_bytes({"./control": f"Package: {package}\nVersion: 1.0\nArchitecture: all\n"
                         "Maintainer: T <t@example.org>\nDescription: test\n".encode()}, "gz")
    if data is None:
        data = tar_bytes({f"./{k}" if not k.startswith(("/", ".")) else k: v
                          for k, v in files.items()}, compression)
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / f"{package}_1.0_all.deb"
    suffix = f".{compression}" if compression else ""
    path.write_bytes(ar_bytes([("debian-binary", b"2.0\n"), ("control.tar.gz", control),
                               (f"data.tar{suffix}", data)]))
    return path


@pytest.fixture(params=["dpkg-deb", "python"])
def tool(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> str:
    """Both ways of reading a .deb: dpkg-deb (when installed) and the pure-Python ar reader."""
    real = shutil.which
    if request.param == "dpkg-deb" and real("dpkg-deb") is None:
        pytest.skip("dpkg-deb is not installed")
    if request.param == "python":
        monkeypatch.setattr(shutil, "which", lambda name, *a, **k: None if name == "dpkg-deb"
                            else real(name, *a, **k))
    return request.param


@pytest.fixture
def debs(tmp_path: Path) -> Path:
    """pkg-a (speech; xz): a wav, an ogg in a .pk3, a link, a text file, a DEP-5 copyright.

    pkg-b (music; gz): a copy of pkg-a's wav, a 2 s wav, an undecodable ogg, a free-text
    copyright.
    """
    folder = tmp_path / "debs"
    hello = clip(1.0, 1)
    make_deb(folder, "pkg-a", {
        "usr/share/sounds/pkg-a/hello.wav": hello,
        "usr/share/games/pkg-a/pak0.pk3": zip_bytes({"sound/beep.ogg": clip(0.5, 3, "OGG"),
                                                     "textures/wall.tga": b"image",
                                                     "../CREDITS": b"as in openarena-data"}),
        "usr/share/sounds/pkg-a/alias.wav": ("link", "hello.wav"),
        "usr/share/games/pkg-a/readme.txt": b"not audio",
        "usr/share/doc/pkg-a/copyright": DEP5.encode(),
    })
    make_deb(folder, "pkg-b", {
        "usr/share/pkg-b/music/copy.wav": hello,
        "usr/share/pkg-b/music/song.wav": clip(2.0, 2),
        "usr/share/pkg-b/music/broken.ogg": b"OggS but not really",
        "usr/share/doc/pkg-b/copyright": FREE_TEXT.encode(),
    }, compression="gz")
    return folder


TWO = "pkg-a=speech,pkg-b=music"


def read_manifest(path: Path) -> list[dict[str, str]]:
    with open(path, newline="") as f:
        return list(csv.DictReader(f))


def run(out: Path, progress: bool = False, **options: str) -> tuple[Path, str]:
    recipe = deb.DebianAudioRecipe()
    manifest = recipe.prepare("", out, progress=progress, **options)
    return manifest, recipe.summary


def test_audio_only_containers_duplicates_and_licences(tmp_path: Path, debs: Path,
                                                       tool: str) -> None:
    out = tmp_path / "out"
    with pytest.warns(RecipeWarning, match="broken.ogg"):
        manifest, summary = run(out, from_debs=str(debs), packages=TWO)
    tree = out / "extracted" / "pkg-a"
    written = sorted(p.relative_to(tree).as_posix() for p in tree.rglob("*") if p.is_file())
    assert written == [MARKER, "usr/share/doc/pkg-a/copyright",
                       "usr/share/games/pkg-a/pak0.pk3/sound/beep.ogg",
                       "usr/share/sounds/pkg-a/hello.wav"]
    assert not any(p.is_symlink() for p in out.rglob("*"))
    rows = {r["path"]: r for r in read_manifest(manifest)}
    assert sorted(rows) == ["extracted/pkg-a/usr/share/games/pkg-a/pak0.pk3/sound/beep.ogg",
                            "extracted/pkg-a/usr/share/sounds/pkg-a/hello.wav",
                            "extracted/pkg-b/usr/share/pkg-b/music/song.wav"]
    hello = rows["extracted/pkg-a/usr/share/sounds/pkg-a/hello.wav"]
    assert hello == {"path": hello["path"], "label": "speech", "split": "train",
                     "group": "pkg-a", "package": "pkg-a", "licence": "GPL-2+",
                     "domain": "speech", "duration": "1.0", "sample_rate": "8000"}
    song = rows["extracted/pkg-b/usr/share/pkg-b/music/song.wav"]
    assert song["label"] == "music" and song["duration"] == "2.0"
    assert song["licence"] == "Released under the Creative Commons Attribution 3.0 licence."
    assert float(rows["extracted/pkg-a/usr/share/games/pkg-a/pak0.pk3/sound/beep.ogg"]
                 ["duration"]) == pytest.approx(0.5, abs=0.01)
    assert "3 files (train 3), 2 labels, 2 groups" in summary
    assert "1 links" in summary and "1 duplicates" in summary and "1 undecodable" in summary


@pytest.mark.parametrize("where", ["tar", "absolute", "pk3"])
def test_member_escaping_the_folder_is_refused(tmp_path: Path, tool: str, where: str) -> None:
    evil = {"tar": {"../evil.wav": clip(0.1, 0)},
            "absolute": {"/tmp/pocketear-evil.wav": clip(0.1, 0)},
            "pk3": {"usr/share/x/pak.pk3": zip_bytes({"../../../../evil.ogg": b"x"})}}[where]
    make_deb(tmp_path / "debs", "bad", {"usr/share/sounds/ok.wav": clip(0.1, 0), **evil})
    out = tmp_path / "work" / "out"
    with pytest.raises(UnsafeArchiveError, match=r"refusing to extract .*bad_1.0_all.deb.*"
                                                 r"evil\.(wav|ogg)"):
        run(out, from_debs=str(tmp_path / "debs"), packages="bad=effects")
    assert list((out / "extracted").iterdir()) == []  # nothing kept, temp folder gone too
    assert not (out / "manifest.csv").exists()
    assert not list(tmp_path.rglob("evil*")) and not Path("/tmp/pocketear-evil.wav").exists()


def test_hours_cap_follows_the_balance_round_robin(tmp_path: Path) -> None:
    folder, seed = tmp_path / "debs", iter(range(100))
    for package, n in (("sp", 2), ("fx", 6), ("mu1", 10), ("mu2", 2)):
        make_deb(folder, package, {f"usr/share/{package}/{i}.wav": clip(1.0, next(seed))
                                   for i in range(n)}, compression="gz")
    manifest, summary = run(tmp_path / "out", from_debs=str(folder), hours=str(8 / 3600),
                            packages="sp=speech,fx=effects,mu1=music,mu2=music")
    seconds: dict[str, float] = defaultdict(float)
    for row in read_manifest(manifest):
        seconds[row["domain"]] += float(row["duration"])
        seconds[row["package"]] += float(row["duration"])
    # speech's 4 s share holds only 2 s: the other 2 s go half to effects, half to music,
    # and music alternates between its packages
    assert dict(seconds) == {"speech": 2, "sp": 2, "effects": 3, "fx": 3, "music": 3,
                             "mu1": 2, "mu2": 1}
    assert "0.00 h" in summary and "balance speech 0.5, effects 0.25, music 0.25" in summary


def test_budgets_and_selection_by_hand() -> None:
    balance = deb.DEFAULT_BALANCE
    assert deb.domain_budgets({"speech": 100, "effects": 100, "music": 100}, 8, balance) == \
        {"speech": 4, "effects": 2, "music": 2}
    assert deb.domain_budgets({"speech": 10, "effects": 1, "music": 100}, 20, balance) == \
        pytest.approx({"speech": 10, "effects": 1, "music": 9})
    rows = [{"domain": "speech", "package": "big", "member": "long.wav", "duration": 10.0}]
    rows += [{"domain": d, "package": "p", "member": f"{d}{i}", "duration": 1.0}
             for d in ("effects", "music") for i in range(10)]
    kept = deb.select_hours(rows, 8, balance)  # the 10 s file never fits: its share goes on
    assert sum(r["duration"] for r in kept) == 8 and {r["domain"] for r in kept} == \
        {"effects", "music"}
    kept = deb.select_hours(rows, 8, deb.parse_balance("effects=1"))
    assert {r["domain"] for r in kept} == {"effects"}


def test_resume_after_an_interrupted_run(tmp_path: Path, debs: Path,
                                         monkeypatch: pytest.MonkeyPatch) -> None:
    out = tmp_path / "out"
    real_write = deb.write_stream

    def interrupted(src, path: Path) -> str:
        if ".tmp-pkg-b-" in str(path):
            raise KeyboardInterrupt
        return real_write(src, path)

    monkeypatch.setattr(deb, "write_stream", interrupted)
    with pytest.raises(KeyboardInterrupt):
        run(out, from_debs=str(debs), packages=TWO)
    assert (out / "extracted" / "pkg-a" / MARKER).is_file()
    assert sorted(p.name for p in (out / "extracted").iterdir()) == ["pkg-a"]
    assert not (out / "manifest.csv").exists()
    monkeypatch.undo()

    extracted: list[str] = []
    real_extract = deb.extract_package

    def recording(source: Path, dest: Path, package: str, progress: bool = True) -> dict:
        extracted.append(package)
        return real_extract(source, dest, package, progress)

    monkeypatch.setattr(deb, "extract_package", recording)
    stamp = os.stat(out / "extracted" / "pkg-a" / MARKER).st_mtime_ns
    with pytest.warns(RecipeWarning):
        manifest, _ = run(out, from_debs=str(debs), packages=TWO)
    assert extracted == ["pkg-b"]
    assert os.stat(out / "extracted" / "pkg-a" / MARKER).st_mtime_ns == stamp
    assert {r["package"] for r in read_manifest(manifest)} == {"pkg-a", "pkg-b"}
    assert len(read_manifest(manifest)) == 3


def _fake_apt_get(tmp_path: Path, debs: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """An ``apt-get`` on PATH that "downloads" from ``debs`` and logs each call."""
    bin_dir, log = tmp_path / "bin", tmp_path / "apt.log"
    bin_dir.mkdir()
    script = bin_dir / "apt-get"
    script.write_text('#!/bin/sh\n[ "$1" = download ] || exit 1\necho "$2" >> "$APT_LOG"\n'
                      'if [ -f "$DEBS/$2_1.0_all.deb" ]; then cp "$DEBS/$2_1.0_all.deb" .; else\n'
                      '  echo "E: Unable to locate package $2" >&2; exit 100; fi\n')
    script.chmod(0o755)
    monkeypatch.setenv("PATH", f"{bin_dir}{os.pathsep}{os.environ['PATH']}")
    monkeypatch.setenv("DEBS", str(debs))
    monkeypatch.setenv("APT_LOG", str(log))
    return log


def test_download_with_apt_get_once(tmp_path: Path, debs: Path,
                                    monkeypatch: pytest.MonkeyPatch) -> None:
    log = _fake_apt_get(tmp_path, debs, monkeypatch)
    out = tmp_path / "out"
    manifest, _ = run(out, packages="pkg-a=speech")
    assert (out / "downloads" / "pkg-a_1.0_all.deb").is_file()
    assert [p.name for p in (out / "downloads").iterdir()] == ["pkg-a_1.0_all.deb"]
    assert len(read_manifest(manifest)) == 2
    shutil.rmtree(out / "extracted")
    run(out, packages="pkg-a=speech")  # extracted again from the .deb already downloaded
    assert log.read_text().split() == ["pkg-a"]
    with pytest.raises(RecipeError, match="apt-get download no-such failed .*Unable to locate "
                                          "package no-such.*--from-debs"):
        run(out, packages="no-such=music")
    assert [p.name for p in (out / "downloads").iterdir()] == ["pkg-a_1.0_all.deb"]


def test_missing_apt_get_says_what_to_do(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    real = shutil.which
    monkeypatch.setattr(shutil, "which", lambda name, *a, **k: None if name == "apt-get"
                        else real(name, *a, **k))
    with pytest.raises(RecipeError, match="apt-get not found.*--from-debs FOLDER"):
        run(tmp_path / "out", packages="klettres-data")


def _zst_deb(folder: Path) -> Path:
    plain = tar_bytes({"./usr/share/sounds/z.wav": clip(0.25, 5)}, "")
    packed = subprocess.run(["zstd", "-q", "-c"], input=plain, capture_output=True,
                            check=True).stdout if shutil.which("zstd") else b"\x28\xb5\x2f\xfd"
    return make_deb(folder, "zpkg", {}, compression="zst", data=packed)


@pytest.mark.parametrize("zstd", [True, False])
def test_zstd_data_without_dpkg_deb(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                    zstd: bool) -> None:
    real = shutil.which
    if zstd and real("zstd") is None:
        pytest.skip("zstd is not installed")
    _zst_deb(tmp_path / "debs")
    hidden = {"dpkg-deb"} | (set() if zstd else {"zstd"})
    monkeypatch.setattr(shutil, "which", lambda name, *a, **k: None if name in hidden
                        else real(name, *a, **k))
    if zstd:
        manifest, _ = run(tmp_path / "out", from_debs=str(tmp_path / "debs"),
                          packages="zpkg=effects")
        assert [r["duration"] for r in read_manifest(manifest)] == ["0.25"]
    else:
        with pytest.raises(RecipeError, match=r"data\.tar\.zst.*install dpkg \(dpkg-deb\) or "
                                              "zstd"):
            run(tmp_path / "out", from_debs=str(tmp_path / "debs"), packages="zpkg=effects")


def test_extracted_trees_and_path_rules(tmp_path: Path) -> None:
    tree = tmp_path / "have" / "hedgewars-data"
    base = tree / "usr" / "share" / "games" / "hedgewars" / "Data"
    for i, rel in enumerate(("Music/a.wav", "Sounds/voices/Default/b.wav", "Sounds/c.wav",
                             "Names/d.wav")):
        (base / rel).parent.mkdir(parents=True, exist_ok=True)
        (base / rel).write_bytes(clip(0.2, 10 + i))
    (base / "Sounds" / "link.wav").symlink_to(base / "Sounds" / "c.wav")
    (base / "pak.zip").write_bytes(zip_bytes({"x/e.wav": clip(0.2, 20)}))
    manifest, summary = run(tmp_path / "out", from_debs=str(tmp_path / "have"),
                            domains="speech,music", packages="hedgewars-data")
    labels = {Path(r["path"]).name: r["label"] for r in read_manifest(manifest)}
    assert labels == {"a.wav": "music", "b.wav": "speech", "d.wav": "speech", "e.wav": "speech"}
    assert "1 links" in summary and (tree / "usr").is_dir()  # the tree itself is untouched


@pytest.mark.parametrize(
    ("options", "message"),
    [
        ({"hours": "-1"}, "hours must be a positive number"),
        ({"hours": "ten"}, "hours must be a positive number"),
        ({"domains": "speech,noise"}, "domains 'speech,noise': give a comma-separated subset"),
        ({"packages": "Bad_Name"}, "'Bad_Name' is not a Debian package name"),
        ({"packages": "my-sounds"}, "my-sounds is not in the built-in list; give its domain"),
        ({"packages": "xy=noise"}, "xy=noise: the domain must be one of"),
        ({"balance": "speech=-1"}, "balance 'speech=-1': give DOMAIN=WEIGHT"),
        ({"checksum": "0" * 32}, "has no option"),
        ({"from_debs": "/no/such/folder"}, "no such folder; --from-debs takes"),
    ],
    ids=["negative-hours", "text-hours", "domain", "name", "no-domain", "bad-domain", "balance",
         "checksum", "no-folder"],
)
def test_bad_options_name_the_option(tmp_path: Path, options: dict[str, str],
                                     message: str) -> None:
    with pytest.raises(RecipeError, match=message):
        prepare("debian-audio", "", tmp_path / "out", progress=False, **options)


def test_licence_parsing() -> None:
    assert deb.parse_licence(DEP5) == "GPL-2+"
    assert deb.parse_licence("Copyright 2001 A\n\nGNU General Public License, version 2\n") \
        == "GNU General Public License, version 2"
    assert deb.parse_licence("These sounds are in the public domain.") == \
        "These sounds are in the public domain."
    assert deb.parse_licence("Copyright 2001 A. Please submit fixes.") == "unknown"


def test_cli_prepare_debian_audio(tmp_path: Path, debs: Path,
                                  capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "cli"
    with pytest.warns(RecipeWarning):
        rc = main(["prepare", "debian-audio", "--from-debs", str(debs), "--packages", TWO,
                   "--hours", "0.0005", "--out", str(out), "--no-progress"])
    assert rc == 0 and "manifest.csv" in capsys.readouterr().out
    rows = read_manifest(out / "manifest.csv")
    assert rows and sum(float(r["duration"]) for r in rows) <= 1.8
    with pytest.warns(RecipeWarning):  # --source means --from-debs; --opt works alike
        assert main(["prepare", "debian_audio", "--source", str(debs), "--opt",
                     f"packages={TWO}", "--out", str(out), "--no-progress"]) == 0
    assert len(read_manifest(out / "manifest.csv")) == 3


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["debian-audio", "--hours", "abc", "--from-debs", "{tmp}"], "hours must be a positive"),
        (["debian-audio", "--hours", "1", "--opt", "hours=2"], "disagree; give one"),
        (["debian-audio", "--source", "{tmp}", "--from-debs", "{tmp}/x"], "different folders"),
        (["fsdd"], "recipe 'fsdd' needs a source (--source)"),
        (["fsdd", "--source", "{tmp}", "--hours", "1"], "has no option(s) hours"),
    ],
    ids=["bad-hours", "disagree", "two-folders", "no-source", "foreign-option"],
)
def test_cli_errors_are_one_line(tmp_path: Path, capsys: pytest.CaptureFixture[str],
                                 argv: list[str], message: str) -> None:
    fill: Callable[[str], str] = lambda a: a.replace("{tmp}", str(tmp_path))  # noqa: E731
    rc = main(["prepare", *map(fill, argv), "--out", str(tmp_path / "o"), "--no-progress"])
    err = capsys.readouterr().err
    assert rc == 2 and message in err and "Traceback" not in err
