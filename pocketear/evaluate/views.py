"""Label-free views: ways of reading frozen embeddings that every method gets alike.

Why: some information is known at test time without labels (which speaker a clip is from, how
long it is), and a fair table gives it to every row, baselines included, as separate rows.
"""

from __future__ import annotations

from pocketear.errors import InvalidValue

DEFAULT_VIEW = "clip"


def parse_view(view: str) -> tuple[int, bool]:
    """``clip`` | ``seg<k>`` | ``group-std`` | ``seg<k>+group-std`` → (parts, group_std).

    Views are label-free ways of reading embeddings, applied to every method alike:
    ``seg<k>`` pools each clip over ``k`` equal time parts (concatenated; for logmel-stats the
    mean+std of each part), ``group-std`` standardises each clip by the statistics of its group
    (e.g. its speaker's clips, train and test alike).
    """
    parts, group_std = 0, False
    for token in view.split("+"):
        if token == "clip":
            continue
        if token == "group-std":
            group_std = True
        elif token.startswith("seg") and token[3:].isdigit() and int(token[3:]) >= 1:
            parts = int(token[3:])
        else:
            raise InvalidValue(f"unknown view {view!r}: use clip, seg<k> (e.g. seg3), "
                               "group-std or seg<k>+group-std")
    return parts, group_std


def probe_label(probe: str, view: str) -> str:
    """The probe column of results: the probe, and the view when it is not ``clip``."""
    return probe if view == DEFAULT_VIEW else f"{probe}+{view}"
