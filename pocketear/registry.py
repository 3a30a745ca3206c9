"""A tiny registry: every registered component is discoverable by kind and name.

Kinds: encoder, task, augmentation, suite, recipe, probe, frontend and baseline.

The CLI lists what is registered (``pocketear list tasks``) and the test suite parametrises over
it, so a new component is tested the moment it is registered (timm's style).
"""

from __future__ import annotations

import importlib
from collections.abc import Callable
from typing import Any, TypeVar

from pocketear.errors import UnknownName

KINDS = ("encoder", "task", "augmentation", "suite", "recipe", "probe", "frontend", "baseline")

# Modules whose import registers components; imported lazily so `import pocketear` stays cheap.
_PROVIDERS = {
    "encoder": ("pocketear.encoders",),
    "task": ("pocketear.tasks",),
    "augmentation": ("pocketear.augment",),
    "suite": ("pocketear.evaluate",),
    "recipe": ("pocketear.data.recipes",),
    "probe": ("pocketear.evaluate",),
    "frontend": ("pocketear.frontends",),
    "baseline": ("pocketear.evaluate.baselines",),  # torch: kept out of `pocketear.evaluate`
}

_REGISTRY: dict[str, dict[str, Callable[..., Any]]] = {kind: {} for kind in KINDS}
_DOCS: dict[str, dict[str, str]] = {kind: {} for kind in KINDS}

T = TypeVar("T", bound=Callable[..., Any])


def _check_kind(kind: str) -> None:
    if kind not in _REGISTRY:
        raise KeyError(f"unknown kind {kind!r}; kinds are: {', '.join(KINDS)}")


def register(kind: str, name: str) -> Callable[[T], T]:
    """Decorator registering a class or factory under ``(kind, name)``."""
    _check_kind(kind)

    def deco(obj: T) -> T:
        if name in _REGISTRY[kind] and _REGISTRY[kind][name] is not obj:
            raise ValueError(f"{kind} {name!r} is already registered")
        _REGISTRY[kind][name] = obj
        doc = (obj.__doc__ or "").strip().splitlines()
        _DOCS[kind][name] = doc[0] if doc else ""
        return obj

    return deco


def _load(kind: str) -> None:
    for module in _PROVIDERS.get(kind, ()):
        try:
            importlib.import_module(module)
        except ModuleNotFoundError as err:
            # A provider package that does not exist yet simply registers nothing.
            if err.name != module and not module.startswith(str(err.name)):
                raise


def available(kind: str) -> list[str]:
    """Names registered under ``kind``, sorted."""
    _check_kind(kind)
    _load(kind)
    return sorted(_REGISTRY[kind])


def get(kind: str, name: str) -> Callable[..., Any]:
    """The class or factory registered under ``(kind, name)``, with a helpful error."""
    _check_kind(kind)
    _load(kind)
    try:
        return _REGISTRY[kind][name]
    except KeyError:
        options = ", ".join(sorted(_REGISTRY[kind])) or "none"
        raise UnknownName(f"no {kind} named {name!r}; available: {options}") from None


def create(kind: str, name: str, **cfg: Any) -> Any:
    """Instantiate the component registered under ``(kind, name)`` with keyword config."""
    return get(kind, name)(**cfg)


def describe(kind: str, name: str) -> str:
    """First docstring line of a registered component (for ``pocketear list``)."""
    _load(kind)
    return _DOCS[kind].get(name, "")
