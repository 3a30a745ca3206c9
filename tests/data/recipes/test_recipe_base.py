"""Recipe plumbing: checksums, downloads (file:// and resumed HTTP), splits, manifests."""

from __future__ import annotations

import hashlib
import http.server
import threading
from collections import Counter
from collections.abc import Iterator
from pathlib import Path

import pytest

from pocketear.data.corpus import Corpus
from pocketear.data.recipes import prepare, recipe_options
from pocketear.data.recipes.base import (
    ChecksumError,
    RecipeError,
    download,
    fetch_sources,
    hash_split,
    ordered_split,
    parse_fractions,
    verify_checksum,
    write_manifest,
)
from pocketear.registry import available, describe

PAYLOAD = bytes(range(256)) * 400  # 100 kB


def test_every_recipe_is_registered_with_doc_and_options() -> None:
    names = available("recipe")
    for name in ("fsdd", "speech_commands", "esc50", "librispeech_spk", "nsynth", "voxforge",
                 "folder"):
        assert name in names
        assert describe("recipe", name)
        assert "checksum" in recipe_options(name)
    with pytest.raises(RecipeError, match="no recipe named 'nope'"):
        prepare("nope", "x", "y")


def test_verify_checksum_md5_sha256_and_mismatch(tmp_path: Path) -> None:
    f = tmp_path / "a.tar.gz"
    f.write_bytes(PAYLOAD)
    verify_checksum(f, hashlib.md5(PAYLOAD).hexdigest())
    verify_checksum(f, "SHA256:" + hashlib.sha256(PAYLOAD).hexdigest().upper())
    wrong = "0" * 64
    with pytest.raises(ChecksumError, match=r"checksum mismatch for .*a.tar.gz: expected sha256 "
                       r"0{64}, got [0-9a-f]{64}; the download is corrupt or a different "
                       r"version: delete it and download again"):
        verify_checksum(f, wrong)
    with pytest.raises(RecipeError, match="not an md5"):
        verify_checksum(f, "abc")


def test_checksum_mismatch_stops_before_extraction(tmp_path: Path, pack, write_clip) -> None:
    write_clip(tmp_path / "fsdd" / "recordings" / "1_jackson_7.wav")
    archive = pack(tmp_path / "fsdd", tmp_path / "fsdd.zip")
    out = tmp_path / "out"
    with pytest.raises(ChecksumError, match="checksum mismatch for .*fsdd.zip"):
        prepare("fsdd", str(archive), out, progress=False, checksum="f" * 32)
    assert not (out / "extracted" / "fsdd").exists() and not (out / "manifest.csv").exists()
    good = hashlib.sha256(archive.read_bytes()).hexdigest()
    assert prepare("fsdd", str(archive), out, progress=False, checksum=good).is_file()


def test_download_file_url(tmp_path: Path, write_clip, pack) -> None:
    src = tmp_path / "remote" / "data.bin"
    src.parent.mkdir()
    src.write_bytes(PAYLOAD)
    got = download(src.as_uri(), tmp_path / "dl", progress=False)
    assert got == tmp_path / "dl" / "data.bin" and got.read_bytes() == PAYLOAD
    (tmp_path / "dl" / "other.bin.part").write_bytes(b"garbage")  # file:// ignores Range
    src.rename(src.with_name("other.bin"))
    assert download(src.with_name("other.bin").as_uri(), tmp_path / "dl",
                    progress=False).read_bytes() == PAYLOAD
    # a whole recipe from a file:// URL: downloads into out/downloads, then as a local archive
    write_clip(tmp_path / "fsdd" / "recordings" / "3_theo_12.wav")
    archive = pack(tmp_path / "fsdd", tmp_path / "remote" / "fsdd.zip")
    manifest = prepare("fsdd", archive.as_uri(), tmp_path / "out", progress=False)
    assert (tmp_path / "out" / "downloads" / "fsdd.zip").is_file()
    assert Corpus.open(manifest).column("label") == ["3"]


