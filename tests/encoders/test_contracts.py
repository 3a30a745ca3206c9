"""The encoder contracts live in ``encoders/base.py`` and are checked with ``isinstance``."""

from __future__ import annotations

import pytest
import torch

from pocketear.encoders.base import Encoder, TokenEncoder
from pocketear.registry import available, create


@pytest.mark.parametrize("name", available("encoder"))
def test_token_encoders_and_layer_outputs(name: str) -> None:
    enc = create("encoder", name, n_mels=16).eval()
    assert isinstance(enc, Encoder)
    assert enc.has_layer_outputs == isinstance(enc, TokenEncoder)
    x = torch.zeros(1, 1, 32, 16)
    if isinstance(enc, TokenEncoder):
        assert len(enc.layer_outputs(x)) == len(enc.blocks)
    else:
        with pytest.raises(TypeError, match="needs a token encoder"):
            enc.layer_outputs(x)
