"""pocketear: self-supervised audio representation learning with small, on-device encoders."""

from pocketear._version import __version__
from pocketear.registry import available, create, register

__all__ = ["__version__", "available", "create", "load", "pretrain", "register"]


def __getattr__(name: str):  # lazy: `import pocketear` must not import torch-heavy modules
    if name == "load":
        from pocketear.model import load

        return load
    if name == "pretrain":
        from pocketear.train.api import pretrain

        return pretrain
    raise AttributeError(name)
