"""Frame-level phoneme alignment: timed words or phonemes -> one phoneme id per video frame.

Everything here works on ``Segment`` lists in seconds. An *alignment* is a list of segments that covers
``[0, duration]`` exactly: sorted, contiguous (each starts where the previous ends), no gaps, no overlaps,
silence labelled ``"sil"``. ``normalise_segments`` makes one from any timed list (a TTS engine's, an
aligner's), ``phonemes_from_words`` makes one from word timings (GRID's ``.align`` files) by splitting
each word among its phonemes, and ``frame_phoneme_ids`` samples it at the video frame centres.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from talking_face.datamodules import timebase
from talking_face.datamodules.phonemes import SIL_ID, WordPronunciation, phoneme_id, strip_stress
from talking_face.datamodules.segments import Segment

__all__ = [
    "DURATION_PRIOR_MS",
    "SILENCE",
    "SILENCE_WORDS",
    "check_alignment",
    "frame_phoneme_ids",
    "normalise_segments",
    "phonemes_from_words",
    "split_word",
]

SILENCE = "sil"
SILENCE_WORDS = frozenset({"sil", "sp", "<sil>", "<s>", "</s>", ""})
"""Word labels that mean silence (GRID writes ``sil`` and ``sp``; sphinx ``<sil>``, ``<s>``, ``</s>``)."""

_EPS = 1e-6
"""Seconds below which a gap or an overlap is rounding noise, not a pause."""

# Mean ("inherent") durations in ms of English phonemes in connected speech, from Klatt's duration rules:
# D. H. Klatt (1979), "Synthesis by rule of segmental durations in English sentences", in Frontiers of
# Speech Communication Research, and J. Allen, S. Hunnicutt, D. H. Klatt (1987), From Text to Speech: The
# MITalk System, ch. 9 (the same numbers ship in Festival's lib/klatt_durs.scm). Our vocabulary has no
# stress, so AH merges Klatt's AH (140) and the schwa AX (120), and ER merges ER and AXR (both 180).
# Only the ratios matter here: a word's interval is shared in proportion to them.
DURATION_PRIOR_MS: dict[str, float] = {
    # vowels (long) and diphthongs (longest)
    "AA": 240, "AE": 230, "AH": 130, "AO": 240, "EH": 150, "ER": 180, "IH": 135, "IY": 155,
    "UH": 160, "UW": 210, "AW": 240, "AY": 250, "EY": 180, "OW": 220, "OY": 280,
    # stops and affricates (short)
    "B": 85, "D": 75, "G": 80, "K": 80, "P": 90, "T": 75, "CH": 70, "JH": 70,
    # fricatives and aspirate
    "DH": 50, "F": 100, "S": 105, "SH": 105, "TH": 90, "V": 60, "Z": 75, "ZH": 70, "HH": 80,
    # nasals, liquids, glides
    "M": 70, "N": 60, "NG": 95, "L": 80, "R": 80, "W": 80, "Y": 80,
}  # fmt: skip


def split_word(word: Segment, phonemes: Sequence[str]) -> list[Segment]:
    """Share ``word``'s interval among its ``phonemes`` in proportion to ``DURATION_PRIOR_MS``.

    The pieces cover ``[word.start, word.end]`` exactly (the last ends at ``word.end``). Stress digits
    are dropped from the labels.
    """
    if not phonemes:
        raise ValueError(f"datamodules/alignment.py: word {word.label!r} has no phonemes to split among")
    labels = [strip_stress(p) for p in phonemes]
    unknown = [p for p in labels if p not in DURATION_PRIOR_MS]
    if unknown:
        raise ValueError(f"datamodules/alignment.py: word {word.label!r} has non-ARPAbet phonemes {unknown}")
    weights = np.array([DURATION_PRIOR_MS[p] for p in labels], dtype=np.float64)
    bounds = word.start + word.duration * np.concatenate([[0.0], np.cumsum(weights) / weights.sum()])
    bounds[-1] = word.end
    return [Segment(p, float(a), float(b)) for p, a, b in zip(labels, bounds[:-1], bounds[1:], strict=True)]


def phonemes_from_words(
    words: Sequence[Segment], pronunciations: Sequence[WordPronunciation], duration: float
) -> list[Segment]:
    """Phoneme alignment over ``[0, duration]`` from timed words.

    Args:
        words: timed words in order; silence words (``SILENCE_WORDS``, e.g. GRID's ``sil``/``sp``)
            become ``"sil"``.
        pronunciations: one per non-silence word, in the same order (e.g.
            ``pronounce(" ".join(non_silence_labels))``); their words must match the labels.
        duration: utterance length in seconds.

    Gaps between words are filled with ``"sil"``; overlaps from rounding are clipped.
    """
    spoken = [w for w in words if w.label.lower() not in SILENCE_WORDS]
    if len(spoken) != len(pronunciations):
        raise ValueError(
            f"datamodules/alignment.py: {len(spoken)} spoken words but {len(pronunciations)} pronunciations"
        )
    for word, pron in zip(spoken, pronunciations, strict=True):
        if word.label.lower() != pron.word:
            raise ValueError(
                f"datamodules/alignment.py: word {word.label!r} at {word.start:.3f}s is paired with the "
                f"pronunciation of {pron.word!r}; normalise word labels with phonemes.words_of first"
            )
    prons = iter(pronunciations)
    segments: list[Segment] = []
    for word in words:
        if word.label.lower() in SILENCE_WORDS:
            segments.append(Segment(SILENCE, word.start, word.end))
        else:
            segments.extend(split_word(word, next(prons).phonemes))
    return normalise_segments(segments, duration)


def normalise_segments(segments: Sequence[Segment], duration: float) -> list[Segment]:
    """Make timed labels an alignment of ``[0, duration]``.

    Sorts by start, clips to the range, trims overlaps (a later segment starts where the previous one
    ends), fills gaps with ``"sil"`` (a gap shorter than 1 us is closed by the next segment instead),
    drops empty segments, labels silence words (``SILENCE_WORDS``) ``"sil"`` and merges adjacent
    ``"sil"``. Other labels are kept as they are.
    """
    if not duration > 0.0:
        raise ValueError(f"datamodules/alignment.py: duration must be positive, got {duration}")
    pieces: list[Segment] = []
    cursor = 0.0
    for seg in sorted(segments, key=lambda s: (s.start, s.end)):
        start, end = max(seg.start, cursor), min(seg.end, duration)
        if end - start < _EPS:
            continue
        if start - cursor >= _EPS:
            pieces.append(Segment(SILENCE, cursor, start))
        else:
            start = cursor
        pieces.append(Segment(SILENCE if seg.label.lower() in SILENCE_WORDS else seg.label, start, end))
        cursor = end
    if duration - cursor >= _EPS or not pieces:
        pieces.append(Segment(SILENCE, cursor, duration))
    pieces[-1] = Segment(pieces[-1].label, pieces[-1].start, duration)

    merged: list[Segment] = []
    for seg in pieces:
        if merged and merged[-1].label == seg.label == SILENCE:
            merged[-1] = Segment(SILENCE, merged[-1].start, seg.end)
        else:
            merged.append(seg)
    return merged


def check_alignment(segments: Sequence[Segment], duration: float, tol: float = 1e-6) -> None:
    """Raise ``ValueError`` unless ``segments`` cover ``[0, duration]`` contiguously, in order."""
    if not segments:
        raise ValueError("datamodules/alignment.py: empty alignment")
    if abs(segments[0].start) > tol:
        raise ValueError(f"datamodules/alignment.py: alignment starts at {segments[0].start}, not 0")
    if abs(segments[-1].end - duration) > tol:
        raise ValueError(
            f"datamodules/alignment.py: alignment ends at {segments[-1].end}, not at duration {duration}"
        )
    for prev, seg in zip(segments[:-1], segments[1:], strict=True):
        if abs(seg.start - prev.end) > tol:
            kind = "gap" if seg.start > prev.end else "overlap"
            raise ValueError(
                f"datamodules/alignment.py: {kind} between {prev.label!r} ending {prev.end} and "
                f"{seg.label!r} starting {seg.start}"
            )


def frame_phoneme_ids(segments: Sequence[Segment], num_frames: int, fps: float = timebase.FPS) -> np.ndarray:
    """Phoneme id (``VOCAB`` index) of every video frame, int64 ``[num_frames]``.

    Frame ``f`` takes the phoneme covering its centre ``(f + 0.5) / fps``, a segment owning
    ``[start, end)``; frames past the alignment's end are ``"sil"``. ``segments`` must be an alignment
    (see ``check_alignment``) starting at 0.
    """
    if num_frames < 0:
        raise ValueError(f"datamodules/alignment.py: num_frames must be >= 0, got {num_frames}")
    check_alignment(segments, segments[-1].end if segments else 0.0)
    ids = np.array([phoneme_id(s.label) for s in segments] + [SIL_ID], dtype=np.int64)
    ends = np.array([s.end for s in segments], dtype=np.float64)
    centres = (np.arange(num_frames, dtype=np.float64) + 0.5) / fps
    return ids[np.searchsorted(ends, centres, side="right")]
