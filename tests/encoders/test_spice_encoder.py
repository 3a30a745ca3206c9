"""The SPICE frame encoder: size, crop, and every frame encoded on its own."""

from __future__ import annotations

import pytest
import torch

from pocketear.errors import InvalidValue
from pocketear.registry import create


def test_default_is_small_and_crops_the_cqt_to_its_slice():
    enc = create("encoder", "spice").eval()
    assert enc.params <= 200_000  # the paper's small variant has 180 k
    assert (enc.n_mels, enc.slice_bins) == (190, 128)
    x = torch.randn(2, 1, 7, 190)
    out = enc(x)
    assert out.shape == (2, 7, enc.embed_dim)
    assert torch.allclose(out, enc(x[..., :128]), atol=1e-6)  # offset 0: the lowest 128 bins
    assert enc.read(x).shape == (2, enc.readout_dim)


def test_frames_are_independent_and_loudness_is_ignored():
    torch.manual_seed(0)
    enc = create("encoder", "spice").eval()
    x = torch.randn(1, 1, 5, 190)
    y = x.clone()
    y[0, 0, 2] += torch.randn(190)  # change one frame
    y[0, 0, 4] += 3.0  # and another's level only
    a, b = enc(x), enc(y)
    assert torch.allclose(a[:, [0, 1, 3]], b[:, [0, 1, 3]], atol=1e-6)
    assert not torch.allclose(a[:, 2], b[:, 2])
    assert torch.allclose(a[:, 4], b[:, 4], atol=1e-5)


@pytest.mark.parametrize("bad", [{"slice_bins": 200}, {"offset": 70}, {"channels": ()}])
def test_bad_sizes_are_clear_errors(bad):
    with pytest.raises(InvalidValue):
        create("encoder", "spice", **bad)


def test_wrong_input_width_is_a_clear_error():
    with pytest.raises(ValueError, match="expects a CQT"):
        create("encoder", "spice")(torch.randn(1, 1, 3, 64))
