"""The ``pocketear`` command line: one sub-command per driver, each with ``--help``.

Commands, in the order of the workflow: ``list``, ``synth``, ``prepare``, ``cache``, ``shard``
(data), ``cluster``, ``pretrain``, ``federated``, ``tokenizer`` (training), ``evaluate``,
``report``, ``compare`` (evaluation), ``export``, ``embed`` (deployment), ``calibrate``,
``pitch`` (pitch tracking). Each module registers its commands with :func:`command`.
"""

from pocketear.cli import (  # noqa: F401  (register commands)
    data,
    deploy,
    evaluation,
    federated,
    masked,
    pitch,
    train,
)
from pocketear.cli.core import COMMANDS, build_parser, command, main

__all__ = ["COMMANDS", "build_parser", "command", "main"]
