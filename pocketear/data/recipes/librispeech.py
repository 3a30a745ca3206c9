"""LibriSpeech speaker identification recipe (closed set, per-speaker splits).

Panayotov et al., "Librispeech: an ASR corpus based on public domain audio books", ICASSP 2015;
openslr.org/12. Licence: CC BY 4.0.

Layout: ``LibriSpeech/<subset>/<speaker>/<chapter>/<speaker>-<chapter>-<utt>.flac`` plus
``LibriSpeech/SPEAKERS.TXT`` (sex per speaker; optional). Default subset ``train-clean-100``
(251 speakers), the closed-set speaker-id task of the seed paper. label = speaker id,
``group`` = chapter; extra columns ``speaker``, ``chapter``, ``sex``, ``subset``.

Split: per speaker, utterances are ordered by the sha1 of their id and the last 10 % go to
test, the 10 % before to valid, the rest to train (``fractions``, default 80/10/10): exact
proportions for every speaker, deterministic on every machine.

Checksums: the md5 values published in openslr.org/resources/12/md5sum.txt are verified
automatically when the archive keeps its original file name (``checksum`` overrides).
"""

from __future__ import annotations

from collections import defaultdict
from pathlib import Path
from typing import Any

from pocketear.data.recipes.base import (
    COMMON_OPTIONS,
    Recipe,
    RecipeError,
    ScanReport,
    find_dirs,
    ordered_split,
    parse_fractions,
    write_manifest,
)
from pocketear.registry import register

# From openslr.org/resources/12/md5sum.txt (the official list).
LIBRISPEECH_MD5 = {
    "dev-clean.tar.gz": "42e2234ba48799c1f50f24a7926300a1",
    "dev-other.tar.gz": "c8d0bcc9cca99d4f8b62fcc847357931",
    "test-clean.tar.gz": "32fa31d27d2e1cad72775fee3f4849a9",
    "test-other.tar.gz": "fb5a50374b501bb3bac4815ee91d3135",
    "train-clean-100.tar.gz": "2a93770f6d5c6c964bc36631d331a522",
    "train-clean-360.tar.gz": "c0e676e450a7ff2f54aeade5171606fa",
    "train-other-500.tar.gz": "d1a0fd59409feb2c614ce4d30c387708",
}
_EXTRA = ("speaker", "chapter", "sex", "subset")


def read_speakers(path: Path) -> dict[str, str]:
    """Speaker id -> sex (``M``/``F``) from ``SPEAKERS.TXT`` (``ID | SEX | SUBSET | ...``)."""
    sexes: dict[str, str] = {}
    for line in path.read_text(encoding="utf-8", errors="replace").splitlines():
        fields = [f.strip() for f in line.split("|")]
        if line.startswith(";") or len(fields) < 2:
            continue
        sexes[fields[0]] = fields[1]
    return sexes


@register("recipe", "librispeech_spk")
class LibriSpeechSpeakerRecipe(Recipe):
    """LibriSpeech train-clean-100 speaker id: 251 speakers, 80/10/10 utterances per speaker."""

    name = "librispeech_spk"
    known_checksums = LIBRISPEECH_MD5
    options = {**COMMON_OPTIONS,
               "subset": "subset folder(s), comma-separated (default train-clean-100)",
               "fractions": "train/valid/test utterance fractions per speaker (default 80/10/10)"}

    def prepare(self, source: str, out: Path, progress: bool = True,
                **options: Any) -> Path:
        """Write ``out/manifest.csv`` for the chosen LibriSpeech subset(s)."""
        opts = self.check_options(options)
        out = Path(out)
        subsets = [s.strip() for s in str(opts.get("subset", "train-clean-100")).split(",")
                   if s.strip()]
        fractions = parse_fractions(opts.get("fractions", "80/10/10"))
        roots = self.fetch(source, out, progress, opts)
        report = ScanReport()
        by_speaker: dict[str, list[dict[str, Any]]] = defaultdict(list)
        for subset in subsets:
            found = find_dirs(roots, lambda d, s=subset: d.name == s and any(
                c.name.isdigit() and c.is_dir() for c in d.iterdir()))
            if not found:
                raise RecipeError(f"librispeech_spk: no {subset}/ folder under {source}; pass "
                                  f"LibriSpeech/ or {subset}.tar.gz")
            for folder in found:
                speakers_txt = folder.parent / "SPEAKERS.TXT"
                sexes = read_speakers(speakers_txt) if speakers_txt.is_file() else {}
                for path in sorted(folder.glob("*/*/*.flac")):
                    speaker, chapter = path.parent.parent.name, path.parent.name
                    if not path.stem.startswith(f"{speaker}-{chapter}-"):
                        report.skip(path, "name not <speaker>-<chapter>-<utt>")
                        continue
                    if not report.usable(path):
                        continue
                    by_speaker[speaker].append({
                        "path": path, "label": speaker, "group": chapter, "utt": path.stem,
                        "speaker": speaker, "chapter": chapter, "sex": sexes.get(speaker, ""),
                        "subset": subset})
        rows: list[dict[str, Any]] = []
        for utterances in by_speaker.values():
            split = ordered_split([u["utt"] for u in utterances], fractions, salt="libri")
            rows += [{**u, "split": split[u["utt"]]} for u in utterances]
        manifest = write_manifest(out / "manifest.csv", rows, _EXTRA)
        self.finish(rows, report, progress)
        return manifest
