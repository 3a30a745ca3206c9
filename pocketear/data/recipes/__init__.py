"""Dataset recipes: ``pocketear prepare RECIPE --source URL_OR_PATH --out DIR``.

Each recipe turns a standard dataset (a URL, an archive the user downloaded, or its extracted
folder) into ``DIR/manifest.csv`` (``path,label,split[,group][,extra...]``) with the official
splits; multi-variant recipes also write ``manifest_<variant>.csv``. Importing this package
registers every recipe (``pocketear list recipes``): a new module here is one more recipe.
"""

from __future__ import annotations

import importlib
import pkgutil
from pathlib import Path
from typing import Any

from pocketear.data.recipes.base import (
    ChecksumError,
    Recipe,
    RecipeError,
    RecipeWarning,
    UnsafeArchiveError,
    download,
    safe_extract,
    verify_checksum,
)
from pocketear.registry import available, get

# Every module of this package but ``base`` is one recipe; importing it registers it.
for _info in pkgutil.iter_modules(__path__):
    if _info.name != "base":
        importlib.import_module(f"{__name__}.{_info.name}")

__all__ = [
    "ChecksumError",
    "Recipe",
    "RecipeError",
    "RecipeWarning",
    "UnsafeArchiveError",
    "download",
    "prepare",
    "recipe_options",
    "safe_extract",
    "verify_checksum",
]


def _recipe_class(name: str) -> type[Recipe]:
    """The recipe class ``name`` (``-`` read as ``_``); RecipeError (listing them) if unknown."""
    try:
        return get("recipe", name.replace("-", "_"))  # type: ignore[return-value]
    except KeyError as err:
        raise RecipeError(f"no recipe named {name!r}; recipes: "
                          f"{', '.join(available('recipe'))}") from err


def recipe_options(name: str) -> dict[str, str]:
    """Option name -> help text of the recipe ``name`` (for ``pocketear prepare --help``)."""
    return dict(_recipe_class(name).options)


def prepare(recipe_name: str, source: str | None, out: str | Path, progress: bool = True,
            **options: Any) -> Path | dict[str, Path]:
    """Run the recipe ``recipe_name`` on ``source`` into ``out``.

    Args:
        recipe_name: A registered recipe (``pocketear list recipes``).
        source: URL, archive or folder; several comma-separated (e.g. NSynth's three archives);
            None or empty only for recipes that need none (``debian_audio``).
        out: Output folder (created); holds ``downloads/``, ``extracted/`` and the manifests.
        progress: Show progress bars and print the summary line to stderr.
        **options: Recipe options (see :func:`recipe_options`); ``None`` values are ignored, so
            a CLI can pass every declared option.

    Returns:
        The manifest path, or ``{variant: path}`` (key ``"default"`` is ``manifest.csv``) for
        recipes writing several manifests (``speech_commands``, ``nsynth``).

    Raises:
        RecipeError: Unknown recipe/option, missing source, wrong layout; subclasses
            ChecksumError and UnsafeArchiveError.
    """
    cls = _recipe_class(recipe_name)
    if not source and cls.needs_source:
        raise RecipeError(f"recipe {recipe_name!r} needs a source (--source): a URL, the "
                          "downloaded archive or its extracted folder (comma-separated for "
                          "several)")
    out = Path(out).expanduser()
    out.mkdir(parents=True, exist_ok=True)
    return cls().prepare(str(source or ""), out, progress=progress, **options)
