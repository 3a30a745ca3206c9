"""The one family of errors caused by the user's input (a path, a name, a value, a file).

The CLI prints a :class:`UserError` as one line and exits 2; any other exception is a bug and
keeps its traceback. Each kind also derives from the built-in exception it refines, so callers
that catch ``ValueError``, ``KeyError`` or ``FileNotFoundError`` keep working.
"""

from __future__ import annotations


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
