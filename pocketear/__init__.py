"""pocketear: self-supervised audio representation learning with small, on-device encoders."""

from pocketear.registry import available, create, register

__version__ = "0.1.0"
__all__ = ["__version__", "available", "create", "register"]
