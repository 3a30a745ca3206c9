"""Built-in deterministic synthetic corpus (speech, music, scenes) with known labels.

Why: the quick-start, the tests and the ``synthetic`` benchmark suite need labelled audio without
any download. See ``write_corpus`` for the on-disk corpus and ``SYNTH_TASKS`` for the tasks.
"""

from pocketear.data.synth.corpus import (
    COLUMNS,
    DOMAINS,
    SR,
    SYNTH_TASKS,
    degrade,
    event_labels,
    generate_event,
    generate_longform,
    plan_corpus,
    write_corpus,
)
from pocketear.data.synth.music import INSTRUMENT_NAMES, PITCHES
from pocketear.data.synth.scenes import SCENES
from pocketear.data.synth.speech import PERMUTATION_PAIRS, SPEAKER_NAMES, WORD_NAMES

__all__ = [
    "COLUMNS",
    "DOMAINS",
    "INSTRUMENT_NAMES",
    "PERMUTATION_PAIRS",
    "PITCHES",
    "SCENES",
    "SPEAKER_NAMES",
    "SR",
    "SYNTH_TASKS",
    "WORD_NAMES",
    "degrade",
    "event_labels",
    "generate_event",
    "generate_longform",
    "plan_corpus",
    "write_corpus",
]
