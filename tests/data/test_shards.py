import gc
import io
import json
import tarfile
from pathlib import Path

import fsspec
import numpy as np
import pytest
import torch
from torch.utils.data import DataLoader

from pocketear.audio.io import load_audio
from pocketear.cli import main
from pocketear.data.shard_stream import ShardStream
from pocketear.data.shards import (
    expand_urls,
    is_shard_source,
    parse_size,
    read_index,
    write_shards,
)
from pocketear.errors import InvalidValue, MissingPath, PathExists
from pocketear.frontends.logmel import LogMel, LogMelConfig, compute_stats
from tests.conftest import write_tone, write_tone_manifest

N_CLIPS = 24


@pytest.fixture(scope="module")
def corpus(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """24 half-second tone clips listed in ``labels.csv`` (path,label,split)."""
    return write_tone_manifest(tmp_path_factory.mktemp("corpus"), N_CLIPS, seconds=0.5)


@pytest.fixture(scope="module")
def shards(corpus: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The corpus in ~50 kB shards (several of them), log-mels stored too."""
    out = tmp_path_factory.mktemp("shards")
    write_shards(corpus, out, max_bytes=50_000, store_mels=True, progress=False)
    return out


def _reference(corpus: Path) -> dict[str, np.ndarray]:
    """Path -> log-mel computed as ``build_cache`` does."""
    fe = LogMel()
    with torch.no_grad():
        return {line.split(",")[0]: fe(torch.from_numpy(load_audio(corpus.parent / line.split(
            ",")[0]))[None], normalise=False)[0, 0].numpy()
            for line in corpus.read_text().splitlines()[1:]}


def _keys(stream: ShardStream) -> list[str]:
    return [s["key"] for s in stream]


@pytest.mark.parametrize(("text", "size"), [
    ("1GB", 10**9), ("500MB", 500 * 10**6), ("64kB", 64_000), ("1e9", 10**9), ("123", 123),
    ("2GiB", 2 * 2**30), ("1.5 MiB", 3 * 2**19), ("10k", 10_000),
])
def test_parse_size(text: str, size: int) -> None:
    assert parse_size(text) == size


@pytest.mark.parametrize("text", ["", "lots", "1XB", "-5MB", "0", "1GB2"])
def test_parse_size_rejects_junk(text: str) -> None:
    with pytest.raises(InvalidValue, match="size"):
        parse_size(text)


def test_sources_and_urls(shards: Path, corpus: Path) -> None:
    index = read_index(shards)
    assert index is not None and len(index["shards"]) >= 4
    pattern = f"{shards}/{index['pattern']}"
    assert is_shard_source(pattern) and is_shard_source(str(shards))
    assert is_shard_source(f"{shards}/000000.tar") and is_shard_source("s3://b/{0..3}.tar")
    assert not is_shard_source(str(corpus)) and not is_shard_source(str(corpus.parent))
    assert expand_urls(pattern) == expand_urls(str(shards)) == [
        f"{shards}/{name}" for name in index["shards"]]
    assert expand_urls("s3://bucket/{00..02}.tar") == [f"s3://bucket/{i:02d}.tar" for i in range(3)]
    with pytest.raises(MissingPath, match=r"/0000\d\d.tar: no such shard \(\d+ of 100 missing"):
        expand_urls(f"{shards}/{{000000..000099}}.tar")
    with pytest.raises(InvalidValue, match="not tar shards"):
        expand_urls(str(corpus.parent))
    assert read_index(expand_urls(pattern)) == index and read_index([]) is None


def test_round_trip_same_clips_features_and_stats(shards: Path, corpus: Path,
                                                  tmp_path: Path) -> None:
    ref = _reference(corpus)
    index = read_index(shards)
    assert index["clips"] == N_CLIPS and index["skipped"] == [] and index["mels"]
    assert index["frontend_key"] == LogMelConfig().key()
    mean, std = compute_stats(ref.values())
    np.testing.assert_allclose(index["mean"], mean, rtol=1e-4, atol=1e-4)
    np.testing.assert_allclose(index["std"], std, rtol=1e-4, atol=1e-4)

    stored = ShardStream(str(shards), LogMelConfig(), shuffle=8)
    assert stored.stored_mels
    no_mels = tmp_path / "flac"
    write_shards(corpus, no_mels, max_bytes=50_000, progress=False)
    decoded = ShardStream(str(no_mels), LogMelConfig(), shuffle=8)
    assert not decoded.stored_mels
    for stream, atol in ((stored, 2e-2), (decoded, 1e-3)):  # float16 storage; lossless FLAC
        samples = list(stream)
        assert len(samples) == N_CLIPS
        assert sorted(s["key"] for s in samples) == [f"{i:09d}" for i in range(N_CLIPS)]
        for s in samples:
            rel = str(Path(s["meta"]["path"]).relative_to(corpus.parent))
            assert s["meta"]["label"] in ("low", "high") and s["meta"]["duration"] == 0.5
            assert s["mel"].dtype == np.float32
            np.testing.assert_allclose(s["mel"], ref[rel], atol=atol)
    other = list(ShardStream(str(shards), LogMelConfig(n_mels=40), shuffle=0))
    assert len(other) == N_CLIPS and other[0]["mel"].shape[1] == 40  # computed from the FLAC


def test_order_is_seeded(shards: Path) -> None:
    first = _keys(ShardStream(str(shards), LogMelConfig(), seed=3, shuffle=6))
    assert first == _keys(ShardStream(str(shards), LogMelConfig(), seed=3, shuffle=6))
    assert first != _keys(ShardStream(str(shards), LogMelConfig(), seed=4, shuffle=6))
    assert first != _keys(ShardStream(str(shards), LogMelConfig(), seed=3, epoch=1, shuffle=6))
    assert sorted(first) == [f"{i:09d}" for i in range(N_CLIPS)]


def test_ranks_take_disjoint_shards_and_start_shard_resumes(shards: Path) -> None:
    urls = expand_urls(str(shards))
    parts = [ShardStream(urls, LogMelConfig(), rank=r, world=2, shuffle=0) for r in (0, 1)]
    got = [{s["shard"] for s in part} for part in parts]
    assert got[0].isdisjoint(got[1]) and got[0] | got[1] == set(range(len(urls)))
    assert [part.shards() for part in parts] == [
        [int(i) for i in np.random.default_rng([0, 5, 0]).permutation(len(urls))[r::2]]
        for r in (0, 1)]
    whole = ShardStream(urls, LogMelConfig(), shuffle=0)
    resumed = ShardStream(urls, LogMelConfig(), shuffle=0, start_shard=2)
    assert resumed.shards() == whole.shards()[2:]
    assert {s["shard"] for s in resumed} == set(whole.shards()[2:])
    with pytest.raises(InvalidValue, match=rf"{len(urls)} shards cannot feed 9 ranks × 1 workers"):
        next(iter(ShardStream(urls, LogMelConfig(), rank=0, world=9)))


def test_dataloader_workers_split_the_shards(shards: Path) -> None:
    stream = ShardStream(str(shards), LogMelConfig(), shuffle=4)
    loader = DataLoader(stream, batch_size=None, num_workers=2)
    keys = [s["key"] for s in loader]
    assert sorted(keys) == [f"{i:09d}" for i in range(N_CLIPS)]


def test_fsspec_url(shards: Path) -> None:
    fs = fsspec.filesystem("memory")
    for path in shards.iterdir():
        fs.pipe(f"/test-shards/{path.name}", path.read_bytes())
    try:
        index = read_index("memory://test-shards")
        assert index == read_index(shards)
        stream = ShardStream(f"memory://test-shards/{index['pattern']}", LogMelConfig())
        assert stream.stored_mels and len(_keys(stream)) == N_CLIPS
        assert is_shard_source("memory://test-shards")
    finally:
        fs.rm("/test-shards", recursive=True)


def _rewrite(tar_path: Path, replace: dict[str, bytes]) -> None:
    """Rewrite a tar with some members' payloads replaced."""
    with tarfile.open(tar_path) as tar:
        members = [(m, tar.extractfile(m).read()) for m in tar.getmembers()]
    tar_path.chmod(0o644)
    with tarfile.open(tar_path, "w") as tar:
        for info, data in members:
            data = replace.get(info.name, data)
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))


