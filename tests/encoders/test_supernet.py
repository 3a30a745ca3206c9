"""The once-for-all KWT supernet: subnets are its weights' leading slices, extractable as KWTs."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from pocketear.encoders.kwt import KWT
from pocketear.encoders.supernet import Subnet, SuperKWT
from pocketear.errors import InvalidValue
from pocketear.export import OnnxEmbedder, export_onnx
from pocketear.frontends.logmel import LogMel
from pocketear.model import Pretrained

SPACE = {"dims": "16,32", "depths": "1,3", "heads": "1,2", "mlp_ratios": "2,4", "head_dim": 8,
         "input_frames": 48}


def _super(prenorm: bool = True) -> SuperKWT:
    torch.manual_seed(0)
    sup = SuperKWT(prenorm=prenorm, **SPACE)  # type: ignore[arg-type]
    for p in sup.parameters():  # LayerNorms away from 1/0, so a wrong slice shows
        p.data.add_(0.1 * torch.randn_like(p))
    return sup.eval()


def test_space_largest_smallest_and_parse() -> None:
    sup = _super()
    assert len(sup.subnets) == 16 and sup.subnets[0] == sup.smallest
    assert sup.largest == Subnet(32, 3, 2, 128) and sup.smallest == Subnet(16, 1, 1, 32)
    assert Subnet.parse(str(sup.largest)) == sup.largest
    assert sup.embed_dim == 32
    sup.set_active(sup.smallest)
    assert sup.embed_dim == 16
    with pytest.raises(InvalidValue, match="does not fit"):
        sup.set_active(Subnet(64, 1, 1, 32))
    with pytest.raises(InvalidValue, match="dim=D"):
        Subnet.parse("dim=3,width=2")
    with pytest.raises(InvalidValue, match="encoder.dims"):
        SuperKWT(dims="16,x")


@pytest.mark.parametrize("prenorm", [True, False])
def test_every_extracted_subnet_equals_the_supernet_in_that_configuration(prenorm: bool) -> None:
    sup = _super(prenorm)
    x = torch.randn(3, 1, 40, 64)
    lengths = torch.tensor([40, 25, 10])
    with torch.no_grad():
        for s in sup.subnets:
            sup.set_active(s)
            kwt = sup.extract(s)
            assert isinstance(kwt, KWT) and type(kwt) is KWT
            assert torch.equal(sup(x), kwt(x)), s
            assert torch.equal(sup.read(x, lengths), kwt.read(x, lengths)), s
            ours, theirs = sup.layer_outputs(x, "ffn"), kwt.layer_outputs(x, "ffn")
            assert len(ours) == s.depth
            assert all(torch.equal(a, b) for a, b in zip(ours, theirs, strict=True))
    full = sup.extract(sup.largest)  # the largest subnet is the whole supernet's weights
    assert full.params == sup.params


def test_a_subnet_shares_the_supernets_weights() -> None:
    """Training the smallest subnet moves the largest's leading slices (weight sharing)."""
    sup = _super()
    sup.set_active(sup.smallest)
    sup(torch.randn(2, 1, 20, 64)).sum().backward()
    g = sup.blocks[0].mlp[0].weight.grad
    assert g[:32, :16].abs().sum() > 0 and g[32:].abs().sum() == 0 and g[:, 16:].abs().sum() == 0
    assert sup.blocks[2].mlp[0].weight.grad is None  # depth 1: later blocks untouched


def test_extracted_subnets_export_and_pass_the_parity_check(tmp_path: Path) -> None:
    sup = _super()
    frontend = LogMel()
    frontend.set_stats(torch.linspace(-9, -4, 64), torch.linspace(2, 3, 64))
    wave = np.random.default_rng(0).uniform(-0.5, 0.5, 12000).astype(np.float32)
    for s in (sup.smallest, Subnet(32, 1, 2, 64), sup.largest):
        pre = Pretrained(frontend, sup.extract(s),
                         {"encoder": {"name": "kwt1", **sup.subnet_options(s)}})
        rep = export_onnx(pre, tmp_path / f"{s.dim}-{s.depth}-{s.heads}.onnx", verbose=False)
        assert rep["parity_fp32"]["ok"], s
        emb = OnnxEmbedder(rep["path"]).embed(wave)
        assert np.abs(emb - pre.embed(wave)).max() <= rep["parity_fp32"]["fp32_limit"]
