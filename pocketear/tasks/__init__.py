"""Pretext tasks, one module per task, each citing its paper (README, "Pretext tasks").

Importing this package imports every submodule, so each task registers itself with
``@register("task", name)`` and is listed by ``pocketear.available("task")`` (and tested by the
registry-parametrised tests) as soon as its file exists; no list to keep in sync here.
"""

import importlib
import pkgutil

from pocketear.tasks import base
from pocketear.tasks.base import Task, TaskConfig, crop

for _info in pkgutil.iter_modules(__path__):
    if not _info.name.startswith("_"):
        importlib.import_module(f"{__name__}.{_info.name}")

__all__ = ["Task", "TaskConfig", "base", "crop"]
