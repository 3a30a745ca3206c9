"""The command registry, the parser and the entry point of the ``pocketear`` command line."""

from __future__ import annotations

import argparse
import sys
import warnings
from collections.abc import Callable

# the workflow's order, for --help
ORDER = ("list", "synth", "prepare", "cache", "shard", "cluster", "pretrain", "federated",
         "tokenizer", "evaluate", "report", "compare", "export", "embed", "calibrate", "pitch")
COMMANDS: dict[str, tuple[Callable[[argparse.ArgumentParser], None],
                          Callable[[argparse.Namespace], int]]] = {}


def command(name: str, add_args: Callable[[argparse.ArgumentParser], None]):
    """Register a sub-command: ``add_args`` declares its options; the function runs it.

    The function's docstring is the command's help: its first line in ``pocketear --help``, all
    of it in ``pocketear NAME --help``.
    """
    def deco(fn: Callable[[argparse.Namespace], int]) -> Callable[[argparse.Namespace], int]:
        COMMANDS[name] = (add_args, fn)
        return fn
    return deco


def _user_error(err: BaseException) -> bool:
    """Whether ``err`` was caused by the user's input (:class:`~pocketear.errors.UserError`).

    Those are printed as one line, exit status 2, no traceback; anything else is a bug and
    keeps its traceback.
    """
    from pocketear.errors import UserError

    return isinstance(err, UserError)


def build_parser() -> argparse.ArgumentParser:
    """The ``pocketear`` parser with one sub-command per registered :func:`command`."""
    from pocketear import __version__

    parser = argparse.ArgumentParser(
        prog="pocketear",
        description="Self-supervised audio representation learning with small, on-device "
                    "encoders: pretrain on unlabeled audio, evaluate frozen embeddings against "
                    "baselines, export to ONNX.",
        epilog="`pocketear COMMAND --help` explains each command.",
    )
    parser.add_argument("--version", action="version", version=f"pocketear {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    rank = {n: i for i, n in enumerate(ORDER)}
    for name in sorted(COMMANDS, key=lambda n: rank.get(n, len(ORDER))):
        add_args, fn = COMMANDS[name]
        doc = (fn.__doc__ or "").strip()
        p = sub.add_parser(name, help=doc.splitlines()[0] if doc else None, description=doc,
                           formatter_class=argparse.RawDescriptionHelpFormatter)
        add_args(p)
        p.set_defaults(func=fn)
    return parser


def main(argv: list[str] | None = None) -> int:
    """Run the command line ``argv`` (default ``sys.argv``); returns the exit status."""
    parser = build_parser()
    args = parser.parse_args(argv)
    if not getattr(args, "func", None):
        parser.print_help()
        return 0
    warnings.simplefilter("default")
    try:
        return int(args.func(args) or 0)
    except Exception as err:
        if not _user_error(err):
            raise
        print(f"pocketear {args.command}: error: {err}", file=sys.stderr)
        return 2
