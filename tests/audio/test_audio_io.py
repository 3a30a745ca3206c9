"""Tests for pocketear.audio.io: every format a corpus may contain, and every way a file can be bad.

All audio is synthesised here (≤ 1 s) so the tests need no fixtures and run in a few seconds.
"""

from __future__ import annotations

import os
import pickle
import warnings
from pathlib import Path

import av
import numpy as np
import pytest
import soundfile as sf

from pocketear.audio import (
    AUDIO_EXTENSIONS,
    SAMPLE_RATE,
    AudioError,
    LoadReport,
    audio_duration,
    iter_audio,
    load_audio,
    save_wav,
)
from pocketear.audio.io import report_skipped


def sine(freq: float, seconds: float, rate: int, amp: float = 0.5) -> np.ndarray:
    t = np.arange(int(round(seconds * rate))) / rate
    return (amp * np.sin(2 * np.pi * freq * t)).astype(np.float32)


def peak_hz(audio: np.ndarray, rate: int) -> float:
    """Frequency of the strongest FFT bin (Hann window), to check pitch survives decode/resample."""
    spectrum = np.abs(np.fft.rfft(audio * np.hanning(len(audio))))
    return float(np.fft.rfftfreq(len(audio), 1 / rate)[np.argmax(spectrum)])


def encode_pyav(path: Path, container: str, codec: str, audio: np.ndarray, rate: int) -> Path:
    """Encode mono float audio with FFmpeg (what phones produce: AAC in m4a, Opus in webm)."""
    with av.open(str(path), "w", format=container) as out:
        stream = out.add_stream(codec, rate=rate)
        stream.layout = "mono"
        stream.bit_rate = 256000  # FFmpeg's AAC encoder glitches on pure tones at its low default
        for i in range(0, len(audio), 960):
            chunk = audio[None, i : i + 960]
            frame = av.AudioFrame.from_ndarray(chunk, format="fltp", layout="mono")
            frame.sample_rate = rate
            frame.pts = i
            for packet in stream.encode(frame):
                out.mux(packet)
        for packet in stream.encode(None):
            out.mux(packet)
    return path


def write_bytes(path: Path, data: bytes) -> Path:
    path.write_bytes(data)
    return path


# --------------------------------------------------------------------------------------------
# Decoding and conversion
# --------------------------------------------------------------------------------------------


def test_constants() -> None:
    assert SAMPLE_RATE == 16000
    assert isinstance(AUDIO_EXTENSIONS, frozenset)
    assert {"wav", "flac", "mp3", "m4a", "webm", "opus", "ogg"} <= AUDIO_EXTENSIONS
    assert all(ext == ext.lower() and not ext.startswith(".") for ext in AUDIO_EXTENSIONS)


def test_stereo_44k_to_mono_16k(tmp_path: Path) -> None:
    left = sine(1000, 0.5, 44100)
    path = tmp_path / "stereo.flac"
    sf.write(path, np.stack([left, 0.5 * left], axis=1), 44100)  # mean of channels = 0.75 * left

    audio = load_audio(path)

    assert audio.dtype == np.float32 and audio.ndim == 1
    assert abs(len(audio) - 8000) <= 1
    assert abs(peak_hz(audio, SAMPLE_RATE) - 1000) <= 2
    assert np.abs(audio[1000:-1000]).max() == pytest.approx(0.375, abs=0.01)


def test_int16_wav_is_scaled_exactly(tmp_path: Path) -> None:
    ints = (sine(440, 0.25, 16000) * 32767).astype(np.int16)
    ints[:2] = [-32768, 32767]
    path = tmp_path / "int16.wav"
    sf.write(path, ints, 16000, subtype="PCM_16")

    audio = load_audio(path)

    np.testing.assert_array_equal(audio, ints.astype(np.float32) / 32768)
    assert audio.min() == -1.0


