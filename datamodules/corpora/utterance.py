"""What a corpus reader hands to preprocessing: where one utterance's files are, nothing decoded yet.

Parsing is deferred to preprocessing on purpose: a malformed transcript or alignment then costs that
one utterance (skipped and reported, naming the file), never the whole scan.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

from talking_face.datamodules.segments import Segment

SILENCE_WORDS = frozenset({"sil", "sp"})
GRID_TIME_UNIT = 25_000.0
"""GRID .align times count 1/25000 s."""


class CorpusError(ValueError):
    """A corpus file is missing or malformed; the message names the file and the problem."""


@dataclass(frozen=True)
class Utterance:
    """One utterance of one speaker on disk.

    ``audio`` is None when the speech is inside the video. ``transcript`` (a .txt), ``alignment`` (a GRID
    .align of word timings) and ``phoneme_timings`` (a JSON list of {label, start, end}, written by the
    built-in corpus' TTS) are optional; preprocessing uses the most precise one present.
    """

    speaker: str
    utterance: str
    video: Path
    audio: Path | None = None
    transcript: Path | None = None
    alignment: Path | None = None
    phoneme_timings: Path | None = None

    @property
    def key(self) -> str:
        return f"{self.speaker}/{self.utterance}"

    def read_words(self) -> list[Segment] | None:
        """Word timings from the GRID .align file, or None without one."""
        return None if self.alignment is None else read_grid_align(self.alignment)

    def read_text(self) -> str:
        """The transcript: the .txt file, else the non-silent words of the alignment."""
        if self.transcript is not None:
            if not self.transcript.is_file():
                raise CorpusError(f"{self.transcript}: transcript file is missing for {self.video.name}")
            try:
                text = self.transcript.read_text(encoding="utf-8").strip()
            except (OSError, UnicodeDecodeError) as error:
                raise CorpusError(f"{self.transcript}: transcript cannot be read ({error})") from error
            if not text:
                raise CorpusError(f"{self.transcript}: transcript is empty")
            return " ".join(text.split())
        words = self.read_words()
        if words is None:
            raise CorpusError(f"{self.video}: no transcript (.txt) and no alignment (.align) found")
        text = " ".join(w.label for w in words if w.label not in SILENCE_WORDS)
        if not text:
            raise CorpusError(f"{self.alignment}: alignment holds only silence")
        return text

    def read_phoneme_timings(self) -> list[Segment] | None:
        if self.phoneme_timings is None:
            return None
        try:
            return [Segment.from_dict(item) for item in json.loads(self.phoneme_timings.read_text())]
        except (OSError, ValueError, KeyError, TypeError) as error:
            raise CorpusError(f"{self.phoneme_timings}: malformed phoneme timings ({error})") from error


def read_grid_align(path: Path) -> list[Segment]:
    """Parse a GRID ``.align`` file: lines ``start end word`` in 1/25000 s; ``sil``/``sp`` map to "sil"."""
    try:
        lines = path.read_text(encoding="utf-8").split("\n")
    except (OSError, UnicodeDecodeError) as error:
        raise CorpusError(f"{path}: alignment cannot be read ({error})") from error
    words = []
    for number, line in enumerate(lines, start=1):
        if not line.strip():
            continue
        parts = line.split()
        try:
            start, end = float(parts[0]) / GRID_TIME_UNIT, float(parts[1]) / GRID_TIME_UNIT
            label = parts[2].lower()
            if len(parts) != 3:
                raise ValueError("expected 'start end word'")
            words.append(Segment("sil" if label in SILENCE_WORDS else label, start, end))
        except (ValueError, IndexError) as error:
            raise CorpusError(f"{path}:{number}: malformed alignment line {line!r} ({error})") from error
    if not words:
        raise CorpusError(f"{path}: alignment is empty")
    for before, after in zip(words, words[1:], strict=False):
        if after.start < before.start:
            raise CorpusError(f"{path}: alignment times go backwards at {after.label!r}")
    return words


def write_grid_align(path: Path, words: list[Segment]) -> None:
    """Write word timings in GRID's ``.align`` format (the inverse of ``read_grid_align``)."""
    path.write_text("".join(f"{round(w.start * GRID_TIME_UNIT)} {round(w.end * GRID_TIME_UNIT)} {w.label}\n"
                            for w in words))  # fmt: skip
