"""The one family of errors caused by the user's input (a path, a name, a value, a file).

The CLI prints a :class:`UserError` as one line and exits 2; any other exception is a bug and
keeps its traceback. Each kind also derives from the built-in exception it refines, so callers
that catch ``ValueError``, ``KeyError`` or ``FileNotFoundError`` keep working.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from typing import Any, TypeVar

T = TypeVar("T")


class UserError(Exception):
    """A mistake in the user's input; the message names what is wrong and the fix."""


class InvalidValue(UserError, ValueError):
    """A value, option or combination of options that cannot be used."""


class UnknownName(UserError, KeyError):
    """A name that is not registered or not present (a task, an encoder, a suite, a key)."""

    def __str__(self) -> str:  # KeyError's str() quotes the message; show it as written
        return str(self.args[0]) if self.args else ""


class MissingPath(UserError, FileNotFoundError):
    """A file or folder the user named does not exist."""


class PathExists(UserError, FileExistsError):
    """The output the user named already exists (and overwriting was not asked for)."""


class NotAFolder(UserError, NotADirectoryError):
    """A path the user named should be a folder."""


class MissingDependency(UserError, ImportError):
    """An optional package that the asked-for feature needs is not installed."""


def typed(cls: type[T], given: Mapping[str, Any], where: str,
          error: type[InvalidValue] = InvalidValue) -> T:
    """Dataclass ``cls`` built from the user's ``given`` over its defaults.

    Raises:
        InvalidValue: (or ``error``) an unknown key, or a value ``cls`` rejects; the message
            starts with ``where`` (the config key the user wrote) and lists the known keys.
    """
    names = {f.name for f in dataclasses.fields(cls)}  # type: ignore[arg-type]
    unknown = sorted(set(given) - names)
    if unknown:
        raise error(f"{where}: unknown key(s) {', '.join(unknown)}; known keys: "
                    f"{', '.join(sorted(names))}")
    try:
        return cls(**given)
    except (TypeError, ValueError) as err:
        raise error(f"{where}: {err}") from None