def test_corrupt_members_are_skipped_and_counted(corpus: Path, tmp_path: Path,
                                                 capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "s"
    index = write_shards(corpus, out, max_bytes=50_000, progress=False)
    first, last = out / index["shards"][0], out / index["shards"][1]
    with tarfile.open(first) as tar:
        key = tar.getnames()[0].split(".")[0]
    _rewrite(first, {f"{key}.flac": b"not a flac" * 50})
    with tarfile.open(last) as tar:
        members = tar.getmembers()
        assert len(members) >= 6
        cut = members[4]  # the third sample's flac (members: flac, json per sample)
        in_last = len(members) // 2
    with open(last, "r+b") as f:  # cut inside a member's data: tarfile notices
        f.truncate(cut.offset_data + cut.size // 2)
    skipped: list = []
    keys = _keys(ShardStream(str(out), LogMelConfig(), skipped=skipped))
    assert key not in keys and len(keys) == N_CLIPS - 1 - (in_last - 2)
    assert members[0].name.split(".")[0] in keys  # the samples before the cut still stream
    cut_key = cut.name.split(".")[0]
    assert sorted((url, k) for url, k, _ in skipped) == sorted(
        [(str(first), key), (str(last), cut_key)])
    reasons = {k: reason for _, k, reason in skipped}
    assert "unreadable tar, the rest of the shard skipped" in reasons[cut_key]
    err = capsys.readouterr().err
    assert f"skipped: {first}/{key}: " in err and f"skipped: {last}/{cut_key}: " in err


def _rss_mb() -> float:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    pytest.skip("no /proc/self/status")


def test_memory_is_bounded_by_the_shuffle_buffer(tmp_path: Path) -> None:
    for i in range(300):
        write_tone(tmp_path / "a" / f"{i:03d}.wav", 200 + 7 * i, seconds=0.25, seed=i)
    index = write_shards(tmp_path / "a", tmp_path / "s", max_bytes=400_000, progress=False)
    assert index["clips"] == 300 and len(index["shards"]) >= 4
    # A 0.5 ms hop and 128 bins make each clip's features 0.25 MB, so the corpus decodes to
    # ~75 MB: holding it would grow RSS by ~65 MB after the first 10 %, twice the 30 MB margin,
    # while the buffer holds 30 clips (7.5 MB). The margin absorbs allocator noise
    # (glibc arenas, torch's lazily created kernels and thread pools).
    cfg = LogMelConfig(hop_ms=0.5, n_mels=128)
    early = None
    n = 0
    for n, sample in enumerate(ShardStream(str(tmp_path / "s"), cfg, shuffle=30), start=1):
        assert sample["mel"].shape[1] == 128
        if n == 30:
            gc.collect()
            early = _rss_mb()
    del sample
    gc.collect()
    assert n == 300 and early is not None
    assert _rss_mb() < early + 30


def test_refuses_existing_shards_and_undecodable_corpora(corpus: Path, tmp_path: Path) -> None:
    out = tmp_path / "s"
    write_shards(corpus, out, max_bytes=10**9, progress=False)
    with pytest.raises(PathExists, match="already holds shards; pass --overwrite"):
        write_shards(corpus, out, progress=False)
    (out / "shards.json").unlink()
    with pytest.raises(PathExists, match="unfinished write"):
        write_shards(corpus, out, progress=False)
    index = write_shards(corpus, out, max_bytes=50_000, progress=False, overwrite=True)
    assert sorted(p.name for p in out.iterdir()) == sorted([*index["shards"], "shards.json"])
    bad = tmp_path / "bad"
    bad.mkdir()
    (bad / "x.wav").write_bytes(b"RIFF garbage" * 10)
    with pytest.raises(InvalidValue, match="none of the 1 files could be decoded"):
        write_shards(bad, tmp_path / "empty", progress=False)
    assert list((tmp_path / "empty").iterdir()) == []


def test_cli_shard(corpus: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "s"
    rc = main(["shard", str(corpus), "--out", str(out), "--size", "50kB", "--mels",
               "--no-progress"])
    assert rc == 0
    index = json.loads((out / "shards.json").read_text())
    assert index["mels"] and index["clips"] == N_CLIPS and len(index["shards"]) > 1
    line = capsys.readouterr().out.strip().splitlines()[-1]
    assert f"{N_CLIPS} clips, {len(index['shards'])} shard(s)" in line
    assert "skipped 0 file(s)" in line and f"{index['bytes']} bytes" in line
    assert main(["shard", str(corpus), "--out", str(out)]) == 2
    assert "already holds shards" in capsys.readouterr().err
    assert main(["shard", str(corpus), "--out", str(tmp_path / "t"), "--size", "big"]) == 2
    assert "expected a number" in capsys.readouterr().err