def test_float_wav_is_clipped(tmp_path: Path) -> None:
    data = sine(440, 0.25, 16000, amp=1.05)
    path = tmp_path / "float.wav"
    sf.write(path, data, 16000, subtype="FLOAT")

    audio = load_audio(path)

    assert audio.max() == 1.0 and audio.min() == -1.0
    inside = np.abs(data) < 1
    np.testing.assert_array_equal(audio[inside], data[inside])


def test_8k_upsampled_to_16k(tmp_path: Path) -> None:
    path = tmp_path / "narrowband.wav"
    sf.write(path, sine(300, 0.5, 8000), 8000, subtype="PCM_16")

    audio = load_audio(path)

    assert abs(len(audio) - 8000) <= 1
    assert abs(peak_hz(audio, SAMPLE_RATE) - 300) <= 2


def test_custom_output_rate(tmp_path: Path) -> None:
    path = tmp_path / "a.wav"
    sf.write(path, sine(440, 0.5, 16000), 16000)
    audio = load_audio(path, 22050)
    assert abs(len(audio) - 11025) <= 1
    assert abs(peak_hz(audio, 22050) - 440) <= 3


def _write_sf(fmt: str, subtype: str):
    def write(path: Path, audio: np.ndarray, rate: int) -> None:
        sf.write(path, audio, rate, format=fmt, subtype=subtype)

    return write


def _needs_sf(fmt: str, subtype: str):
    ok = fmt in sf.available_formats() and subtype in sf.available_subtypes(fmt)
    return pytest.mark.skipif(not ok, reason=f"libsndfile here cannot write {fmt}/{subtype}")


# (file name, writer, source rate, expected-length tolerance in seconds).
# Lossy codecs add/trim priming frames; the ADTS stream has no gapless info at all.
FORMATS = [
    pytest.param("a.flac", _write_sf("FLAC", "PCM_16"), 44100, 0.0, id="flac"),
    pytest.param(
        "a.ogg", _write_sf("OGG", "VORBIS"), 44100, 0.01, id="ogg-vorbis",
        marks=_needs_sf("OGG", "VORBIS"),
    ),
    pytest.param(
        "a.opus", _write_sf("OGG", "OPUS"), 48000, 0.01, id="ogg-opus",
        marks=_needs_sf("OGG", "OPUS"),
    ),
    pytest.param(
        "a.mp3", _write_sf("MP3", "MPEG_LAYER_III"), 44100, 0.06, id="mp3",
        marks=_needs_sf("MP3", "MPEG_LAYER_III"),
    ),
    pytest.param(
        "a.m4a", lambda p, a, r: encode_pyav(p, "mp4", "aac", a, r), 48000, 0.07, id="m4a-aac"
    ),
    pytest.param(
        "a.webm", lambda p, a, r: encode_pyav(p, "webm", "libopus", a, r), 48000, 0.03,
        id="webm-opus",
    ),
    # Real corpora contain AAC named .mp3: decoding must follow the content, not the name.
    pytest.param(
        "aac_in_disguise.mp3", lambda p, a, r: encode_pyav(p, "adts", "aac", a, r), 44100, 0.07,
        id="adts-aac-named-mp3",
    ),
]  # fmt: skip


@pytest.mark.parametrize(("name", "write", "rate", "tol"), FORMATS)
def test_formats_decode_to_contract(tmp_path: Path, name, write, rate: int, tol: float) -> None:
    path = tmp_path / name
    write(path, sine(440, 0.5, rate), rate)

    audio = load_audio(path)

    assert audio.dtype == np.float32 and audio.ndim == 1
    assert np.abs(audio).max() <= 1.0
    assert abs(len(audio) / SAMPLE_RATE - 0.5) <= tol + 1 / SAMPLE_RATE
    assert abs(peak_hz(audio[:7680], SAMPLE_RATE) - 440) <= 3
    assert np.sqrt(np.mean(audio[2000:6000] ** 2)) == pytest.approx(0.5 / np.sqrt(2), abs=0.02)
    assert audio_duration(path) == pytest.approx(0.5, abs=tol + 0.03)


