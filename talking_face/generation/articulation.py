"""Does the mouth articulate the phones it says? Two measures that need no ground-truth video (issue 13).

Given the lip gap of every frame (the inner-lip opening, ``datamodules.faces.mouth.mouth_opening`` of a
face-normalised mouth: inter-ocular units; measured on the driving landmarks or re-detected by dlib on the
generated frames) and the reference phone under every frame (``VOCAB`` labels: forced alignment of the known
transcript, or a TTS engine's own timings):

- ``bilabial_ratio``: median gap on P/B/M frames divided by the median gap on the open vowels AA AE AH AO AW
  AY. Real lips close for p, b and m, so a talking mouth scores well below 1 (the goal of issue 13: <= 0.4);
  a mouth that ignores the phones scores near 1.
- ``openness_corr``: Pearson correlation, over the speech frames (reference phone not ``sil``), of the gap
  with ``OPENNESS`` (each phone's typical jaw opening, a fixed table) smoothed over 3 frames (a moving
  mean, since a mouth moves between phones, not in steps). Goal: >= 0.5.
- ``gap_spread``: standard deviation of the gap over the speech frames: how far the mouth moves at all.

Frames where the face was not found (``found`` False) are left out of every measure.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from talking_face.datamodules.phonemes import BILABIALS
from talking_face.generation.lip_sync import MIN_FRAMES, correlation
from talking_face.shapes import check_shape

__all__ = ["ARTICULATION_KEYS", "BILABIALS", "OPEN_VOWELS", "OPENNESS", "articulation", "openness_track"]

ARTICULATION_KEYS = ("bilabial_ratio", "openness_corr", "gap_spread", "bilabial_frames", "open_frames")
"""What ``articulation`` returns, in order."""

OPEN_VOWELS = ("AA", "AE", "AH", "AO", "AW", "AY")

OPENNESS: dict[str, float] = {
    # open and mid vowels, diphthongs (their opening part)
    "AA": 1.0, "AE": 0.9, "AW": 0.9, "AY": 0.85, "AO": 0.85, "AH": 0.7, "EH": 0.7,
    "EY": 0.6, "OW": 0.6, "OY": 0.6, "ER": 0.45, "UH": 0.45, "IH": 0.45, "IY": 0.3, "UW": 0.3,
    # consonants: open-ish for h and the velars, nearly closed for sibilants and labiodentals, shut for p b m
    "HH": 0.5, "K": 0.4, "G": 0.4, "NG": 0.4, "L": 0.45, "R": 0.4, "Y": 0.3, "W": 0.25,
    "N": 0.35, "D": 0.35, "T": 0.3, "TH": 0.3, "DH": 0.3,
    "SH": 0.25, "ZH": 0.25, "CH": 0.25, "JH": 0.25, "S": 0.15, "Z": 0.15, "F": 0.15, "V": 0.15,
    "P": 0.0, "B": 0.0, "M": 0.0, "sil": 0.0,
}  # fmt: skip
"""Typical jaw/lip opening of each phone on a 0 (lips shut) to 1 (wide open) scale: a fixed ordering from
articulatory phonetics (open vowels > mid > close > consonants; p, b, m closed), not fitted to any data."""


def openness_track(phones: Sequence[str], smooth: int = 3) -> np.ndarray:
    """``OPENNESS`` of each frame's phone [T], moving mean over ``smooth`` frames (edges: the nearest)."""
    unknown = sorted({p for p in phones if p not in OPENNESS})
    if unknown:
        raise ValueError(f"phones without an openness: {', '.join(unknown)}")
    values = np.array([OPENNESS[p] for p in phones], np.float64)
    if smooth <= 1 or values.size == 0:
        return values
    padded = np.pad(values, (smooth // 2, smooth - 1 - smooth // 2), mode="edge")
    return np.convolve(padded, np.ones(smooth) / smooth, mode="valid")


def articulation(gap: np.ndarray, phones: Sequence[str], found: np.ndarray | None = None) -> dict[str, float]:
    """The measures of the module docstring for a lip gap [T] and the reference phone [T] of each frame.

    NaN where too few frames (< 3) of a kind exist; ``bilabial_ratio`` is NaN when the open vowels' median
    gap is 0 (a mouth that never opens has no ratio to speak of).
    """
    gap = np.asarray(gap, np.float64)
    labels = np.asarray(phones)
    dims = check_shape(gap, "T", "gap")
    check_shape(labels, "T", "phones", dims)
    found = np.ones(len(gap), bool) if found is None else np.asarray(found, bool)
    check_shape(found, "T", "found", dims)
    target = openness_track(phones)
    bilabial = np.isin(labels, BILABIALS) & found
    open_vowel = np.isin(labels, OPEN_VOWELS) & found
    speech = (labels != "sil") & found
    closed = float(np.median(gap[bilabial])) if bilabial.sum() >= MIN_FRAMES else float("nan")
    opened = float(np.median(gap[open_vowel])) if open_vowel.sum() >= MIN_FRAMES else float("nan")
    return {
        "bilabial_ratio": closed / opened if opened > 0 else float("nan"),
        "openness_corr": correlation(gap[speech], target[speech]),
        "gap_spread": float(gap[speech].std()) if speech.sum() >= MIN_FRAMES else float("nan"),
        "bilabial_frames": float(bilabial.sum()),
        "open_frames": float(open_vowel.sum()),
    }
