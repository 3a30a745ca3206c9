"""The BYOL-A/SLICER CNN (``audiontt_*``) and COLA's ``efficientnet_b0``: sizes and pooling.

The contract (shapes, gradients, determinism) is checked for them by ``test_encoders.py``.
"""

from __future__ import annotations

import math

import pytest
import torch

from pocketear.encoders.audiontt import AudioNTT
from pocketear.registry import create


@pytest.mark.parametrize(("name", "dim", "params"), [
    ("audiontt_512", 512, 600_192), ("audiontt_1024", 1024, 1_649_792),
    ("audiontt_2048", 2048, 5_321_856)])
def test_audiontt_parameter_counts(name: str, dim: int, params: int) -> None:
    enc = create("encoder", name, n_mels=64)
    assert isinstance(enc, AudioNTT)
    assert enc.params == params
    assert (enc.embed_dim, enc.pooling, enc.frame_hop_ms) == (dim, "meanmax", 80.0)
    assert enc.fc[0].in_features == 512  # 64 channels x 64/8 mel bins


@pytest.mark.parametrize("frames", [8, 96, 101, 3])
def test_audiontt_frames_and_meanmax_pooling(frames: int) -> None:
    torch.manual_seed(0)
    enc = create("encoder", "audiontt_512").eval()
    x = torch.randn(2, 1, frames, 64)
    with torch.no_grad():
        out = enc(x)
        emb = enc.embed(x)
    assert out.shape == (2, math.ceil(frames / 8), 512)
    assert (out >= 0).all()  # the MLP ends in a ReLU
    torch.testing.assert_close(emb, out.amax(1) + out.mean(1))


def test_audiontt_dropout_only_in_training() -> None:
    torch.manual_seed(0)
    enc = create("encoder", "audiontt_512")
    x = torch.randn(2, 1, 96, 64)
    enc.eval()
    with torch.no_grad():
        assert torch.equal(enc(x), enc(x))
    enc.train()
    with torch.no_grad():
        assert not torch.equal(enc(x), enc(x))
    with pytest.raises(ValueError, match="dropout"):
        create("encoder", "audiontt_512", dropout=1.5)


def test_efficientnet_b0_shape_params_and_global_max_pool() -> None:
    torch.manual_seed(0)
    enc = create("encoder", "efficientnet_b0").eval()
    assert 3_900_000 <= enc.params <= 4_100_000  # 4.0 M (B0 trunk, one input channel)
    assert (enc.embed_dim, enc.pooling, enc.frame_hop_ms) == (1280, "max", 320.0)
    x = torch.randn(2, 1, 96, 64)
    with torch.no_grad():
        out = enc(x)
        fmap = enc.trunk.extract_features(x)
        emb = enc.embed(x)
    assert out.shape == (2, 3, 1280)
    torch.testing.assert_close(emb, fmap.amax(dim=(2, 3)))  # global max over time and frequency
    assert "MemoryEfficient" not in type(enc.trunk._swish).__name__  # traceable for export
    with pytest.raises(ValueError, match="expects log-mel"):
        enc(torch.zeros(2, 1, 96, 40))
