"""KWT and conformer_tiny: sizes, shapes, layer outputs, token dropping, the max-length error.

Sizes are derived from the architecture, not hard-coded totals.
"""

from __future__ import annotations

import pytest
import torch

from pocketear.encoders.kwt import KWT, TokenEncoder
from pocketear.registry import create

KWT_SIZES = {"kwt1": (64, 1, 256), "kwt2": (128, 2, 512), "kwt3": (192, 3, 768)}
PAPER_PARAMS = {"kwt1": 607e3, "kwt2": 2394e3, "kwt3": 5361e3}  # Berg et al. 2021, Table 1


def _expected_kwt_params(d: int, mlp: int, n_mels: int = 64, depth: int = 12,
                         max_frames: int = 256) -> int:
    block = (d * 3 * d + 3 * d) + (d * d + d) + (d * mlp + mlp) + (mlp * d + d) + 4 * d
    return n_mels * d + d + max_frames * d + depth * block + 2 * d


@pytest.mark.parametrize("name", list(KWT_SIZES))
def test_kwt_sizes(name: str) -> None:
    d, heads, mlp = KWT_SIZES[name]
    enc = create("encoder", name)
    assert isinstance(enc, KWT) and len(enc.blocks) == 12 and enc.embed_dim == d
    assert enc.blocks[0].attn.heads == heads and enc.blocks[0].mlp[0].out_features == mlp
    assert enc.params == _expected_kwt_params(d, mlp)
    # 64 mel bins and 256 positions instead of 40 MFCCs and 99: within 3 % of the paper's count
    assert abs(enc.params / PAPER_PARAMS[name] - 1) < 0.03


@pytest.mark.parametrize("name", ["kwt1", "conformer_tiny"])
@pytest.mark.parametrize("frames", [96, 37, 1])
def test_layer_outputs_and_shapes(name: str, frames: int) -> None:
    torch.manual_seed(0)
    enc = create("encoder", name).eval()
    x = torch.randn(2, 1, frames, 64)
    stride = enc.token_stride
    n = -(-frames // stride)
    with torch.no_grad():
        out = enc(x)
        layers = enc.layer_outputs(x)
        ffn = enc.layer_outputs(x, kind="ffn")
    assert out.shape == (2, n, enc.embed_dim)
    assert len(layers) == len(ffn) == len(enc.blocks)
    assert all(h.shape == out.shape for h in layers + ffn)
    # the final features are the last block's output through the final norm
    torch.testing.assert_close(enc.final_norm(layers[-1]), out)
    assert enc.embed(x).shape == (2, enc.embed_dim)


def test_conformer_budget() -> None:
    enc = create("encoder", "conformer_tiny")
    assert isinstance(enc, TokenEncoder) and enc.params <= 1_000_000
    assert enc.frame_hop_ms == 40.0


def test_encode_tokens_on_a_subset() -> None:
    """Dropping tokens (data2vec 2.0) runs the blocks on the kept tokens only.

    For a KWT the kept tokens' outputs equal those of a sequence made of just those tokens.
    """
    torch.manual_seed(0)
    enc = create("encoder", "kwt1").eval()
    x = torch.randn(1, 1, 20, 64)
    tokens = enc.tokenize(x)
    keep = torch.tensor([0, 3, 4, 11, 19])
    with torch.no_grad():
        sub, _ = enc.encode_tokens(tokens[:, keep])
    assert sub.shape == (1, 5, 64) and torch.isfinite(sub).all()
    with torch.no_grad():
        full = enc(x)
    assert not torch.allclose(sub, full[:, keep])  # context differs: attention saw fewer tokens


def test_too_long_input_is_a_clear_error() -> None:
    enc = create("encoder", "kwt1", max_frames=50)
    with pytest.raises(ValueError, match="max_frames=50"):
        enc(torch.zeros(1, 1, 51, 64))
    with pytest.raises(ValueError, match="expects log-mel"):
        enc(torch.zeros(1, 51, 64))


def test_postnorm_variant() -> None:
    enc = create("encoder", "kwt1", prenorm=False, depth=2)
    x = torch.randn(2, 1, 10, 64)
    assert enc(x).shape == (2, 10, 64) and len(enc.layer_outputs(x)) == 2


def test_preset_sizes_can_be_overridden_from_the_config() -> None:
    from pocketear.train.build import build_encoder
    from pocketear.train.config import load_config

    enc = build_encoder(load_config(None, ["encoder.name=kwt1", "encoder.dim=32",
                                           "encoder.heads=2", "encoder.mlp=64",
                                           "encoder.depth=2"]))
    assert len(enc.blocks) == 2 and enc.blocks[0].norm1.normalized_shape == (32,)
