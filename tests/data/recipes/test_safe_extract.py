"""Safe extraction: hostile archives are refused before anything is written; good ones resume."""

from __future__ import annotations

import io
import os
import stat
import tarfile
import zipfile
from pathlib import Path

import pytest

from pocketear.data.recipes import base
from pocketear.data.recipes.base import (
    MARKER,
    RecipeError,
    UnsafeArchiveError,
    archive_stem,
    safe_extract,
)


def _tar_with(path: Path, *members: tarfile.TarInfo, data: bytes = b"x") -> Path:
    with tarfile.open(path, "w:gz") as tar:
        ok = tarfile.TarInfo("pkg/ok.txt")
        ok.size = 2
        tar.addfile(ok, io.BytesIO(b"ok"))
        for m in members:
            if m.isfile():
                m.size = len(data)
                tar.addfile(m, io.BytesIO(data))
            else:
                tar.addfile(m)
    return path


def _link(name: str, target: str, kind: bytes = tarfile.SYMTYPE) -> tarfile.TarInfo:
    info = tarfile.TarInfo(name)
    info.type = kind
    info.linkname = target
    return info


def _device(name: str) -> tarfile.TarInfo:
    info = tarfile.TarInfo(name)
    info.type = tarfile.CHRTYPE
    info.devmajor, info.devminor = 1, 3
    return info


@pytest.mark.parametrize(
    ("member", "reason"),
    [
        (tarfile.TarInfo("pkg/../../evil.txt"), "'..' path component"),
        (tarfile.TarInfo("../evil.txt"), "'..' path component"),
        (tarfile.TarInfo("/tmp/pocketear-evil.txt"), "absolute path"),
        (_link("pkg/passwd", "/etc/passwd"), "links to an absolute path"),
        (_link("pkg/up", "../../outside"), "links outside the target"),
        (_link("pkg/hard", "../outside", tarfile.LNKTYPE), "hard-links outside"),
        (_device("pkg/null"), "device file"),
    ],
    ids=["nested-dotdot", "dotdot", "absolute", "symlink-passwd", "symlink-up", "hardlink",
         "device"],
)
def test_hostile_tar_is_refused_and_nothing_written(tmp_path: Path, member: tarfile.TarInfo,
                                                    reason: str) -> None:
    archive = _tar_with(tmp_path / "bad.tar.gz", member)
    dest = tmp_path / "work" / "out" / "bad"
    with pytest.raises(UnsafeArchiveError, match="refusing to extract .*bad.tar.gz") as err:
        safe_extract(archive, dest, progress=False)
    assert repr(member.name) in str(err.value) and reason in str(err.value)
    assert not dest.exists()
    assert list((tmp_path / "work" / "out").iterdir()) == []  # temp folder removed too
    assert not (tmp_path / "evil.txt").exists() and not (tmp_path / "work" / "evil.txt").exists()
    assert not Path("/tmp/pocketear-evil.txt").exists()


def test_symlink_member_to_etc_passwd_with_following_write(tmp_path: Path) -> None:
    # The classic attack: a link to an outside file, then a file written "through" it.
    archive = _tar_with(tmp_path / "a.tar.gz", _link("pkg/p", "/etc/passwd"),
                        tarfile.TarInfo("pkg/p"))
    with pytest.raises(UnsafeArchiveError, match="'pkg/p' links to an absolute path"):
        safe_extract(archive, tmp_path / "dest", progress=False)
    assert not (tmp_path / "dest").exists()


@pytest.mark.parametrize("name", ["../evil.txt", "pkg/../../evil.txt", "/abs/evil.txt"])
def test_hostile_zip_is_refused(tmp_path: Path, name: str) -> None:
    archive = tmp_path / "bad.zip"
    with zipfile.ZipFile(archive, "w") as zf:
        zf.writestr("pkg/ok.txt", "ok")
        zf.writestr(zipfile.ZipInfo(name), "evil")
    with pytest.raises(UnsafeArchiveError, match="refusing to extract .*bad.zip.*member"):
        safe_extract(archive, tmp_path / "out" / "bad", progress=False)
    assert not (tmp_path / "evil.txt").exists() and not (tmp_path / "out" / "bad").exists()


def test_zip_symlink_outside_is_refused(tmp_path: Path) -> None:
    archive = tmp_path / "link.zip"
    info = zipfile.ZipInfo("pkg/passwd")
    info.external_attr = (stat.S_IFLNK | 0o777) << 16
    with zipfile.ZipFile(archive, "w") as zf:
        zf.writestr(info, "/etc/passwd")
    with pytest.raises(UnsafeArchiveError, match="links to an absolute path"):
        safe_extract(archive, tmp_path / "out", progress=False)


@pytest.mark.parametrize("suffix", [".tar.gz", ".tar.bz2", ".tar.xz", ".tar", ".zip"])
def test_good_archives_extract_with_marker(tmp_path: Path, pack, suffix: str) -> None:
    src = tmp_path / "pkg"
    (src / "sub").mkdir(parents=True)
    (src / "sub" / "a.txt").write_text("hello")
    archive = pack(src, tmp_path / f"pkg{suffix}")
    assert archive_stem(archive) == "pkg"
    dest = safe_extract(archive, tmp_path / "out" / "pkg", progress=False)
    assert (dest / "pkg" / "sub" / "a.txt").read_text() == "hello"
    assert (dest / MARKER).is_file()


def test_in_tree_symlink_is_allowed(tmp_path: Path) -> None:
    archive = _tar_with(tmp_path / "ok.tar.gz", _link("pkg/alias.txt", "ok.txt"))
    dest = safe_extract(archive, tmp_path / "out", progress=False)
    assert (dest / "pkg" / "alias.txt").read_text() == "ok"


def test_rerun_skips_and_interrupted_run_restarts(tmp_path: Path, pack,
                                                  monkeypatch: pytest.MonkeyPatch) -> None:
    src = tmp_path / "pkg"
    src.mkdir()
    (src / "a.txt").write_text("a")
    archive = pack(src, tmp_path / "pkg.tar.gz")
    dest = tmp_path / "out" / "pkg"

    def interrupted(*args: object) -> None:
        raise KeyboardInterrupt

    monkeypatch.setattr(base, "_extract_tar", interrupted)
    with pytest.raises(KeyboardInterrupt):
        safe_extract(archive, dest, progress=False)
    assert not dest.exists() and list(dest.parent.iterdir()) == []
    monkeypatch.undo()

    safe_extract(archive, dest, progress=False)
    stamp = os.stat(dest / MARKER).st_mtime_ns
    monkeypatch.setattr(base, "_extract_tar", interrupted)  # would fail if it extracted again
    assert safe_extract(archive, dest, progress=False) == dest
    assert os.stat(dest / MARKER).st_mtime_ns == stamp


def test_foreign_destination_and_non_archive(tmp_path: Path) -> None:
    (tmp_path / "taken").mkdir()
    junk = tmp_path / "junk.tar.gz"
    junk.write_bytes(b"not an archive at all")
    with pytest.raises(RecipeError, match="not a completed extraction"):
        safe_extract(junk, tmp_path / "taken", progress=False)
    with pytest.raises(RecipeError, match="not a tar or zip archive"):
        safe_extract(junk, tmp_path / "new", progress=False)
