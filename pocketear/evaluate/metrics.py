"""Task metrics: the one place a test score is computed from clip predictions.

An :class:`~pocketear.evaluate.suites.EvalTask` names its metric (``accuracy`` unless it says
otherwise); probes, supervised training and fine-tuning are all scored through :func:`score`, so
every row of a table is measured the same way. A new metric is one function of the true class
ids ``(N,)`` and the clip probabilities ``(N, C)`` added to :data:`METRICS`.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np

from pocketear.errors import InvalidValue

Metric = Callable[[np.ndarray, np.ndarray], float]
DEFAULT_METRIC = "accuracy"


def accuracy(y: np.ndarray, proba: np.ndarray) -> float:
    """Fraction of clips whose most probable class is the true one."""
    return float((np.asarray(proba).argmax(1) == y).mean())


METRICS: dict[str, Metric] = {"accuracy": accuracy}


def check_metric(name: str, where: str = "") -> str:
    """``name`` when it is a known metric.

    Raises:
        InvalidValue: an unknown metric (the message lists the known ones).
    """
    if name not in METRICS:
        prefix = f"{where}: " if where else ""
        raise InvalidValue(f"{prefix}unknown metric {name!r}; known metrics: "
                           f"{', '.join(METRICS)}")
    return name


def score(metric: str, y: np.ndarray, proba: np.ndarray) -> float:
    """The ``metric`` of clip probabilities ``proba`` ``(N, C)`` against class ids ``y``."""
    return METRICS[check_metric(metric)](y, proba)
