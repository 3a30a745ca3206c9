"""Log-mel frontend: librosa parity, framing, stats, config keys and ONNX parity."""

from __future__ import annotations

import ast
import dataclasses
from pathlib import Path

import numpy as np
import pytest
import torch

import pocketear
from pocketear.export.frontend import export_frontend_onnx as export_onnx
from pocketear.frontends import LogMel, LogMelConfig, compute_stats, mel_filterbank

librosa = pytest.importorskip("librosa")

SR = 16000
PAD = (512 - 400) // 2  # torch.stft centres the 400-sample window in each 512-sample frame


def _signals(seconds: float = 1.5, seed: int = 0) -> dict[str, np.ndarray]:
    rng = np.random.default_rng(seed)
    t = np.arange(int(seconds * SR)) / SR
    click = np.zeros_like(t)
    click[1000] = 1.0
    return {
        "noise": 0.1 * rng.standard_normal(t.size),
        "full_scale_noise": np.clip(rng.standard_normal(t.size), -1, 1),
        "sines": 0.5 * np.sin(2 * np.pi * 440 * t) + 0.3 * np.sin(2 * np.pi * 3111.7 * t),
        "quiet_sine": 1e-3 * np.sin(2 * np.pi * 1000 * t),
        "noise_plus_tone": 0.05 * rng.standard_normal(t.size) + 0.5 * np.sin(2 * np.pi * 220 * t),
        "click": click,
    }


def _librosa_logmel(y: np.ndarray) -> np.ndarray:
    """The librosa reference, (T, 64), on ``y`` padded so its frames are ours (see LogMel docs)."""
    s = librosa.feature.melspectrogram(
        y=np.pad(y.astype(np.float32), (PAD, PAD)),
        sr=SR,
        n_fft=512,
        hop_length=160,
        win_length=400,
        window="hann",
        center=False,
        power=2.0,
        n_mels=64,
        fmin=60,
        fmax=7800,
    )
    return np.log(s + 1e-6).T