def test_id3_tagged_aac_named_mp3(tmp_path: Path) -> None:
    adts = encode_pyav(tmp_path / "x.aac", "adts", "aac", sine(440, 0.5, 48000), 48000)
    tag = b"ID3\x04\x00\x00\x00\x00\x00\x0a" + b"\x00" * 10  # ID3v2.4, 10 bytes of padding
    path = write_bytes(tmp_path / "podcast.mp3", tag + adts.read_bytes())

    audio = load_audio(path)

    assert abs(len(audio) / SAMPLE_RATE - 0.5) <= 0.07
    assert abs(peak_hz(audio[:7680], SAMPLE_RATE) - 440) <= 3


def test_pyav_fallback_without_sniffing(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Even for containers the sniffer does not know, libsndfile failing must fall back to PyAV."""
    from pocketear.audio import io

    path = encode_pyav(tmp_path / "a.m4a", "mp4", "aac", sine(440, 0.5, 48000), 48000)
    expected = load_audio(path)
    monkeypatch.setattr(io, "_ffmpeg_only", lambda _path: False)

    np.testing.assert_array_equal(load_audio(path), expected)
    assert audio_duration(path) == pytest.approx(0.5, abs=0.07)


# --------------------------------------------------------------------------------------------
# Windows and durations
# --------------------------------------------------------------------------------------------


def test_window_matches_slice_of_full_decode(tmp_path: Path) -> None:
    rng = np.random.default_rng(0)
    path = tmp_path / "noise.wav"
    sf.write(path, rng.uniform(-0.5, 0.5, 16000).astype(np.float32), 16000, subtype="FLOAT")

    full = load_audio(path)
    window = load_audio(path, offset_seconds=0.25, max_seconds=0.5)
    np.testing.assert_array_equal(window, full[4000:12000])

    tail = load_audio(path, offset_seconds=0.9, max_seconds=5.0)  # window runs past the end
    np.testing.assert_array_equal(tail, full[14400:])
    np.testing.assert_array_equal(load_audio(path, max_seconds=0.1), full[:1600])


def test_window_with_resampling_matches_interior(tmp_path: Path) -> None:
    path = tmp_path / "tone.flac"
    sf.write(path, sine(700, 1.0, 44100), 44100)

    full = load_audio(path)
    window = load_audio(path, offset_seconds=0.5, max_seconds=0.25)

    assert len(window) == 4000
    # Resampling a window has its own edge effects; the interior must agree with the full decode.
    np.testing.assert_allclose(window[200:-200], full[8200:11800], atol=1e-3)


def test_window_pyav_path_matches_slice(tmp_path: Path) -> None:
    path = encode_pyav(tmp_path / "a.m4a", "mp4", "aac", sine(440, 1.0, 16000), 16000)

    full = load_audio(path)
    window = load_audio(path, offset_seconds=0.3, max_seconds=0.2)
    np.testing.assert_array_equal(window, full[4800:8000])


def test_offset_past_end_raises(tmp_path: Path) -> None:
    path = tmp_path / "short.wav"
    sf.write(path, sine(440, 0.2, 16000), 16000)
    with pytest.raises(AudioError, match="offset"):
        load_audio(path, offset_seconds=1.0)


@pytest.mark.parametrize(
    "kwargs", [{"sample_rate": 0}, {"offset_seconds": -1.0}, {"max_seconds": 0.0}]
)
def test_invalid_arguments_are_value_errors(tmp_path: Path, kwargs) -> None:
    path = tmp_path / "a.wav"
    sf.write(path, sine(440, 0.1, 16000), 16000)
    with pytest.raises(ValueError):
        load_audio(path, **kwargs)


def test_audio_duration(tmp_path: Path) -> None:
    wav = tmp_path / "a.wav"
    sf.write(wav, np.zeros((33075, 2), np.float32), 44100)
    assert audio_duration(wav) == pytest.approx(0.75)

    empty = tmp_path / "empty.wav"
    sf.write(empty, np.zeros(0, np.float32), 16000)
    assert audio_duration(empty) == 0.0

    with pytest.raises(AudioError):
        audio_duration(write_bytes(tmp_path / "junk.wav", b"not audio at all" * 10))


# --------------------------------------------------------------------------------------------
# Bad files
# --------------------------------------------------------------------------------------------


def _missing(tmp_path: Path) -> Path:
    return tmp_path / "does_not_exist.wav"


def _random_bytes(tmp_path: Path) -> Path:
    rng = np.random.default_rng(1)
    return write_bytes(tmp_path / "corrupt.flac", rng.integers(0, 256, 4096, np.uint8).tobytes())


def _zero_bytes(tmp_path: Path) -> Path:
    return write_bytes(tmp_path / "zero_bytes.wav", b"")


def _zero_samples(tmp_path: Path) -> Path:
    path = tmp_path / "zero_samples.wav"
    sf.write(path, np.zeros(0, np.float32), 16000)
    return path


def _nan_samples(tmp_path: Path) -> Path:
    data = sine(440, 0.1, 16000)
    data[100] = np.nan
    path = tmp_path / "nan.wav"
    sf.write(path, data, 16000, subtype="FLOAT")
    return path


def _inf_samples(tmp_path: Path) -> Path:
    data = sine(440, 0.1, 44100)
    data[10] = -np.inf
    path = tmp_path / "inf.wav"
    sf.write(path, data, 44100, subtype="FLOAT")
    return path


def _text_file(tmp_path: Path) -> Path:
    return write_bytes(tmp_path / "notes.wav", b"meeting notes, definitely not audio\n" * 20)


def _folder(tmp_path: Path) -> Path:
    path = tmp_path / "folder.wav"
    path.mkdir()
    return path


def _video_only(tmp_path: Path) -> Path:
    path = tmp_path / "video_only.mp4"
    with av.open(str(path), "w", format="mp4") as out:
        stream = out.add_stream("mpeg4", rate=10)
        stream.width, stream.height, stream.pix_fmt = 32, 32, "yuv420p"
        for i in range(3):
            frame = av.VideoFrame.from_ndarray(np.zeros((32, 32, 3), np.uint8), format="rgb24")
            frame.pts = i
            for packet in stream.encode(frame):
                out.mux(packet)
        for packet in stream.encode(None):
            out.mux(packet)
    return path


BAD_FILES = {
    "missing": (_missing, "does not exist"),
    "random-bytes": (_random_bytes, ""),
    "zero-bytes": (_zero_bytes, "empty"),
    "zero-samples": (_zero_samples, "no audio samples"),
    "nan": (_nan_samples, "NaN"),
    "inf": (_inf_samples, "Inf"),
    "text-as-wav": (_text_file, "cannot be decoded"),
    "folder": (_folder, "not a regular file"),
    "video-only": (_video_only, "no audio stream"),
}


@pytest.mark.parametrize("kind", list(BAD_FILES))
def test_bad_files_raise_audio_error_naming_the_path(tmp_path: Path, kind: str) -> None:
    make, reason = BAD_FILES[kind]
    path = make(tmp_path)

    with pytest.raises(AudioError) as info:
        load_audio(path)

    err = info.value
    assert err.path == str(path)
    assert str(path) in str(err)
    assert reason in err.reason
    assert err.hint and err.hint in str(err)


def test_audio_error_is_picklable() -> None:
    err = pickle.loads(pickle.dumps(AudioError("/x/a.wav", "contains NaN or Inf samples")))
    assert isinstance(err, AudioError)
    assert err.path == "/x/a.wav" and "re-encode" in str(err).lower()


# --------------------------------------------------------------------------------------------
# iter_audio and LoadReport
# --------------------------------------------------------------------------------------------


def test_iter_audio_skips_bad_files_with_one_warning_each(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    good = []
    for i, rate in enumerate([16000, 44100, 8000]):
        path = tmp_path / f"good{i}.wav"
        sf.write(path, sine(440, 0.25, rate), rate)
        good.append(path)
    good.append(encode_pyav(tmp_path / "phone.m4a", "mp4", "aac", sine(440, 0.25, 48000), 48000))
    bad = [_random_bytes(tmp_path), _zero_bytes(tmp_path), _nan_samples(tmp_path)]
    bad.append(_missing(tmp_path))
    paths = [good[0], bad[0], bad[1], good[1], bad[2], good[2], bad[3], good[3]]

    report = LoadReport()
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        results = list(iter_audio(paths, report=report))

    assert [p for p, _ in results] == [str(p) for p in good]
    assert all(a.dtype == np.float32 and abs(len(a) - 4000) < 1200 for _, a in results)
    assert not caught  # one plain stderr line per skipped file, not a Python warning
    skipped = capsys.readouterr().err.splitlines()
    assert len(skipped) == len(bad)
    for line, path in zip(skipped, bad, strict=True):
        assert line.startswith(f"skipped: {path}: ") and len(line) > len(f"skipped: {path}: ")
    assert (report.loaded, report.skipped) == (4, 4)
    assert [p for p, _ in report.skipped_files] == [str(p) for p in bad]
    assert all(reason for _, reason in report.skipped_files)
    assert report.summary() == "loaded 4 files, skipped 4 (see warnings)"


def test_iter_audio_without_report_and_generators(tmp_path: Path,
                                                  capsys: pytest.CaptureFixture[str]) -> None:
    path = tmp_path / "a.wav"
    sf.write(path, sine(440, 0.1, 16000), 16000)
    out = list(iter_audio(p for p in [_zero_bytes(tmp_path), path]))
    assert [p for p, _ in out] == [str(path)]
    (line,) = capsys.readouterr().err.splitlines()
    assert line.startswith("skipped: ") and "zero_bytes" in line


def test_report_skipped_is_one_line(capsys: pytest.CaptureFixture[str]) -> None:
    line = report_skipped("a/b.wav", "decoder said:\n  invalid data\n")
    assert line == "skipped: a/b.wav: decoder said: invalid data"
    assert capsys.readouterr().err == line + "\n"


def test_load_report_summary() -> None:
    report = LoadReport()
    assert report.summary() == "loaded 0 files, skipped 0"
    report.record_loaded()
    assert report.summary() == "loaded 1 file, skipped 0"
    report.record_skipped(Path("/x/bad.wav"), "contains NaN or Inf samples")
    assert report.summary() == "loaded 1 file, skipped 1 (see warnings)"
    assert report.skipped_files == [("/x/bad.wav", "contains NaN or Inf samples")]


# --------------------------------------------------------------------------------------------
# save_wav
# --------------------------------------------------------------------------------------------


def test_save_wav_roundtrip_is_pcm16_and_atomic(tmp_path: Path) -> None:
    path = tmp_path / "sub" / "dir" / "out.wav"
    audio = sine(440, 0.5, 16000, amp=1.2)  # over range: must clip, not wrap around

    save_wav(path, audio, 16000)
    save_wav(path, audio, 16000)  # overwriting an existing file is fine

    info = sf.info(path)
    assert (info.format, info.subtype) == ("WAV", "PCM_16")
    assert (info.samplerate, info.frames) == (16000, 8000)
    loaded = load_audio(path)
    np.testing.assert_allclose(loaded, np.clip(audio, -1, 1), atol=1 / 32767)
    assert os.listdir(path.parent) == ["out.wav"]  # no temp files left behind


def test_save_wav_failure_leaves_nothing(tmp_path: Path) -> None:
    path = tmp_path / "out.wav"
    with pytest.raises(ValueError):
        save_wav(path, np.array([0.0, np.nan]), 16000)
    with pytest.raises(ValueError):
        save_wav(path, np.zeros((2, 2, 2)), 16000)
    assert os.listdir(tmp_path) == []


def test_save_wav_stereo(tmp_path: Path) -> None:
    path = tmp_path / "stereo.wav"
    save_wav(path, np.stack([sine(440, 0.1, 16000), np.zeros(1600, np.float32)], axis=1), 16000)
    assert sf.info(path).channels == 2
    assert abs(load_audio(path)).max() == pytest.approx(0.25, abs=0.01)
