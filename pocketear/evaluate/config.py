"""``EvalConfig``: every setting of an evaluation in one typed, documented value.

Why: :func:`~pocketear.evaluate.runner.evaluate` used to take seventeen keyword arguments and
pass them around as a dict; one dataclass documents them once, checks them once
(:meth:`EvalConfig.checked`) and can be built, copied (``dataclasses.replace``) and stored like
any other value. ``evaluate(..., config, **fields)`` still takes each field as a keyword.
"""

from __future__ import annotations

import dataclasses
import os
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from pocketear.errors import InvalidValue
from pocketear.evaluate.splits import VALID_FRACTION
from pocketear.evaluate.views import DEFAULT_VIEW, parse_view
from pocketear.registry import available

if TYPE_CHECKING:  # the trainer loads torch; the config itself stays light
    from pocketear.evaluate.baselines import TrainBudget


@dataclass(kw_only=True)
class EvalConfig:
    """How to evaluate: probes, settings, seeds, baselines and where data and caches live.

    Attributes:
        probes: registered probe names (``linear``, ``mlp``, ``knn``).
        shots: k-shot settings run besides "all labels" (exactly k train clips per class).
        seeds: seeds 0..n-1 for probes, k-shot draws, random init and supervised training.
        baselines: also measure the registered baselines (``pocketear list baselines``:
            logmel-stats, random-init, supervised).
        supervised: with ``baselines``, also train the end-to-end baselines (``supervised``,
            the costly one; False for studies that only compare frozen read-outs).
        data_dir: where suites keep their data (default ``~/.cache/pocketear/suites``).
        fine_tune: also fine-tune each checkpoint end to end (probe name ``fine-tune``).
        progress: progress bars.
        echo: print the table (default: ``progress``).
        cache_dir: embedding/log-mel cache (default ``out/../.emb_cache``).
        suite_options: keyword options of the suite (e.g. ``{"minutes": 0.5}``).
        workers: log-mel processes.
        budget: end-to-end training budget (supervised and fine-tuning; default
            ``TrainBudget()``).
        views: label-free ways of reading the embeddings, each a separate set of rows applied
            to every method alike (see :func:`~pocketear.evaluate.views.parse_view`): ``clip``
            (default), ``seg3``, ``group-std`` (tasks with groups only), ``seg3+group-std``.
        names: method names of the checkpoints, in order (default: their pretext task, with
            ``-2``, ``-3`` … on repeats).
        valid_fraction: a split without valid clips gets this fraction of its train clips as
            valid (group-disjoint for unseen-group tasks; see
            :meth:`~pocketear.evaluate.suites.EvalTask.with_valid`), removed from train for
            every method alike; 0 leaves such splits without valid.
    """

    probes: tuple[str, ...] | list[str] = ("linear",)
    shots: tuple[int, ...] | list[int] = ()
    seeds: int = 3
    baselines: bool = True
    supervised: bool = True
    data_dir: str | os.PathLike[str] | None = None
    fine_tune: bool = False
    progress: bool = True
    echo: bool | None = None
    cache_dir: str | os.PathLike[str] | None = None
    suite_options: dict[str, Any] | None = None
    workers: int = 2
    budget: TrainBudget | None = None
    views: tuple[str, ...] | list[str] = (DEFAULT_VIEW,)
    names: list[str] | None = None
    valid_fraction: float = VALID_FRACTION

    @classmethod
    def field_names(cls) -> list[str]:
        """The fields, in declaration order (the keywords ``evaluate`` accepts)."""
        return [f.name for f in dataclasses.fields(cls)]

    @classmethod
    def build(cls, config: EvalConfig | None = None, **fields: Any) -> EvalConfig:
        """``config`` (default: all defaults) with ``fields`` replaced.

        Raises:
            InvalidValue: a keyword that is not a field (the message lists the fields).
        """
        unknown = sorted(set(fields) - set(cls.field_names()))
        if unknown:
            raise InvalidValue(f"unknown evaluation option(s) {', '.join(map(repr, unknown))}; "
                               f"known: {', '.join(cls.field_names())}")
        return dataclasses.replace(config or cls(), **fields)

    @property
    def show_table(self) -> bool:
        """Whether the table is printed (``echo``, else ``progress``)."""
        return self.progress if self.echo is None else self.echo

    def checked(self) -> EvalConfig:
        """A copy with probes, views and shots de-duplicated and every value checked.

        Probes and views keep their order (it is the tables' order); shots are sorted.

        Raises:
            InvalidValue: an unknown probe or view, or a shot or seed count below 1.
        """
        probes = list(dict.fromkeys(self.probes))
        known = available("probe")
        for p in probes:
            if p not in known:
                raise InvalidValue(f"unknown probe {p!r}; available: {', '.join(known)}")
        views = list(dict.fromkeys(self.views or [DEFAULT_VIEW]))
        for v in views:
            parse_view(v)
        shots = sorted({int(k) for k in self.shots})
        if any(k < 1 for k in shots) or self.seeds < 1:
            raise InvalidValue(f"shots must be ≥ 1 and seeds ≥ 1; got shots={shots}, "
                               f"seeds={self.seeds}")
        return dataclasses.replace(self, probes=probes, views=views, shots=shots)

    @property
    def shot_settings(self) -> list[int | None]:
        """Every shot setting: ``None`` (all labels), then each k of ``shots``."""
        return [None, *self.shots]