@pytest.mark.parametrize(
    "sr,n_fft,n_mels,fmin,fmax",
    [
        (16000, 512, 64, 60.0, 7800.0),
        (16000, 400, 40, 0.0, 8000.0),
        (22050, 2048, 128, 20.0, 11025.0),
    ],
)
def test_mel_filterbank_matches_librosa(sr: int, n_fft: int, n_mels: int, fmin: float, fmax: float):
    ours = mel_filterbank(sr, n_fft, n_mels, fmin, fmax)
    ref = librosa.filters.mel(sr=sr, n_fft=n_fft, n_mels=n_mels, fmin=fmin, fmax=fmax)
    assert ours.shape == ref.shape == (n_mels, n_fft // 2 + 1)
    assert ours.dtype == np.float32
    np.testing.assert_allclose(ours, ref, rtol=0, atol=1e-6)


def test_logmel_matches_librosa():
    """Max |ours - librosa| in log-mel ≤ 1e-3.

    Measured: ~1.8e-4 on the two-sine signal, from float32 vs float64 FFT rounding in low-power
    bins; ≤ 2e-5 on noise, noise + tone, a click.
    """
    fe = LogMel()
    for name, y in _signals().items():
        ours = fe(torch.from_numpy(y.astype(np.float32)))[0, 0].numpy()
        ref = _librosa_logmel(y)
        assert ours.shape == ref.shape, name
        assert np.abs(ours - ref).max() <= 1e-3, name


def test_logmel_batch_equals_per_clip():
    fe = LogMel()
    sigs = np.stack([y for y in _signals().values()]).astype(np.float32)
    batched = fe(torch.from_numpy(sigs))
    for i, y in enumerate(sigs):
        torch.testing.assert_close(batched[i : i + 1], fe(torch.from_numpy(y)), rtol=0, atol=1e-5)


@pytest.mark.parametrize("n", [400, 401, 559, 560, 16000, 16001, 23456])
def test_output_shape(n: int):
    fe = LogMel()
    out = fe(torch.randn(3, n))
    assert out.shape == (3, 1, 1 + (n - 400) // 160, 64)
    assert out.shape[2] == fe.num_frames(n) == fe.cfg.num_frames(n)
    assert out.dtype == torch.float32
    assert fe(torch.randn(n)).shape == (1, 1, out.shape[2], 64)


def test_one_second_gives_98_frames_and_float64_input_is_accepted():
    fe = LogMel()
    assert fe(torch.randn(2, SR, dtype=torch.float64)).shape == (2, 1, 98, 64)


@pytest.mark.parametrize("n", [1, 100, 399])
def test_short_input_is_zero_padded_to_one_window(n: int):
    fe = LogMel()
    wave = torch.randn(2, n)
    out = fe(wave)
    assert out.shape == (2, 1, 1, 64)
    padded = torch.nn.functional.pad(wave, (0, 400 - n))
    torch.testing.assert_close(out, fe(padded))
    assert torch.isfinite(out).all()


def test_bad_input_rank_raises():
    with pytest.raises(ValueError, match="waveform"):
        LogMel()(torch.randn(1, 1, 16000))


def test_config_defaults_and_round_trip():
    cfg = LogMelConfig()
    assert (cfg.win_length, cfg.hop_length) == (400, 160)
    assert LogMelConfig.from_dict(cfg.to_dict()) == cfg
    assert LogMelConfig.from_dict(cfg.to_dict()).key() == cfg.key()
    assert cfg.key() == LogMelConfig(fmin=60, fmax=7800).key()  # int vs float: same features
    assert len(cfg.key()) == 16 and int(cfg.key(), 16) >= 0
    with pytest.raises(ValueError, match="unknown"):
        LogMelConfig.from_dict({"n_mel": 40})
    with pytest.raises(ValueError):
        LogMelConfig(win_ms=40.0)  # 640 samples > n_fft
    with pytest.raises(ValueError):
        LogMelConfig(fmax=9000.0)


def test_key_changes_when_any_field_changes():
    base = LogMelConfig()
    changed = {
        "sample_rate": 20000,
        "win_ms": 20.0,
        "hop_ms": 12.5,
        "n_fft": 1024,
        "n_mels": 40,
        "fmin": 50.0,
        "fmax": 7000.0,
        "log_eps": 1e-5,
    }
    assert set(changed) == {f.name for f in dataclasses.fields(LogMelConfig)}
    keys = {base.key()}
    for name, value in changed.items():
        keys.add(dataclasses.replace(base, **{name: value}).key())
    assert len(keys) == len(changed) + 1


def test_overrides_and_registry():
    fe = pocketear.create("frontend", "logmel", n_mels=40)
    assert isinstance(fe, LogMel)
    assert fe.cfg == LogMelConfig(n_mels=40)
    assert fe(torch.randn(1, 4000)).shape == (1, 1, 23, 40)
    assert LogMel(LogMelConfig(n_mels=32), fmax=6000.0).cfg == LogMelConfig(n_mels=32, fmax=6000.0)
    assert "logmel" in pocketear.available("frontend")


def test_compute_stats_streams_exactly():
    rng = np.random.default_rng(1)
    chunks = [rng.normal(3.0, 2.0, size=(t, 8)) for t in (1, 50, 7, 200)]
    chunks.append(np.empty((0, 8)))
    chunks.append(rng.normal(size=(1, 30, 8)))  # (1, T, F) is flattened to frames
    mean, std = compute_stats(iter(chunks))
    allx = np.concatenate([c.reshape(-1, 8) for c in chunks])
    assert mean.shape == std.shape == (8,) and mean.dtype == np.float32
    np.testing.assert_allclose(mean, allx.mean(0), rtol=1e-6)
    np.testing.assert_allclose(std, allx.std(0), rtol=1e-6)
    _, std_const = compute_stats([np.full((10, 4), -13.8)])
    np.testing.assert_array_equal(std_const, np.full(4, 1e-5, dtype=np.float32))
    with pytest.raises(ValueError):
        compute_stats([])
    with pytest.raises(ValueError):
        compute_stats([np.zeros((3, 4)), np.zeros((3, 5))])


def test_normalisation():
    fe = LogMel()
    waves = torch.from_numpy(np.stack(list(_signals(1.0, seed=2).values())).astype(np.float32))
    raw = fe(waves)
    assert not fe.normalised and not fe._use_stats
    torch.testing.assert_close(fe(waves, normalise=True), raw)  # no stats yet: raw
    mean, std = compute_stats(r[0].numpy() for r in raw)
    fe.set_stats(mean, std)
    assert bool(fe.normalised)
    normed = fe(waves)
    torch.testing.assert_close(normed, (raw - torch.from_numpy(mean)) / torch.from_numpy(std))
    flat = normed[:, 0].reshape(-1, 64).double()
    torch.testing.assert_close(
        flat.mean(0), torch.zeros(64, dtype=torch.float64), atol=1e-4, rtol=0
    )
    torch.testing.assert_close(flat.std(0, unbiased=False), torch.ones(64, dtype=torch.float64))
    torch.testing.assert_close(fe(waves, normalise=False), raw)
    with pytest.raises(ValueError):
        fe.set_stats(mean[:10], std[:10])
    with pytest.raises(ValueError):
        fe.set_stats(mean, np.zeros_like(std))
    fe.clear_stats()
    torch.testing.assert_close(fe(waves), raw)


def test_stats_round_trip_through_state_dict(tmp_path):
    fe = LogMel()
    rng = np.random.default_rng(3)
    fe.set_stats(torch.from_numpy(rng.normal(-5, 1, 64)), rng.uniform(0.5, 2, 64))
    sd = fe.state_dict()
    assert set(sd) == {"mean", "std", "normalised"}  # filterbank/window derive from the config
    torch.save(sd, tmp_path / "fe.pt")
    fresh = LogMel()
    fresh.load_state_dict(torch.load(tmp_path / "fe.pt", weights_only=True))
    assert fresh._use_stats and bool(fresh.normalised)
    wave = torch.randn(2, 8000)
    torch.testing.assert_close(fresh(wave), fe(wave))
    # Loading an un-normalised state turns normalisation back off.
    fresh.load_state_dict(LogMel().state_dict())
    torch.testing.assert_close(fresh(wave), fe(wave, normalise=False))


def test_frontend_modules_do_not_import_librosa():
    """Librosa stays a test/benchmark reference only (an AST check: cheaper than a subprocess)."""
    import pocketear.frontends as pkg

    for path in Path(pkg.__file__).parent.glob("*.py"):
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.Import):
                names = [a.name for a in node.names]
            elif isinstance(node, ast.ImportFrom):
                names = [node.module or ""]
            else:
                continue
            assert not any(n.split(".")[0] == "librosa" for n in names), path


@pytest.fixture(scope="module")
def exported(tmp_path_factory) -> tuple[LogMel, str]:
    fe = LogMel()
    rng = np.random.default_rng(4)
    fe.set_stats(rng.normal(-6, 1, 64), rng.uniform(1, 3, 64))
    path = export_onnx(fe, tmp_path_factory.mktemp("onnx") / "logmel.onnx")
    return fe, str(path)


@pytest.mark.filterwarnings("ignore:.*LeafSpec:FutureWarning")  # torch-internal, on export
def test_onnx_matches_pytorch_with_dynamic_batch_and_length(exported):
    """ONNX Runtime vs PyTorch, stats baked in: max abs diff ≤ 1e-4.

    Checked both on the normalised output and mapped back to log-mel (measured: ≤ ~5e-6 on 1 s
    clips, ~2e-5 on 10 s).
    """
    ort = pytest.importorskip("onnxruntime")
    fe, path = exported
    sess = ort.InferenceSession(path, providers=["CPUExecutionProvider"])
    assert [i.name for i in sess.get_inputs()] == ["wave"]
    mean, std = fe.mean.numpy(), fe.std.numpy()
    g = torch.Generator().manual_seed(5)
    for batch, n in [(1, 16000), (3, 12345), (2, 250)]:
        wave = torch.randn(batch, n, generator=g) * 0.3
        (onnx_out,) = sess.run(None, {"wave": wave.numpy()})
        ref = fe(wave).numpy()
        assert onnx_out.shape == ref.shape == (batch, 1, fe.num_frames(n), 64)
        assert np.abs(onnx_out - ref).max() <= 1e-4
        raw = fe(wave, normalise=False).numpy()
        assert np.abs(onnx_out * std + mean - raw).max() <= 1e-4