class _RangeHandler(http.server.BaseHTTPRequestHandler):
    requests: list[str | None] = []

    def do_GET(self) -> None:  # noqa: N802 - http.server's API
        rng = self.headers.get("Range")
        type(self).requests.append(rng)
        start = int(rng.split("=")[1].rstrip("-")) if rng else 0
        body = PAYLOAD[start:]
        self.send_response(206 if rng else 200)
        if rng:
            self.send_header("Content-Range", f"bytes {start}-{len(PAYLOAD) - 1}/{len(PAYLOAD)}")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args: object) -> None:
        pass


@pytest.fixture
def server() -> Iterator[str]:
    _RangeHandler.requests = []
    httpd = http.server.HTTPServer(("127.0.0.1", 0), _RangeHandler)
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{httpd.server_port}"
    httpd.shutdown()
    httpd.server_close()


def test_download_resumes_with_range(tmp_path: Path, server: str) -> None:
    (tmp_path / "data.bin.part").write_bytes(PAYLOAD[:1000])
    got = download(f"{server}/data.bin", tmp_path, progress=False)
    assert got.read_bytes() == PAYLOAD
    assert _RangeHandler.requests == ["bytes=1000-"]
    assert not (tmp_path / "data.bin.part").exists()
    download(f"{server}/data.bin", tmp_path, progress=False)  # already there: no request
    assert len(_RangeHandler.requests) == 1


def test_unreachable_url_gives_clear_error(tmp_path: Path) -> None:
    with pytest.raises(RecipeError, match="cannot download .*pass its local path"):
        download("http://127.0.0.1:9/none.tar.gz", tmp_path, progress=False, timeout=2)


def test_fetch_sources_errors(tmp_path: Path) -> None:
    with pytest.raises(RecipeError, match="no such file or folder"):
        fetch_sources(str(tmp_path / "missing.zip"), tmp_path)
    with pytest.raises(RecipeError, match="1 checksum"):
        fetch_sources(f"{tmp_path},{tmp_path}", tmp_path, checksum="0" * 32)


def test_splits_are_deterministic_and_exact() -> None:
    fr = parse_fractions("80/10/10")
    assert fr == pytest.approx((0.8, 0.1, 0.1))
    assert parse_fractions("3,1,1") == pytest.approx((0.6, 0.2, 0.2))
    with pytest.raises(RecipeError, match="three"):
        parse_fractions("1/2")
    keys = [f"utt{i}" for i in range(50)]
    split = ordered_split(keys, fr)
    assert Counter(split.values()) == {"train": 40, "valid": 5, "test": 5}
    assert split == ordered_split(reversed(keys), fr)
    assert ordered_split(keys, fr, salt="x") != split
    counts = Counter(hash_split(f"spk{i}", fr) for i in range(2000))
    assert 1500 < counts["train"] < 1700 and counts["valid"] > 150 and counts["test"] > 150


def test_write_manifest_atomic_relative_and_readable(tmp_path: Path, write_clip) -> None:
    inside = write_clip(tmp_path / "out" / "a" / "x.wav")
    outside = write_clip(tmp_path / "elsewhere" / "y.wav")
    rows = [{"path": inside, "label": "a", "split": "train", "group": "g", "extra": 1},
            {"path": outside, "label": "b", "split": "test", "group": "h"}]
    manifest = write_manifest(tmp_path / "out" / "manifest.csv", rows, ("extra",))
    lines = manifest.read_text().splitlines()
    assert lines[0] == "path,label,split,group,extra"
    assert "a/x.wav,a,train,g,1" in lines  # inside the manifest's folder: relative
    assert f"{outside},b,test,h," in lines  # elsewhere (a folder used in place): absolute
    assert [p.name for p in manifest.parent.iterdir() if p.name.startswith(".tmp")] == []
    assert sorted(Corpus.open(manifest).column("group")) == ["g", "h"]
    with pytest.raises(RecipeError, match="no audio found"):
        write_manifest(tmp_path / "empty.csv", [])


def test_unknown_option_is_rejected(tmp_path: Path) -> None:
    with pytest.raises(RecipeError, match="has no option.*colour.*options: checksum"):
        prepare("fsdd", str(tmp_path), tmp_path / "out", progress=False, colour="red")
