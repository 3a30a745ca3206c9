"""Fixtures shared by the export tests."""

from __future__ import annotations

import pytest
import torch

from pocketear.frontends.logmel import LogMel
from pocketear.model import Pretrained
from pocketear.registry import create


@pytest.fixture(scope="module")
def pre() -> Pretrained:
    """An untrained ``mobile_tiny`` with fixed normalisation statistics (seeded)."""
    torch.manual_seed(0)
    frontend = LogMel()
    frontend.set_stats(torch.linspace(-9, -4, 64), torch.linspace(2, 3, 64))
    return Pretrained(frontend, create("encoder", "mobile_tiny"), {"encoder": {"name": "tiny"}})
