"""pocketear: self-supervised audio representation learning with small, on-device encoders."""

from pocketear.registry import available, create, register

__version__ = "0.1.0"
__all__ = ["__version__", "available", "create", "load", "pretrain", "register"]


def __getattr__(name: str):  # lazy: `import pocketear` must not import torch-heavy modules
    if name in ("load", "pretrain"):
        from pocketear import model

        return getattr(model, name)
    raise AttributeError(name)
