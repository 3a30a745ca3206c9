"""The read-out: sizes, masked pooling, own-length clips and one embedding on every backend.

Sizes are checked for every encoder × pooling × source; the embedding is the same for
``Pretrained``, ONNX and ``.pte``.
"""

from __future__ import annotations

import copy
from pathlib import Path

import numpy as np
import pytest
import torch

from pocketear.encoders.base import POOLINGS, SOURCES, Readout, frame_mask, pool
from pocketear.frontends.logmel import LogMel
from pocketear.model import Pretrained
from pocketear.registry import available, create
from pocketear.train.build import build_encoder
from pocketear.train.config import ConfigError, load_config

READOUTS = [Readout(p, s) for p in POOLINGS for s in SOURCES]


@pytest.fixture(scope="module")
def encoders() -> dict[str, torch.nn.Module]:
    torch.manual_seed(0)
    return {name: create("encoder", name).eval() for name in available("encoder")}


@pytest.mark.parametrize("name", available("encoder"))
def test_every_encoder_and_readout_gives_the_documented_size(
        encoders: dict[str, torch.nn.Module], name: str) -> None:
    enc = copy.deepcopy(encoders[name])
    x = torch.randn(2, 1, enc.input_frames, enc.n_mels)
    with torch.no_grad():
        for readout in READOUTS:
            enc.readout = readout
            width = enc.embed_dim if readout.source == "proj" else enc.feature_dim
            want = 2 * width if readout.pooling == "meanstd" else width
            got = enc.read(x)
            assert got.shape == (2, want) == (2, enc.readout_dim), (name, readout)
            assert torch.isfinite(got).all()


def test_mobile_features_are_the_map_before_the_projection() -> None:
    enc = create("encoder", "mobile_100").eval()
    x = torch.randn(1, 1, 96, 64)
    with torch.no_grad():
        h = enc.forward_features(x)
        assert h.shape == (1, 6, 512)
        assert torch.allclose(enc.proj(h), enc(x))
        enc.readout = Readout("max", "proj")
        assert torch.allclose(enc.read(x), enc.embed(x))  # the old embedding, one setting away


@pytest.mark.parametrize("pooling", POOLINGS)
def test_masked_pooling_equals_pooling_the_real_frames(pooling: str) -> None:
    frames = torch.randn(3, 7, 5)
    frames[1, 4:] = 1e6  # padding that must not count
    frames[2, 2:] = -1e6
    lengths = torch.tensor([16 * 7, 16 * 4, 16 * 2 - 5])  # input frames at a stride of 16
    mask = frame_mask(lengths, 7, 16)
    assert mask.sum(1).tolist() == [7, 4, 2]
    got = pool(frames, pooling, mask)
    for b, n in enumerate([7, 4, 2]):
        assert torch.allclose(got[b], pool(frames[b : b + 1, :n], pooling)[0], atol=1e-5)


def test_readout_parses_validates_and_travels_in_the_config() -> None:
    assert Readout.parse("meanstd") == Readout("meanstd", "features")
    assert str(Readout.parse("max:proj")) == "max:proj"
    cfg = load_config(None, ["task.name=triplet", "encoder.readout=mean:proj"])
    assert cfg["encoder"]["readout"] == "mean:proj"
    assert build_encoder(cfg).readout == Readout("mean", "proj")
    assert load_config(None, ["task.name=triplet"])["encoder"]["readout"] == "meanmax:features"
    with pytest.raises(ConfigError, match="encoder.readout"):
        load_config(None, ["task.name=triplet", "encoder.readout=median"])


def test_kwt_masks_padding_tokens_in_attention_and_pooling() -> None:
    torch.manual_seed(0)
    enc = create("encoder", "kwt1").eval()
    short = torch.randn(1, 1, 30, 64)
    padded = torch.cat([short, torch.full((1, 1, 50, 64), 3.0)], dim=2)
    with torch.no_grad():
        alone = enc.read(short)
        masked = enc.read(padded, torch.tensor([30]))
        unmasked = enc.read(padded)
    assert torch.allclose(alone, masked, atol=1e-5)
    assert not torch.allclose(alone, unmasked, atol=1e-3)


def _pretrained(readout: str) -> Pretrained:
    torch.manual_seed(0)
    frontend = LogMel()
    frontend.set_stats(torch.linspace(-9, -4, 64), torch.linspace(2, 3, 64))
    enc = create("encoder", "mobile_tiny")
    enc.readout = Readout.parse(readout)
    return Pretrained(frontend, enc, {"encoder": {"name": "mobile_tiny", "readout": readout}})


def test_a_short_clip_embeds_at_its_own_length_whatever_is_batched_with_it() -> None:
    pre = _pretrained("meanmax:features")
    rng = np.random.default_rng(0)
    short = torch.from_numpy(rng.standard_normal((40, 64)).astype(np.float32))
    longer = [torch.from_numpy(rng.standard_normal((n, 64)).astype(np.float32))
              for n in (57, 96, 250)]
    alone = pre.embed_clips([short])[0]
    together = pre.embed_clips([longer[0], short, *longer[1:]])[1]
    assert alone.shape == (1, pre.embed_dim)
    np.testing.assert_array_equal(alone, together)
    with torch.no_grad():  # its own length, not padded to the 96-frame window
        own = pre.encoder.read(short[None, None]).numpy()
    np.testing.assert_allclose(alone, own, atol=1e-6)


@pytest.mark.parametrize("readout", ["max:proj", "mean:features", "meanmax:features",
                                     "meanstd:features"])
def test_onnx_export_agrees_with_pytorch_for_each_pooling(readout: str, tmp_path: Path) -> None:
    from pocketear.export import export_onnx
    from pocketear.export.runtime import OnnxEmbedder

    pre = _pretrained(readout)
    report = export_onnx(pre, tmp_path / "m.onnx", verbose=False)
    assert report["metadata"]["readout"] == readout
    onnx = OnnxEmbedder(tmp_path / "m.onnx")
    assert onnx.embed_dim == pre.embed_dim
    rng = np.random.default_rng(1)
    for seconds in (0.3, 0.96, 2.3):  # shorter than a window, one window, several
        wave = (0.1 * rng.standard_normal(int(16000 * seconds))).astype(np.float32)
        np.testing.assert_allclose(onnx.embed(wave), pre.embed(wave), atol=1e-4, rtol=1e-4)


def test_pte_export_agrees_with_pytorch_at_the_default_readout(tmp_path: Path) -> None:
    pytest.importorskip("executorch.exir", reason="ExecuTorch (pocketear[edge]) not installed")
    from pocketear.export.pte import export_pte

    report = export_pte(_pretrained("meanstd:features"), tmp_path / "m.pte", verbose=False)
    assert report["parity"]["ok"]
