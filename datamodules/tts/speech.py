"""What every engine returns and shares: voices, speech with its timings, engine symbols -> our labels."""

from __future__ import annotations

import math
import re
import unicodedata
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Literal

import numpy as np

from talking_face.datamodules.alignment import SILENCE, normalise_segments, split_word
from talking_face.datamodules.phonemes import words_of
from talking_face.datamodules.segments import Segment

Engine = Literal["espeak", "festival", "flite"]
_ENGINES = ("espeak", "festival", "flite")


@dataclass(frozen=True)
class Voice:
    """One synthetic speaker: an engine voice and its prosody settings.

    ``name`` is an espeak voice with an optional variant (``"en-us"``, ``"en-us+m3"``), a festival
    voice (``"kal_diphone"``) or a flite voice (``"rms"``). Factors relative to the voice's own
    defaults: ``rate`` scales the speaking rate (2.0 = twice as fast), ``pitch`` the F0 and
    ``pitch_range`` the spread of F0 (intonation). espeak scales the floor of its F0 contour and adds
    the range on top, so its median F0 moves less than ``pitch`` (measured: x0.73 at 0.6, x1.43 at
    1.6); festival's diphone voices and flite's ``kal16`` scale the mean and spread of their F0 targets;
    festival's HTS voice and flite's clustergen voices make their own F0 and take neither pitch factor.
    """

    engine: Engine
    name: str
    rate: float = 1.0
    pitch: float = 1.0
    pitch_range: float = 1.0

    def __post_init__(self) -> None:
        if self.engine not in _ENGINES:
            raise ValueError(f"unknown engine {self.engine!r}; expected one of {_ENGINES}")
        for field in ("rate", "pitch", "pitch_range"):
            value = getattr(self, field)
            if not (math.isfinite(value) and value > 0.0):
                raise ValueError(f"voice {self.name!r} needs a positive {field}, got {value}")

    @property
    def slug(self) -> str:
        """File-name-safe identifier of this speaker, e.g. ``"espeak-en-us+m3-r0.90-p1.10-g1.00"``."""
        name = re.sub(r"[^A-Za-z0-9+_.-]", "_", self.name)
        return f"{self.engine}-{name}-r{self.rate:.2f}-p{self.pitch:.2f}-g{self.pitch_range:.2f}"


@dataclass(frozen=True)
class Speech:
    """Synthesised speech and its timed labels.

    ``audio`` float32 [N] mono in [-1, 1] at ``sample_rate`` (the engine's native rate). ``phonemes``
    (ARPAbet without stress, ``"sil"``) and ``words`` (lower case, ``"sil"``) each cover
    ``[0, duration]`` seconds contiguously.
    """

    audio: np.ndarray
    sample_rate: int
    phonemes: list[Segment]
    words: list[Segment]

    @property
    def duration(self) -> float:
        return len(self.audio) / self.sample_rate


# --- shared: engine symbols -> our labels -------------------------------------------------------


def _phoneme_segments(
    starts: Sequence[tuple[str, float]],
    end: float,
    table: dict[str, tuple[str, ...]],
    engine: str,
    before_r: dict[str, tuple[str, ...]] | None = None,
) -> list[Segment]:
    """Our labels for timed engine phonemes: (symbol, start s), each ending where the next starts.

    The last ends at ``end``. A symbol for two phonemes (espeak ``aI@`` = AY ER) has its span shared
    between them (``split_word``); a symbol mapped to no phoneme lengthens the one before it.
    ``before_r`` overrides ``table`` where the next symbol is an R of its own (espeak's ``o@`` = AO R,
    but ``o@ r`` = AO R, not AO R R).
    """

    def labels_of(symbol: str) -> tuple[str, ...]:
        if symbol not in table:
            raise ValueError(
                f"{engine} phoneme {symbol!r} has no ARPAbet equivalent in the table; add it there"
            )
        return table[symbol]

    segments: list[Segment] = []
    symbols = [symbol for symbol, _ in starts]
    for i, ((symbol, start), (_, stop)) in enumerate(zip(starts, [*starts[1:], ("", end)], strict=True)):
        labels = labels_of(symbol)
        if before_r and symbol in before_r and i + 1 < len(symbols) and labels_of(symbols[i + 1]) == ("R",):
            labels = before_r[symbol]
        if not labels and segments:  # part of the previous phoneme
            segments[-1] = Segment(segments[-1].label, segments[-1].start, stop)
        elif labels in ((SILENCE,), ()):
            segments.append(Segment(SILENCE, start, stop))
        else:
            segments.extend(split_word(Segment(symbol, start, stop), labels))
    return segments


def _word_label(text: str) -> str:
    """Text as a lower-case word label ("Now," -> "now", "12" -> "twelve", "of the" -> "of the")."""
    try:
        return " ".join(words_of(text))
    except ValueError:  # no letters or digits: a symbol the engine spelled out ("&"), or nothing
        return text.strip().lower()


# festival's "radio" phone set (lib/radio_phones.scm, used by its US English voices) -> ARPAbet
_RADIO_TO_ARPABET: dict[str, tuple[str, ...]] = {
    **{p: (p.upper(),) for p in (
        "aa ae ah ao aw ay b ch d dh eh er ey f g hh ih iy jh k l m n ng ow oy p r s sh t th uh uw v w y z zh"
    ).split()},
    "ax": ("AH",), "axr": ("ER",), "ix": ("IH",), "hv": ("HH",), "dx": ("T",), "nx": ("N",),
    "el": ("AH", "L"), "em": ("AH", "M"), "en": ("AH", "N"),
    "pau": (SILENCE,), "h#": (SILENCE,), "brth": (SILENCE,),
}  # fmt: skip


def _ascii_text(text: str, engine: str) -> str:
    """festival and flite read 8-bit text: accents are dropped ("café" -> "cafe"), other scripts cannot be
    spoken (``ValueError``)."""
    text = unicodedata.normalize("NFKD", text).encode("ascii", "ignore").decode()
    if not text.strip():
        raise ValueError(f"{engine} voices speak only Latin-script text")
    return text


def _speech_from_ends(
    audio: np.ndarray,
    sample_rate: int,
    ends: list[tuple[str, float]],
    words: list[tuple[str, float, float]],
    table: dict[str, tuple[str, ...]],
    engine: str,
    what: str,
) -> Speech:
    """Speech from engine segments with end times (festival's and flite's own: each starts where the
    previous ended) and word spans (start, end s); words that span no time are left out."""
    duration = len(audio) / sample_rate
    if duration == 0.0:
        raise ValueError(f"{engine} produced no audio for {what}")
    previous_ends = [0.0, *(end for _, end in ends[:-1])]
    starts = [(name, start) for (name, _), start in zip(ends, previous_ends, strict=True)]
    phonemes = _phoneme_segments(starts, ends[-1][1] if ends else duration, table, engine)
    spans = [Segment(_word_label(name), start, end) for name, start, end in words if end > start]
    return Speech(
        audio=audio,
        sample_rate=sample_rate,
        phonemes=normalise_segments(phonemes, duration),
        words=normalise_segments(spans, duration),
    )
