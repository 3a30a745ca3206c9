"""Streaming embeddings: chunked reads equal whole-file embeddings; embed_files output format."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
import torch

from pocketear.audio.io import load_audio
from pocketear.export import embed_files, load_embedder
from pocketear.export.runtime import Embedder, Framing
from pocketear.export.stream import stream_clip_embedding, stream_frame_embeddings
from pocketear.model import Pretrained, segment

SR = 16000


@pytest.fixture(scope="module")
def emb(pre: Pretrained) -> Embedder:
    return load_embedder(pre)


def _signal(seconds: float, sr: int = SR, seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    t = np.arange(int(seconds * sr)) / sr
    wave = 0.3 * np.sin(2 * np.pi * (300 + 200 * np.sin(0.3 * t)) * t)
    return (wave + 0.05 * rng.standard_normal(t.size)).astype(np.float32)


def test_clip_windows_mirror_model_segment() -> None:
    fr = Framing(SR, 15600, 15360, 160, 400, 96)
    for n in (15600, 15759, 15760, 40000, 30720 + 240, 10 * 15360 + 999):
        t = fr.num_frames(n)
        starts = fr.clip_starts(n)
        ref = segment(torch.arange(t, dtype=torch.float32)[:, None].expand(t, 2), 96)[:, 0, 0]
        assert np.array_equal(starts // 160, ref.numpy().astype(np.int64)), n
    assert fr.clip_starts(15000) is None  # shorter than a window: the model pads in log-mel
    centres, times = fr.frame_centres(int(2.345 * SR), 50.0)
    assert times[0] == 0 and times[-1] <= 2345 and len(times) == 47
    assert np.array_equal(centres, (times * 16).astype(np.int64))


def test_streamed_clip_and_frames_equal_whole_file(emb: Embedder, pre: Pretrained,
                                                   tmp_path: Path) -> None:
    wave = _signal(31.3)
    path = tmp_path / "long.wav"
    sf.write(path, wave, SR, subtype="FLOAT")
    whole = pre.embed(wave)
    streamed = stream_clip_embedding(emb, path, chunk_seconds=4.0)  # 8 chunks
    assert np.abs(streamed - whole).max() < 1e-5
    assert np.abs(emb.embed(wave) - whole).max() < 1e-5
    frames, times = stream_frame_embeddings(emb, path, hop_ms=250.0, chunk_seconds=3.0)
    ref_frames, ref_times = emb.embed_frames(wave, hop_ms=250.0)
    assert np.array_equal(times, ref_times) and times[-1] <= 31300
    assert np.abs(frames - ref_frames).max() < 1e-5


def test_resampled_file_streams_close_to_whole_file(emb: Embedder, tmp_path: Path) -> None:
    path = tmp_path / "cd.wav"
    sf.write(path, _signal(20.0, sr=44100), 44100, subtype="FLOAT")
    whole = emb.embed(load_audio(path, SR))
    streamed = stream_clip_embedding(emb, path, chunk_seconds=3.0)
    cos = float(streamed @ whole / (np.linalg.norm(streamed) * np.linalg.norm(whole)))
    assert cos > 0.9999 and np.abs(streamed - whole).max() < 1e-3


def test_embed_files_npz_clips_frames_and_skips(emb: Embedder, pre: Pretrained,
                                                tmp_path: Path) -> None:
    folder = tmp_path / "in"
    folder.mkdir()
    for i, seconds in enumerate((0.2, 1.0, 3.7)):
        sf.write(folder / f"a{i}.wav", _signal(seconds, seed=i), SR)
    (folder / "broken.wav").write_bytes(b"RIFF....not audio")
    with pytest.warns(UserWarning, match="broken.wav"):
        rep = embed_files(emb, [folder], tmp_path / "clips.npz", progress=False)
    assert rep["embedded"] == 3 and [Path(p).name for p, _ in rep["skipped"]] == ["broken.wav"]
    data = np.load(tmp_path / "clips.npz")
    assert data["embeddings"].shape == (3, 128) and data["embeddings"].dtype == np.float32
    names = [Path(p).name for p in data["paths"]]
    assert names == ["a0.wav", "a1.wav", "a2.wav"]
    expected = pre.embed(load_audio(folder / "a2.wav"))
    assert np.abs(data["embeddings"][2] - expected).max() < 1e-5

    files = [folder / "a0.wav", folder / "a2.wav"]
    rep = embed_files(emb, files, tmp_path / "frames.npz", hop_ms=100, frames=True,
                      progress=False)
    data = np.load(tmp_path / "frames.npz")
    counts = np.bincount(data["file_index"])
    assert list(counts) == [3, 38] and rep["rows"] == 41  # 0..200 ms, 0..3700 ms every 100
    assert data["timestamps_ms"][:4].tolist() == [0.0, 100.0, 200.0, 0.0]
    assert data["embeddings"].shape == (41, 128)


def test_parquet_needs_pyarrow(emb: Embedder, tmp_path: Path) -> None:
    sf.write(tmp_path / "x.wav", _signal(1.0), SR)
    try:
        import pyarrow  # noqa: F401
    except ImportError:
        with pytest.raises(ImportError, match="pyarrow"):
            embed_files(emb, [tmp_path / "x.wav"], tmp_path / "x.parquet", progress=False)
        return
    embed_files(emb, [tmp_path / "x.wav"], tmp_path / "x.parquet", progress=False)
    assert (tmp_path / "x.parquet").stat().st_size > 0
