"""Evaluation: frozen-embedding probes against honest baselines.

Importing this package registers the probes (``linear``, ``mlp``, ``knn``) and the suites. A new
suite is one file named ``suite_<name>.py`` in this package holding a
``@register("suite", name)`` subclass of :class:`~pocketear.evaluate.suites.Suite`; it is
imported (hence registered) here automatically. The baselines (``logmel-stats``,
``random-init``, ``supervised``) are registered by :mod:`pocketear.evaluate.baselines`, loaded
on first use of ``available("baseline")`` (it imports torch). The settings of a run are one
:class:`~pocketear.evaluate.config.EvalConfig`; each task names its metric
(:mod:`pocketear.evaluate.metrics`).

``evaluate(...)`` writes ``results.json``::

    {"suite", "created", "config": {"probes", "shots", "seeds", "baselines", "checkpoints"},
     "methods": {name: {"kind", "checkpoint", "run_dir", "encoder", "params"}},
     "tasks": {task: {"n_train", "n_valid", "n_test", "classes", "chance"}},
     "results": [{"method", "task", "probe", "shots", "metric", "mean", "std", "values"}],
     "confusion": {"method/task/probe": {"labels", "matrix"}},
     "embeddings_2d": {"method/task": {"x", "y", "labels"}}}
"""

import importlib
import pkgutil

from pocketear.evaluate import probes, splits, suites
from pocketear.evaluate.config import EvalConfig
from pocketear.evaluate.suites import EvalTask, Suite

for _info in pkgutil.iter_modules(__path__):
    if _info.name.startswith("suite_"):
        importlib.import_module(f"{__name__}.{_info.name}")


def evaluate(*args, **kwargs):  # noqa: ANN002, ANN003 - thin lazy alias of runner.evaluate
    """Same as :func:`pocketear.evaluate.runner.evaluate` (imported lazily: it loads torch)."""
    from pocketear.evaluate.runner import evaluate as run

    return run(*args, **kwargs)


__all__ = ["EvalConfig", "EvalTask", "Suite", "evaluate", "probes", "splits", "suites"]
