"""Only user mistakes (the ``UserError`` family) become one-line errors; bugs keep a traceback."""

from __future__ import annotations

import argparse

import pytest

from pocketear.cli import core
from pocketear.errors import InvalidValue, MissingPath, UnknownName, UserError


@pytest.fixture
def failing(monkeypatch: pytest.MonkeyPatch):
    def install(exc: BaseException) -> None:
        def run(args: argparse.Namespace) -> int:
            raise exc

        monkeypatch.setitem(core.COMMANDS, "boom", (lambda p: None, run))

    return install


@pytest.mark.parametrize("exc", [InvalidValue("bad --k: use 8"), MissingPath("x.wav: no such file"),
                                 UnknownName("no task named 'nope'")])
def test_user_errors_print_one_line(exc: UserError, failing, capsys) -> None:
    failing(exc)
    assert core.main(["boom"]) == 2
    err = capsys.readouterr().err
    assert err == f"pocketear boom: error: {exc.args[0]}\n"  # KeyError's quotes are not shown


@pytest.mark.parametrize("exc", [ValueError("internal"), KeyError("oops"), RuntimeError("bug")])
def test_other_errors_keep_their_traceback(exc: Exception, failing) -> None:
    failing(exc)
    with pytest.raises(type(exc)):
        core.main(["boom"])


def test_user_errors_are_still_the_builtins_they_refine() -> None:
    assert issubclass(InvalidValue, ValueError) and issubclass(UnknownName, KeyError)
    assert issubclass(MissingPath, FileNotFoundError)
