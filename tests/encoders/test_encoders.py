"""Encoder contract tests, parametrised over every registered encoder.

A newly registered encoder is tested here the moment it registers; the ``mobile`` family also
gets its own checks (frame rate, budget, width ordering, ONNX parity).
"""

from __future__ import annotations

import math

import pytest
import torch
from torch import nn
from torch.utils.flop_counter import FlopCounterMode

from pocketear.encoders.base import Encoder
from pocketear.encoders.mobile import MobileEncoder
from pocketear.registry import available, create

ENCODERS = available("encoder")
MOBILE = ("mobile_tiny", "mobile_050", "mobile_100", "mobile_200")


def _logmel(batch: int, frames: int, n_mels: int, seed: int = 0) -> torch.Tensor:
    gen = torch.Generator().manual_seed(seed)
    return torch.randn(batch, 1, frames, n_mels, generator=gen)


def _macs_per_patch(enc: Encoder) -> int:
    x = torch.zeros(1, 1, enc.input_frames, enc.n_mels)
    enc.eval()
    with torch.no_grad(), FlopCounterMode(display=False) as counter:
        enc.embed(x)
    return counter.get_total_flops() // 2


@pytest.fixture(scope="module", params=ENCODERS)
def encoder(request: pytest.FixtureRequest) -> Encoder:
    torch.manual_seed(0)
    return create("encoder", request.param)


def test_mobile_family_registered() -> None:
    assert set(MOBILE) <= set(ENCODERS)


def test_attributes(encoder: Encoder) -> None:
    assert isinstance(encoder, Encoder)
    assert isinstance(encoder.embed_dim, int) and encoder.embed_dim > 0
    assert encoder.frame_hop_ms > 0
    assert encoder.input_frames > 0 and encoder.n_mels > 0
    assert encoder.pooling in ("max", "mean", "meanmax")
    assert encoder.params == sum(p.numel() for p in encoder.parameters()) > 0
    assert 0 < encoder.macs_per_second() < 10**11


@pytest.mark.parametrize("batch", [1, 3])
@pytest.mark.parametrize("frames", [96, 200, 8])
def test_shapes(encoder: Encoder, batch: int, frames: int) -> None:
    encoder.train()
    x = _logmel(batch, frames, encoder.n_mels)
    frames_out = encoder(x)
    assert frames_out.ndim == 3
    assert frames_out.shape[0] == batch and frames_out.shape[2] == encoder.embed_dim
    assert 1 <= frames_out.shape[1] <= frames
    assert encoder.embed(x).shape == (batch, encoder.embed_dim)
    assert torch.isfinite(frames_out).all()


def test_gradients_reach_first_layer(encoder: Encoder) -> None:
    encoder.train()
    encoder.zero_grad(set_to_none=True)
    encoder.embed(_logmel(3, 96, encoder.n_mels)).square().mean().backward()
    first = next(p for p in encoder.parameters() if p.ndim > 1)
    assert first.grad is not None and first.grad.abs().sum() > 0


def test_eval_deterministic_and_batch_independent(encoder: Encoder) -> None:
    encoder.eval()
    x = _logmel(3, 96, encoder.n_mels)
    with torch.no_grad():
        a, b = encoder.embed(x), encoder.embed(x)
        single = encoder.embed(x[1:2])
    torch.testing.assert_close(a, b, rtol=0, atol=0)
    torch.testing.assert_close(single, a[1:2], rtol=1e-4, atol=1e-5)


# --- mobile family -------------------------------------------------------------------------------


@pytest.mark.parametrize("name", MOBILE)
@pytest.mark.parametrize("frames", [96, 200, 8, 1])
def test_mobile_frame_rate(name: str, frames: int) -> None:
    enc = create("encoder", name).eval()
    assert isinstance(enc, MobileEncoder)
    assert (enc.embed_dim, enc.input_frames, enc.n_mels, enc.pooling) == (128, 96, 64, "max")
    assert enc.frame_hop_ms == 10.0 * enc.time_stride == 160.0
    with torch.no_grad():
        out = enc(_logmel(2, frames, 64))
    assert out.shape == (2, math.ceil(frames / enc.time_stride), 128)


def test_mobile_100_budget() -> None:
    enc = create("encoder", "mobile_100")
    macs = _macs_per_patch(enc)
    # Within the paper's budget, and using most of it.
    assert 120_000 <= enc.params <= 250_000
    assert 10_000_000 <= macs <= 25_000_000
    assert enc.macs_per_second() == macs * 100 // 96


def test_mobile_width_ordering() -> None:
    params = [create("encoder", name).params for name in MOBILE]
    assert params == sorted(params) and len(set(params)) == len(params)


def test_mobile_keeps_frequency_position() -> None:
    enc = create("encoder", "mobile_100")
    # The projection sees every remaining mel position of every channel: no pooling over it.
    assert enc.freq_bins_out == 4
    assert enc.proj.in_features == enc.channels[-1] * enc.freq_bins_out


def test_mobile_kwargs_and_input_check() -> None:
    enc = create("encoder", "mobile_tiny", embed_dim=32, n_mels=40).eval()
    assert enc.embed(_logmel(2, 50, 40)).shape == (2, 32)
    with pytest.raises(ValueError, match="expects log-mel"):
        enc(torch.zeros(2, 50, 40))
    with pytest.raises(ValueError, match="expects log-mel"):
        enc(torch.zeros(2, 1, 50, 64))
    with pytest.raises(TypeError):
        create("encoder", "mobile_100", width=2.0)


def test_mobile_channels_last_matches() -> None:
    torch.manual_seed(0)
    enc = create("encoder", "mobile_050").eval()
    x = _logmel(2, 120, 64)
    with torch.no_grad():
        ref = enc(x)
        enc = enc.to(memory_format=torch.channels_last)
        out = enc(x.contiguous(memory_format=torch.channels_last))
    torch.testing.assert_close(out, ref, rtol=1e-4, atol=1e-5)


class _Embed(nn.Module):
    """Exports ``embed`` (clip level) rather than ``forward``."""

    def __init__(self, encoder: Encoder) -> None:
        super().__init__()
        self.encoder = encoder

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.encoder.embed(x)


def test_mobile_tiny_onnx_parity(tmp_path) -> None:
    ort = pytest.importorskip("onnxruntime")
    pytest.importorskip("onnxscript")
    torch.manual_seed(0)
    enc = create("encoder", "mobile_tiny")
    enc.train()
    with torch.no_grad():  # non-trivial BN statistics
        enc(_logmel(4, 96, 64, seed=1) * 3 + 1)
    model = _Embed(enc).eval()
    path = tmp_path / "mobile_tiny.onnx"
    batch, frames = torch.export.Dim("batch"), torch.export.Dim("frames", min=2, max=4096)
    torch.onnx.export(
        model,
        (_logmel(2, 96, 64),),
        str(path),
        dynamo=True,
        external_data=False,
        input_names=["logmel"],
        output_names=["embedding"],
        dynamic_shapes=({0: batch, 2: frames},),
    )
    session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    for b, t in ((2, 96), (3, 200), (1, 8)):
        x = _logmel(b, t, 64, seed=t)
        with torch.no_grad():
            ref = model(x).numpy()
        (got,) = session.run(None, {"logmel": x.numpy()})
        assert got.shape == ref.shape
        assert abs(got - ref).max() <= 1e-4
